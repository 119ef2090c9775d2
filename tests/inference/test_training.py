"""Fine-tuning from expert labels: launch, one round, candidate with metrics beside its parent's, cancel."""

from __future__ import annotations

import io

import numpy as np
import pytest

from annotations import services
from annotations.models import Mosaic
from inference.models import Job, ModelVersion
from inference.services.models import model_version_register
from inference.services.training import FinetuneParams, TrainingRejected, finetune_launch, training_data
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

SMALL_ROUND = {"epochs": 1, "steps_per_epoch": 2, "lr": 1e-3}


def labelled_mosaic(ready_mosaic, admin_user, seed: int, held_out: bool = False) -> Mosaic:
    mosaic = ready_mosaic(width=512, height=512, seed=seed)
    labels = np.full((mosaic.working_height, mosaic.working_width), 255, np.uint8)
    labels[:, : mosaic.working_width // 2] = 2
    labels[:, mosaic.working_width // 2 + 8:] = 3
    services.label_layer_import(mosaic=mosaic, source=io.BytesIO(png_bytes(labels)), filename="l.png",
                                user=admin_user)
    Mosaic.objects.filter(pk=mosaic.pk).update(held_out=held_out)
    mosaic.refresh_from_db()
    return mosaic


@pytest.fixture
def base_version(tiny_weights, admin_user, media_root):
    version, _ = model_version_register(weights_file=tiny_weights(), name="base", user=admin_user, activate=True)
    return version


def test_round_makes_a_candidate_with_parent_metrics(base_version, ready_mosaic, admin_user, admin_api) -> None:
    trained = labelled_mosaic(ready_mosaic, admin_user, seed=1)
    held = labelled_mosaic(ready_mosaic, admin_user, seed=2, held_out=True)
    split = training_data("all")
    assert [m.pk for m, _ in split["train"]] == [trained.pk] and [m.pk for m, _ in split["held_out"]] == [held.pk]

    response = admin_api.post(f"/api/model-versions/{base_version.pk}/finetune/", SMALL_ROUND, format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == "succeeded", job.error
    candidate = ModelVersion.objects.get(pk=job.model_version_id)
    assert (candidate.status, candidate.parent_id) == ("candidate", base_version.pk)
    assert candidate.metrics["held_out"]["mosaics"] == [held.pk]
    assert candidate.metrics["parent_held_out"]["mosaics"] == [held.pk]
    assert 0.0 <= candidate.metrics["held_out"]["accuracy"] <= 1.0
    summary = candidate.training_summary
    assert summary["train_mosaics"] == [trained.pk] and held.pk not in summary["train_mosaics"]
    assert int(summary["labelled_pixels_per_class"]["2"]) > 0
    assert len(job.info["history"]) == 1 and job.info["steps"]
    assert candidate.weights_path.exists() and candidate.weights_sha256


def test_second_launch_returns_the_running_job(base_version, ready_mosaic, admin_user) -> None:
    labelled_mosaic(ready_mosaic, admin_user, seed=1)
    running = Job.objects.create(kind="train", state="running")
    job, created = finetune_launch(params=FinetuneParams(base_version=base_version.pk), user=admin_user)
    assert (job.pk, created) == (running.pk, False)


def test_bad_requests_are_refused(base_version, admin_api, admin_user, expert_api) -> None:
    url = f"/api/model-versions/{base_version.pk}/finetune/"
    assert admin_api.post(url, {"epochs": 0}, format="json").status_code == 400
    assert admin_api.post(url, {"labels": "everything"}, format="json").status_code == 400
    no_labels = admin_api.post(url, SMALL_ROUND, format="json")
    assert no_labels.status_code == 400 and "No mosaic" in no_labels.json()["detail"]
    assert expert_api.post(url, SMALL_ROUND, format="json").status_code == 403
    with pytest.raises(TrainingRejected, match="lr must be"):
        FinetuneParams(base_version=base_version.pk, lr=5.0).validate()
    assert not ModelVersion.objects.filter(status="training").exists()


def test_cancel_discards_the_candidate(base_version, ready_mosaic, admin_user, admin_api, settings) -> None:
    labelled_mosaic(ready_mosaic, admin_user, seed=1)
    from rcmweb.celery import app

    app.conf.task_always_eager = False  # keep it queued
    try:
        job, _ = finetune_launch(params=FinetuneParams(base_version=base_version.pk), user=admin_user)
    finally:
        app.conf.task_always_eager = True
    assert admin_api.post(f"/api/jobs/{job.pk}/cancel/").json()["state"] == "cancelled"
    assert ModelVersion.objects.get(pk=job.model_version_id).status == "discarded"


def test_admin_action_launches_a_round(base_version, ready_mosaic, admin_user, client) -> None:
    from rcmweb.celery import app

    labelled_mosaic(ready_mosaic, admin_user, seed=1)
    client.force_login(admin_user)
    app.conf.task_always_eager = False  # keep it queued: the action only launches
    try:
        response = client.post("/admin/inference/modelversion/",
                               {"action": "finetune", "_selected_action": [base_version.pk]}, follow=True)
    finally:
        app.conf.task_always_eager = True
    assert response.status_code == 200
    job = Job.objects.get(kind="train")
    assert job.params["base_version"] == base_version.pk and "queued" in response.content.decode()
