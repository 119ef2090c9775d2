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


# --- Agreement with the experts' reviews ----------------------------------------------------------------------


def working_rect(x0: int, y0: int, x1: int, y1: int) -> dict:
    """A rectangle given in working px, sent in full-resolution px (the mosaics here are at 1 µm/px: 4 px each)."""
    return {"type": "rectangle", "x0": 4 * x0, "y0": 4 * y0, "x1": 4 * x1, "y1": 4 * y1}


def submitted_review(mosaic: Mosaic, expert, paints: list[tuple[int, tuple[int, int, int, int]]]):
    """An expert's review of ``mosaic`` painting each (class value, working-px box), then submitted."""
    from annotations.reviews import review_edit, review_start, review_submit

    review, _ = review_start(mosaic=mosaic, user=expert)
    revision = review.layer.revision
    for value, box in paints:
        revision = review_edit(review=review, user=expert, revision=revision, op="paint",
                               geometry=working_rect(*box), class_value=value).revision
    return review_submit(review=review, user=expert)


def expert_array(review) -> np.ndarray:
    from annotations.layers import label_layer_array

    review.layer.refresh_from_db()
    return np.asarray(label_layer_array(review.layer))


def figures_of(truth: np.ndarray, predicted: np.ndarray) -> dict:
    from inference.ml.metrics import SegmentationReport

    report = SegmentationReport.from_maps(truth, predicted).to_dict()
    return {key: report[key] for key in ("accuracy", "kappa", "mean_dice", "dice", "labelled_pixels")}


def fast_map(weights_path, mosaic: Mosaic) -> np.ndarray:
    from annotations.rasters import read_raster
    from inference.ml.infer import predict_mosaic
    from inference.ml.weights import load_model

    image = read_raster(mosaic.folder / "working.png")
    return predict_mosaic(load_model(weights_path).model, image, mode="fast", keep_probabilities=False).labels


@pytest.fixture
def reviewed(base_version, ready_mosaic, admin_user, expert_user):
    """A trained-on mosaic and a held-out one (labelled, predicted by the active base version), each with one
    submitted expert review; the held-out one's review is the newer."""
    trained = labelled_mosaic(ready_mosaic, admin_user, seed=1)
    held = labelled_mosaic(ready_mosaic, admin_user, seed=2, held_out=True)
    paints = [(2, (4, 4, 60, 60)), (3, (70, 70, 120, 120)), (4, (70, 4, 100, 40))]
    first = submitted_review(trained, expert_user, paints)
    second = submitted_review(held, expert_user, paints)
    return trained, held, first, second


def test_reviews_are_compared_newest_first_with_the_parents_stored_or_computed_labels(
        reviewed, base_version, tiny_weights, expert_user) -> None:
    from annotations.rasters import write_raster
    from inference.ml.weights import load_model
    from inference.models import Prediction
    from inference.services.training import compare_with_reviews, reviews_to_compare

    trained, held, first, second = reviewed
    # The parent's stored prediction of the trained-on mosaic says exactly what the expert painted: it must be
    # read (agreement 1), not made again. The held-out one has none: it must be made in fast mode.
    stored = Prediction.objects.get(mosaic=trained, model_version=base_version)
    perfect = np.where(expert_array(first) == 255, 0, expert_array(first)).astype(np.uint8)
    write_raster(stored.level_path(0), perfect)
    Prediction.objects.filter(mosaic=held, model_version=base_version).delete()
    candidate_weights = tiny_weights(seed=7, name="candidate")
    reviews, submitted = reviews_to_compare()
    assert [r.pk for r in reviews] == [second.pk, first.pk] and submitted == 2

    result = compare_with_reviews(
        candidate=load_model(candidate_weights).model, parent=base_version,
        parent_model=lambda: load_model(base_version.weights_path).model, reviews=reviews, submitted=submitted,
        splits={trained.pk: "trained"})

    assert (result["compared"], result["submitted"], result["parent"]) == (2, 2, base_version.pk)
    newest, oldest = result["per_review"]
    assert (newest["review"], newest["mosaic"], newest["split"]) == (second.pk, held.pk, "held_out")
    assert (oldest["review"], oldest["mosaic"], oldest["split"]) == (first.pk, trained.pk, "trained")
    assert newest["expert"] == expert_user.get_username() == oldest["expert"]
    assert oldest["parent_prediction"] == {"source": "stored", "mode": stored.mode, "prediction": stored.pk}
    assert newest["parent_prediction"] == {"source": "computed", "mode": "fast"}

    assert oldest["parent"] == figures_of(expert_array(first), perfect)
    assert oldest["parent"]["accuracy"] == 1.0 and oldest["parent"]["labelled_pixels"] == 56 * 56 + 50 * 50 + 30 * 36
    assert oldest["candidate"] == figures_of(expert_array(first), fast_map(candidate_weights, trained))
    assert oldest["candidate"]["accuracy"] < 1.0  # the two sides differ
    assert newest["parent"] == figures_of(expert_array(second), fast_map(base_version.weights_path, held))
    assert newest["candidate"] == figures_of(expert_array(second), fast_map(candidate_weights, held))
    assert newest["candidate"] != newest["parent"]
    # pooled per split: one review each here, so the pooled figures are the review's
    assert set(result["splits"]) == {"held_out", "trained"}
    trained_pool = result["splits"]["trained"]
    assert (trained_pool["reviews"], trained_pool["mosaics"]) == ([first.pk], [trained.pk])
    assert trained_pool["parent"]["kappa"] == oldest["parent"]["kappa"] == 1.0
    assert trained_pool["candidate"]["mean_dice"] == oldest["candidate"]["mean_dice"]
    assert result["splits"]["held_out"]["labelled_pixels"] == newest["labelled_pixels"]


