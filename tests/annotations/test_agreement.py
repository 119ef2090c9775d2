"""Agreement (model vs expert per review, per mosaic and model version; expert vs expert), plots, next region.

The predictions here are hand-made label maps stored as a model version's prediction, so every figure can be
worked out by hand.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from annotations import services
from annotations.agreement import MIN_UNLABELLED_FRACTION, NEXT_REGION_BLOCK_PX
from annotations.models import Review
from annotations.rasters import class_pixel_counts, read_raster, write_raster
from inference.ml.metrics import confusion_matrix
from inference.models import Prediction
from inference.services.models import model_version_activate, model_version_register
from rcmweb.access import Role
from tests.conftest import client_for, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

# ready_mosaic: 512 × 384 px at 1 µm/px → working 128 × 96 px (a working px is 4 full-resolution px).
W, H = 128, 96


def handmade_prediction(mosaic, version, labels: np.ndarray, uncertainty: np.ndarray | None = None) -> Prediction:
    prediction = Prediction.objects.create(mosaic=mosaic, model_version=version, mode="fast", window=512,
                                           overlap=0.5, levels=1, class_pixels=class_pixel_counts(labels))
    write_raster(prediction.level_path(0), labels)
    write_raster(prediction.uncertainty_path, uncertainty if uncertainty is not None else np.zeros_like(labels))
    return prediction


def halves() -> np.ndarray:
    """Model labels: meshwork (2) left of x = 64, ring (3) right of it."""
    labels = np.full((H, W), 3, np.uint8)
    labels[:, :64] = 2
    return labels


@pytest.fixture
def setup(ready_mosaic, tiny_weights, admin_user):
    """A mosaic whose active model version predicted ``halves()``; returns (mosaic, version)."""
    mosaic = ready_mosaic()
    version, _ = model_version_register(weights_file=tiny_weights(seed=1), name="parent", user=admin_user)
    handmade_prediction(mosaic, version, halves(), uncertainty=uncertainty_map())
    model_version_activate(version=version, user=admin_user)  # the prediction exists: nothing is queued
    return mosaic, version


def uncertainty_map() -> np.ndarray:
    """Blocks of 64 px: top-right 200, bottom-left 100, the rest 10."""
    u = np.full((H, W), 10, np.uint8)
    u[:64, 64:] = 200
    u[64:, :64] = 100
    return u


def rect(x0: int, y0: int, x1: int, y1: int) -> dict:
    """A rectangle given in working px, sent in full-resolution px."""
    return {"type": "rectangle", "x0": 4 * x0, "y0": 4 * y0, "x1": 4 * x1, "y1": 4 * y1}


def paint(api, review_id: int, revision: int, value: int, geometry: dict) -> dict:
    response = api.post(f"/api/reviews/{review_id}/edits/",
                        {"revision": revision, "op": "paint", "class_value": value, "geometry": geometry},
                        format="json")
    assert response.status_code == 201, response.content
    return response.json()


def hand_made_review(api, mosaic) -> int:
    """160 px of meshwork where the model says meshwork, 160 px of meshwork where it says ring, 160 px of ring
    where it says ring."""
    rid = api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").json()["id"]
    paint(api, rid, 1, 2, rect(0, 0, 16, 10))
    paint(api, rid, 2, 2, rect(64, 0, 80, 10))
    paint(api, rid, 3, 3, rect(80, 0, 96, 10))
    return rid


def test_review_agreement_on_a_hand_made_case(setup, expert_api) -> None:
    mosaic, _ = setup
    rid = hand_made_review(expert_api, mosaic)
    report = expert_api.get(f"/api/reviews/{rid}/agreement/").json()["report"]
    assert report["labelled_pixels"] == 480
    assert report["accuracy"] == pytest.approx(2 / 3)
    # chance agreement: (320·160 + 160·320) / 480² = 4/9, kappa = (2/3 − 4/9) / (1 − 4/9) = 0.4
    assert report["kappa"] == pytest.approx(0.4)
    assert report["sensitivity"]["meshwork"] == pytest.approx(0.5) and report["sensitivity"]["ring"] == 1.0
    assert report["precision"]["meshwork"] == 1.0 and report["precision"]["ring"] == pytest.approx(0.5)
    assert report["dice"]["meshwork"] == pytest.approx(2 / 3) and report["dice"]["ring"] == pytest.approx(2 / 3)
    assert report["specificity"]["meshwork"] == 1.0 and report["specificity"]["ring"] == pytest.approx(0.5)
    assert report["sensitivity"]["nested"] is None  # absent class: undefined, not zero
    assert report["confusion"][2][2:4] == [160, 160] and report["confusion"][3][2:4] == [0, 160]


def test_each_edit_answers_the_agreement_and_undo_changes_it_back(setup, expert_api) -> None:
    mosaic, _ = setup
    rid = hand_made_review(expert_api, mosaic)
    data = paint(expert_api, rid, 4, 3, rect(70, 0, 80, 10))  # 100 of the disagreeing px become ring
    assert data["agreement"]["report"]["accuracy"] == pytest.approx(420 / 480)
    undo = expert_api.post(f"/api/reviews/{rid}/undo/", {"revision": 5}, format="json").json()
    assert undo["agreement"]["report"]["accuracy"] == pytest.approx(2 / 3)
    review = Review.objects.get(pk=rid)
    stored = read_raster(review.layer.raster_path)
    np.testing.assert_array_equal(np.asarray(review.confusion), confusion_matrix(stored, halves()))


def test_mosaic_agreement_per_model_version_and_expert_pairs(setup, expert_api, admin_user, admin_api,
                                                             tiny_weights, make_user) -> None:
    mosaic, parent = setup
    rid = hand_made_review(expert_api, mosaic)
    child, _ = model_version_register(weights_file=tiny_weights(seed=2), name="child", parent=parent,
                                      user=admin_user)
    handmade_prediction(mosaic, child, np.full((H, W), 2, np.uint8))  # the fine-tuned model says meshwork
    imported = np.full((H, W), 255, np.uint8)
    imported[0:10, 64:72] = 2  # overlaps the review's disagreeing meshwork: both experts say meshwork
    imported[20:30, 0:10] = 0  # nobody else labelled this
    services.label_layer_import(mosaic=mosaic, source=io.BytesIO(png_bytes(imported)), filename="c.png",
                                user=admin_user)
    other = client_for(make_user("olga", Role.EXPERT))
    other_rid = other.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").json()["id"]
    paint(other, other_rid, 1, 3, rect(0, 0, 8, 10))  # says ring where erin said meshwork: 80 px

    data = admin_api.get(f"/api/mosaics/{mosaic.pk}/agreement/").json()
    versions = {v["name"]: v for v in data["versions"]}
    erin = read_raster(Review.objects.get(pk=rid).layer.raster_path)
    olga = read_raster(Review.objects.get(pk=other_rid).layer.raster_path)
    for name, model in (("parent", halves()), ("child", np.full((H, W), 2, np.uint8))):
        expected = sum(confusion_matrix(layer, model) for layer in (erin, imported, olga))
        assert versions[name]["report"]["confusion"] == expected.tolist(), name
        assert len(versions[name]["layers"]) == 3
    # parent: erin 320 of 480 right, the import 0 of 180, olga 0 of 80 → 320/740;
    # child (all meshwork): erin 320, the import's 80 meshwork px, olga 0 → 400/740
    assert versions["parent"]["report"]["accuracy"] == pytest.approx(320 / 740)
    assert versions["child"]["report"]["accuracy"] == pytest.approx(400 / 740)
    assert versions["child"]["parent"] == parent.pk
    assert versions["child"]["delta_vs_parent"]["accuracy"] == pytest.approx(80 / 740)
    assert versions["parent"]["delta_vs_parent"] is None
    pairs = {(p["a"]["author"], p["b"]["author"]): p for p in data["expert_pairs"]}
    assert pairs[("erin", "ada")]["overlap_pixels"] == 80
    assert pairs[("erin", "ada")]["report"]["accuracy"] == 1.0
    assert pairs[("erin", "olga")]["overlap_pixels"] == 80
    assert pairs[("erin", "olga")]["report"]["accuracy"] == 0.0
    assert ("ada", "olga") not in pairs and ("olga", "ada") not in pairs  # no overlap

    # an expert gets the same pooled figures, but nothing of another expert's review
    mine = expert_api.get(f"/api/mosaics/{mosaic.pk}/agreement/").json()
    assert [v["report"] for v in mine["versions"]] == [v["report"] for v in data["versions"]]
    assert {layer["author"] for layer in mine["layers"]} == {"erin", "ada"} and mine["other_layers"] == 1
    assert {layer["author"] for v in mine["versions"] for layer in v["layers"]} == {"erin", "ada"}
    assert [(p["a"]["author"], p["b"]["author"]) for p in mine["expert_pairs"]] == [("erin", "ada")]


def test_confusion_plots_are_png(setup, expert_api) -> None:
    mosaic, version = setup
    rid = hand_made_review(expert_api, mosaic)
    for url in (f"/api/reviews/{rid}/agreement/plot/", f"/api/mosaics/{mosaic.pk}/agreement/plot/",
                f"/api/mosaics/{mosaic.pk}/agreement/plot/?version={version.pk}"):
        response = expert_api.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/png", url
        assert Image.open(io.BytesIO(response.content)).size[0] > 300
    assert expert_api.get(f"/api/mosaics/{mosaic.pk}/agreement/plot/?version=999").status_code == 404


def test_trainees_get_no_agreement(setup, trainee_user) -> None:
    mosaic, _ = setup
    assert client_for(trainee_user).get(f"/api/mosaics/{mosaic.pk}/agreement/").status_code == 403


def next_region(api, rid: int) -> dict | None:
    response = api.get(f"/api/reviews/{rid}/next-region/")
    assert response.status_code == 200
    return response.json()["region"]


def test_next_region_is_the_most_uncertain_unlabelled_block(setup, expert_api, admin_user) -> None:
    mosaic, _ = setup
    rid = expert_api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").json()["id"]
    region = next_region(expert_api, rid)
    assert NEXT_REGION_BLOCK_PX == 64
    assert region["working_bbox"] == [64, 0, 128, 64]
    assert (region["x0"], region["y0"], region["x1"], region["y1"]) == (256, 0, 512, 256)
    assert region["mean_uncertainty"] == pytest.approx(200 / 255) and region["remaining"] == 4
    # another expert's imported labels cover more than half of that block: it is no longer proposed
    labels = np.full((H, W), 255, np.uint8)
    labels[:40, 64:] = 0
    assert 40 / 64 > 1 - MIN_UNLABELLED_FRACTION
    services.label_layer_import(mosaic=mosaic, source=io.BytesIO(png_bytes(labels)), filename="l.png",
                                user=admin_user)
    assert next_region(expert_api, rid)["working_bbox"] == [0, 64, 64, 96]


def test_regions_marked_seen_are_skipped_until_none_is_left(setup, expert_api) -> None:
    mosaic, _ = setup
    rid = expert_api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").json()["id"]
    seen = []
    while (region := next_region(expert_api, rid)) is not None:
        seen.append(region["working_bbox"])
        response = expert_api.post(f"/api/reviews/{rid}/next-region/seen/",
                                   {k: region[k] for k in ("x0", "y0", "x1", "y1")}, format="json")
        assert response.status_code == 200
        assert len(seen) <= 4
    assert seen == [[64, 0, 128, 64], [0, 64, 64, 96], [0, 0, 64, 64], [64, 64, 128, 96]]
    assert Review.objects.get(pk=rid).seen_regions == seen


def test_bad_seen_region_is_400(setup, expert_api) -> None:
    mosaic, _ = setup
    rid = expert_api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").json()["id"]
    for body in ({"x0": 0, "y0": 0, "x1": "a", "y1": 4}, {"x0": 0}, {"x0": 900, "y0": 900, "x1": 990, "y1": 990}):
        assert expert_api.post(f"/api/reviews/{rid}/next-region/seen/", body, format="json").status_code == 400
    assert Review.objects.get(pk=rid).seen_regions == []


def test_agreement_follows_a_prediction_made_again(setup, expert_api) -> None:
    mosaic, _ = setup
    rid = hand_made_review(expert_api, mosaic)
    prediction = Prediction.objects.get(mosaic=mosaic)
    ring = np.full((H, W), 3, np.uint8)
    write_raster(prediction.level_path(0), ring)  # the prediction job stores new labels, then saves its row
    later = prediction.level_path(0).stat().st_mtime_ns + 10**9
    os.utime(prediction.level_path(0), ns=(later, later))
    prediction.save()
    assert expert_api.get(f"/api/reviews/{rid}/agreement/").json()["report"]["accuracy"] == pytest.approx(1 / 3)
    paint(expert_api, rid, 4, 3, rect(0, 0, 16, 10))  # meshwork → ring where the model now says ring
    review = Review.objects.get(pk=rid)
    stored = read_raster(review.layer.raster_path)
    np.testing.assert_array_equal(np.asarray(review.confusion), confusion_matrix(stored, ring))
    assert review.confusion_basis == Prediction.objects.get(pk=prediction.pk).updated_at
