"""Model registry: register (service, command, API, admin), exactly one active, activation re-predicts."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from annotations.models import AuditEvent
from inference.models import Job, ModelVersion, Prediction
from inference.services.models import ModelRejected, model_version_activate, model_version_register

pytestmark = pytest.mark.django_db(transaction=True)


def test_register_reads_config_and_metrics_and_dedups(tiny_weights, admin_user, media_root) -> None:
    path = tiny_weights(seed=1)
    version, created = model_version_register(weights_file=path, name="tiny", user=admin_user)
    assert created and version.status == "candidate"
    assert version.architecture["arch"] == "munet" and version.architecture["levels"] == 2
    assert version.metrics == {"mean_dice": 0.51}
    assert version.weights_path.read_bytes() == path.read_bytes()
    again, created_again = model_version_register(weights_file=path, name="tiny again", user=admin_user)
    assert again.pk == version.pk and not created_again
    assert AuditEvent.objects.filter(verb="model.register").count() == 1


def test_not_a_model_is_refused_and_leaves_nothing(tmp_path, admin_api, media_root) -> None:
    bogus = SimpleUploadedFile("x.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    response = admin_api.post("/api/model-versions/", {"weights": bogus, "name": "bogus"}, format="multipart")
    assert response.status_code == 400
    assert "not a usable model" in response.json()["weights"][0]
    assert not ModelVersion.objects.exists()
    assert not (media_root / "models").exists() or not any((media_root / "models").iterdir())


def test_exactly_one_active_and_activation_repredicts(tiny_weights, admin_user, ready_mosaic) -> None:
    mosaic = ready_mosaic()
    first, _ = model_version_register(weights_file=tiny_weights(seed=1), name="one", user=admin_user,
                                      activate=True)
    assert Prediction.objects.filter(mosaic=mosaic, model_version=first).count() == 1
    second, _ = model_version_register(weights_file=tiny_weights(seed=2), name="two", user=admin_user)
    model_version_activate(version=second, user=admin_user)
    first.refresh_from_db()
    assert (first.status, ModelVersion.objects.get(pk=second.pk).status) == ("retired", "active")
    assert ModelVersion.objects.filter(status="active").count() == 1
    assert Prediction.objects.filter(mosaic=mosaic, model_version=second).count() == 1
    # an earlier version can be made active again; its prediction exists, so nothing is recomputed
    model_version_activate(version=first, user=admin_user)
    assert Prediction.objects.filter(mosaic=mosaic).count() == 2
    assert Job.objects.filter(kind="predict").count() == 2


def test_discarded_cannot_be_activated(tiny_weights, admin_user, media_root) -> None:
    version, _ = model_version_register(weights_file=tiny_weights(), name="x", user=admin_user)
    from inference.services.models import model_version_discard

    model_version_discard(version=version, user=admin_user)
    with pytest.raises(ModelRejected, match="discarded"):
        model_version_activate(version=version, user=admin_user)


def test_command_registers_and_activates(tiny_weights, media_root, capsys) -> None:
    call_command("register_model", str(tiny_weights()), "--name", "cli", "--activate")
    assert ModelVersion.objects.get().status == "active"
    assert "registered" in capsys.readouterr().out


def test_api_register_activate_and_permissions(tiny_weights, admin_api, expert_api, media_root) -> None:
    upload = SimpleUploadedFile("w.safetensors", tiny_weights().read_bytes())
    response = admin_api.post("/api/model-versions/", {"weights": upload, "name": "api"}, format="multipart")
    assert response.status_code == 201, response.content
    version_id = response.json()["id"]
    assert expert_api.get("/api/model-versions/").json()["count"] == 1
    assert expert_api.post(f"/api/model-versions/{version_id}/activate/").status_code == 403
    assert admin_api.post(f"/api/model-versions/{version_id}/activate/").json()["status"] == "active"


def test_admin_lists_every_model(admin_user, client) -> None:
    from django.apps import apps
    from django.contrib import admin

    client.force_login(admin_user)
    for model in [*apps.get_app_config("annotations").get_models(), *apps.get_app_config("inference").get_models()]:
        assert admin.site.is_registered(model), model
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url


def test_demo_style_heldout_report_becomes_held_out_metrics(tmp_path, admin_user, media_root) -> None:
    import torch

    from inference.ml.models import ModelConfig, build_model
    from inference.ml.weights import save_model

    torch.manual_seed(0)
    path = tmp_path / "demo.safetensors"
    save_model(path, build_model(ModelConfig(arch="munet", levels=2, base_channels=4)),
               metadata={"heldout": {"mean_dice": 0.9, "accuracy": 0.95}})
    version, _ = model_version_register(weights_file=path, name="demo", user=admin_user)
    assert version.metrics == {"held_out": {"mean_dice": 0.9, "accuracy": 0.95}}