def test_reviews_compared_are_capped_newest_first_and_only_submitted_ones_with_labels(
        reviewed, ready_mosaic, expert_user, monkeypatch) -> None:
    from annotations.reviews import review_start
    from inference.services import training

    trained, held, first, second = reviewed
    review_start(mosaic=trained, user=expert_user)  # in progress: not compared
    submitted_review(held, expert_user, [])  # submitted, nothing labelled: not compared
    monkeypatch.setattr(training, "MAX_REVIEWS_COMPARED", 1)
    reviews, submitted = training.reviews_to_compare()
    assert [r.pk for r in reviews] == [second.pk] and submitted == 2


def test_a_round_stores_the_review_agreement_of_candidate_and_parent(reviewed, base_version, admin_api, admin_user,
                                                                     client) -> None:
    trained, held, first, second = reviewed
    response = admin_api.post(f"/api/model-versions/{base_version.pk}/finetune/", {**SMALL_ROUND, "labels": "imported"},
                              format="json")
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == "succeeded", job.error
    candidate = ModelVersion.objects.get(pk=job.model_version_id)
    reviews = candidate.metrics["reviews"]
    assert [(row["review"], row["split"]) for row in reviews["per_review"]] == [(second.pk, "held_out"),
                                                                                (first.pk, "trained")]
    held_row = reviews["per_review"][0]
    # the held-out review reuses the held-out evaluation's label maps of both models
    assert held_row["parent_prediction"]["source"] == "evaluation"
    assert held_row["candidate"] == figures_of(expert_array(second), fast_map(candidate.weights_path, held))
    assert held_row["parent"] == figures_of(expert_array(second), fast_map(base_version.weights_path, held))
    assert reviews["per_review"][1]["parent_prediction"]["source"] == "stored"
    assert reviews["splits"]["held_out"]["candidate"]["accuracy"] == held_row["candidate"]["accuracy"]
    # the API shows it with the version
    shown = admin_api.get(f"/api/model-versions/{candidate.pk}/").json()
    assert shown["metrics"]["reviews"]["splits"]["trained"]["reviews"] == [first.pk]
    # and so does the Django admin, as a table
    client.force_login(admin_user)
    page = client.get(f"/admin/inference/modelversion/{candidate.pk}/change/").content.decode()
    held_pool = reviews["splits"]["held_out"]
    assert "Agreement with the experts&#x27; reviews" in page or "Agreement with the experts' reviews" in page
    assert (f"<th>held out</th><td>1</td><td>{held_pool['labelled_pixels']:,}</td>"
            f"<td>{held_pool['parent']['accuracy']:.3f}</td><td>{held_pool['candidate']['accuracy']:.3f}</td>") in page
    assert "trained on (optimistic)" in page and "2 of 2 submitted reviews compared" in page


def test_fast_labels_predict_on_the_device_the_model_is_on(ready_mosaic, monkeypatch) -> None:
    """A candidate trained on a GPU is evaluated there; a CPU model on the CPU (the device follows the weights)."""
    import torch

    from inference.services import training

    mosaic = ready_mosaic(width=256, height=256, seed=3)
    seen = {}

    def fake_predict(model, image, **kwargs):  # noqa: ANN001, ANN003, ANN202 - records the call only
        seen.update(kwargs)

        class Result:
            labels = np.zeros(image.shape, np.uint8)

        return Result()

    monkeypatch.setattr(training, "predict_mosaic", fake_predict)
    model = torch.nn.Conv2d(1, 6, 1).to("meta")
    training.fast_labels(model, mosaic)
    assert seen["device"] == torch.device("meta")
    assert seen["mode"] == "fast"
