"""Expert reviews through the API: start/resume, edits, refusals that change nothing, undo/redo, history,
rebuild, submit, permissions and concurrency."""

from __future__ import annotations

import base64
import random
import threading

import numpy as np
import pytest
from django.db import connection

from annotations import reviews
from annotations.geometry import MAX_POINTS, MAX_RADIUS_UM
from annotations.models import AuditEvent, Edit, LabelLayer, Review
from annotations.rasters import read_raster
from inference.ml.metrics import confusion_matrix
from inference.models import Prediction
from inference.services.models import model_version_register
from rcmweb.access import Role
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

# The ready_mosaic fixture's mosaic: 512 × 384 px at 1 µm/px, working 128 × 96 px at 4 µm/px.


@pytest.fixture
def mosaic(ready_mosaic):
    """A ready mosaic without a model (most behaviours need no prediction; predicting costs seconds)."""
    return ready_mosaic()


@pytest.fixture
def predicted(tiny_weights, admin_user, ready_mosaic):
    """A ready mosaic predicted (at ingest) by an active tiny model."""
    model_version_register(weights_file=tiny_weights(), name="tiny", user=admin_user, activate=True)
    return ready_mosaic()


def start(api, mosaic) -> dict:
    response = api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def stroke(points: list[list[float]], radius_um: float = 20.0) -> dict:
    return {"type": "stroke", "points": points, "radius_um": radius_um}


def rectangle(x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "rectangle", "x0": x0, "y0": y0, "x1": x1, "y1": y1}


def post_edit(api, review_id: int, revision: int, op: str = "paint", geometry: dict | None = None,
              class_value: int | None = 2):
    body = {"revision": revision, "op": op, "geometry": geometry or stroke([[100, 100], [200, 150]])}
    if op == "paint":
        body["class_value"] = class_value
    return api.post(f"/api/reviews/{review_id}/edits/", body, format="json")


def raster(review_id: int) -> np.ndarray:
    return read_raster(Review.objects.get(pk=review_id).layer.raster_path)


def snapshot(review_id: int) -> tuple:
    """Everything an edit may change: raster bytes, layer row, review row, edit and audit rows."""
    review = Review.objects.get(pk=review_id)
    layer = LabelLayer.objects.get(pk=review.layer_id)
    return (layer.raster_path.read_bytes(), layer.revision, layer.labelled_pixels, review.state, review.confusion,
            review.done_top_id, review.redo_top_id, review.seen_regions, Edit.objects.count(),
            AuditEvent.objects.count())


def test_start_creates_an_empty_review_against_the_active_prediction_and_resumes_it(predicted, expert_api) -> None:
    mosaic = predicted
    response = expert_api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["prediction"] == Prediction.objects.get(mosaic=mosaic).pk and data["state"] == "in_progress"
    assert (data["revision"], data["labelled_pixels"]) == (1, 0)
    layer = LabelLayer.objects.get(pk=data["layer"])
    assert layer.source == "review" and layer.raster_path.suffix == ".npy"
    assert (read_raster(layer.raster_path) == 255).all()
    assert read_raster(layer.raster_path).shape == (mosaic.working_height, mosaic.working_width)
    again = expert_api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json")
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    assert Review.objects.count() == 1


def test_only_experts_and_admins_start_reviews(mosaic, trainee_user, admin_api) -> None:
    assert client_for(trainee_user).post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").status_code == 403
    assert admin_api.post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").status_code == 201
    assert client_for(None).post(f"/api/mosaics/{mosaic.pk}/reviews/", format="json").status_code in (401, 403)


def test_paint_sets_the_class_bumps_the_revision_and_answers_the_new_pixels(mosaic, expert_api) -> None:
    review = start(expert_api, mosaic)
    response = post_edit(expert_api, review["id"], 1, class_value=3)
    assert response.status_code == 201, response.content
    data = response.json()
    stored = raster(review["id"])
    assert data["revision"] == 2 and LabelLayer.objects.get(pk=review["layer"]).revision == 2
    x0, y0, x1, y1 = data["bbox"]
    assert set(np.unique(stored)) == {3, 255}
    assert data["changed_pixels"] == data["labelled_pixels"] == int((stored == 3).sum())
    assert (stored[:y0] == 255).all() and (stored[y1:] == 255).all() and (stored[:, x1:] == 255).all()
    patch = np.frombuffer(base64.b64decode(data["patch"]["data"]), np.uint8).reshape(y1 - y0, x1 - x0)
    np.testing.assert_array_equal(patch, stored[y0:y1, x0:x1])
    edit = Edit.objects.get()
    assert (edit.op, edit.class_value, edit.revision_before, edit.revision_after) == ("paint", 3, 1, 2)
    assert edit.geometry == stroke([[100, 100], [200, 150]]) and edit.bbox == data["bbox"]
    assert data["raster_url"].endswith(f"/layer/{review['layer']}/r2/labels.png")


def test_erase_sets_pixels_back_to_unlabelled(mosaic, expert_api) -> None:
    review = start(expert_api, mosaic)
    post_edit(expert_api, review["id"], 1, geometry=rectangle(0, 0, 200, 200), class_value=1)
    response = post_edit(expert_api, review["id"], 2, op="erase", geometry=rectangle(0, 0, 100, 200))
    assert response.status_code == 201, response.content
    stored = raster(review["id"])
    assert (stored[:50, :25] == 255).all() and (stored[:50, 25:50] == 1).all()
    assert response.json()["changed_pixels"] == 25 * 50


def test_accept_copies_the_model_labels_inside_the_geometry(predicted, expert_api) -> None:
    mosaic = predicted
    model = read_raster(Prediction.objects.get(mosaic=mosaic).level_path(0))
    review = start(expert_api, mosaic)
    response = post_edit(expert_api, review["id"], 1, op="accept", geometry=rectangle(40, 80, 240, 200))
    assert response.status_code == 201, response.content
    stored = raster(review["id"])
    np.testing.assert_array_equal(stored[20:50, 10:60], model[20:50, 10:60])
    stored[20:50, 10:60] = 255
    assert (stored == 255).all()


def test_accept_without_prediction_is_409(mosaic, expert_api) -> None:
    review = start(expert_api, mosaic)
    assert review["prediction"] is None
    before = snapshot(review["id"])
    response = post_edit(expert_api, review["id"], 1, op="accept", geometry=rectangle(0, 0, 100, 100))
    assert response.status_code == 409 and "no prediction" in response.json()["detail"]
    assert snapshot(review["id"]) == before


def test_stale_revision_is_409_with_the_current_revision_and_changes_nothing(mosaic, expert_api) -> None:
    review = start(expert_api, mosaic)
    post_edit(expert_api, review["id"], 1)
    before = snapshot(review["id"])
    response = post_edit(expert_api, review["id"], 1, class_value=4)
    assert response.status_code == 409
    assert response.json()["revision"] == 2 and "revision 1" in response.json()["detail"]
    assert snapshot(review["id"]) == before
    undo = expert_api.post(f"/api/reviews/{review['id']}/undo/", {"revision": 5}, format="json")
    assert undo.status_code == 409 and snapshot(review["id"]) == before


BAD_EDITS = {
    "nan literal": ('{"revision": 2, "op": "paint", "class_value": 2, "geometry": {"type": "stroke", '
                    '"points": [[NaN, 5]], "radius_um": 20}}', "not JSON compliant"),
    "infinity literal": ('{"revision": 2, "op": "paint", "class_value": 2, "geometry": {"type": "rectangle", '
                         '"x0": 0, "y0": 0, "x1": Infinity, "y1": 5}}', "not JSON compliant"),
    "overflowing number": ('{"revision": 2, "op": "erase", "geometry": {"type": "rectangle", '
                           '"x0": 0, "y0": 0, "x1": 1e999, "y1": 5}}', "geometry"),
    "string coordinate": ({"geometry": stroke([["100", 5]])}, "must be a number"),
    "too many points": ({"geometry": stroke([[100, 100]] * (MAX_POINTS + 1))}, f"at most {MAX_POINTS}"),
    "zero radius": ({"geometry": stroke([[100, 100]], radius_um=0)}, "above 0"),
    "negative radius": ({"geometry": stroke([[100, 100]], radius_um=-5)}, "above 0"),
    "radius above limit": ({"geometry": stroke([[100, 100]], radius_um=MAX_RADIUS_UM + 1)}, "at most"),
    "entirely outside": ({"geometry": rectangle(600, 400, 700, 500)}, "covers no pixel"),
    "far outside": ({"geometry": stroke([[1e7, 10]])}, "far outside"),
    "unknown class": ({"class_value": 6}, "Unknown class value"),
    "class 255 is not a class": ({"class_value": 255}, "Unknown class value"),
    "no class for paint": ({"class_value": None}, "Unknown class value"),
    "class with erase": ({"op": "erase", "class_value": 2}, "takes no class value"),
    "unknown op": ({"op": "fill"}, "valid choice"),
    "undo as an edit op": ({"op": "undo"}, "valid choice"),
    "unknown geometry type": ({"geometry": {"type": "circle", "points": [[1, 2]]}}, "Unknown geometry type"),
    "polygon of two points": ({"geometry": {"type": "polygon", "points": [[1, 2], [30, 40]]}}, "at least 3"),
    "no revision": ({"revision": None}, "revision"),
    "geometry not an object": ({"geometry": "M 0 0 L 10 10"}, "must be an object"),
}


def test_bad_edits_are_refused_with_400_and_change_nothing(mosaic, expert_api) -> None:
    review = start(expert_api, mosaic)
    post_edit(expert_api, review["id"], 1)
    before = snapshot(review["id"])
    for case, (change, expected) in BAD_EDITS.items():
        if isinstance(change, str):
            response = expert_api.generic("POST", f"/api/reviews/{review['id']}/edits/", change,
                                          content_type="application/json")
        else:
            body = {"revision": 2, "op": "paint", "class_value": 2, "geometry": stroke([[100, 100]])}
            body.update(change)
            body = {k: v for k, v in body.items() if v is not None or k == "class_value"}
            response = expert_api.post(f"/api/reviews/{review['id']}/edits/", body, format="json")
        assert response.status_code == 400, (case, response.content)
        assert expected in response.content.decode(), (case, response.content)
        assert snapshot(review["id"]) == before, case


def test_partly_outside_geometry_is_clipped(mosaic, expert_api) -> None:
    review = start(expert_api, mosaic)
    response = post_edit(expert_api, review["id"], 1, geometry=rectangle(480, 360, 800, 700))
    assert response.status_code == 201
    assert response.json()["bbox"] == [120, 90, 128, 96]
    assert (raster(review["id"])[90:, 120:] == 2).all()


def test_another_experts_review_is_404_everywhere(mosaic, expert_api, make_user) -> None:
    review = start(expert_api, mosaic)
    post_edit(expert_api, review["id"], 1)
    before = snapshot(review["id"])
    other = client_for(make_user("olga", Role.EXPERT))
    rid = review["id"]
    assert other.get(f"/api/reviews/{rid}/").status_code == 404
    assert other.get(f"/api/reviews/{rid}/edits/").status_code == 404
    assert other.get(f"/api/reviews/{rid}/agreement/").status_code == 404
    assert other.get(f"/api/reviews/{rid}/next-region/").status_code == 404
    assert post_edit(other, rid, 2).status_code == 404
    for step in ("undo", "redo", "submit", "next-region/seen"):
        assert other.post(f"/api/reviews/{rid}/{step}/", {"revision": 2}, format="json").status_code == 404, step
    assert other.get("/api/reviews/").json()["count"] == 0
    assert snapshot(rid) == before


def test_admins_see_who_reviewed_what_but_do_not_edit_others_reviews(mosaic, expert_api, admin_api) -> None:
    review = start(expert_api, mosaic)
    listed = admin_api.get("/api/reviews/").json()["results"]
    assert [(r["id"], r["expert"]) for r in listed] == [(review["id"], "erin")]
    before = snapshot(review["id"])
    assert post_edit(admin_api, review["id"], 1).status_code == 403
    assert admin_api.post(f"/api/reviews/{review['id']}/submit/", format="json").status_code == 403
    assert snapshot(review["id"]) == before


def test_list_filters_by_mosaic_expert_and_state(mosaic, expert_api, admin_api, ready_mosaic) -> None:
    other_mosaic = ready_mosaic(seed=1)
    mine = start(expert_api, mosaic)
    start(expert_api, other_mosaic)
    admins = start(admin_api, mosaic)
    expert_api.post(f"/api/reviews/{mine['id']}/submit/", format="json")

    def ids(**params: object) -> set[int]:
        return {r["id"] for r in admin_api.get("/api/reviews/", params).json()["results"]}

    assert ids(mosaic=mosaic.pk) == {mine["id"], admins["id"]}
    assert ids(expert="ada") == {admins["id"]} and ids(expert=admins["expert_id"]) == {admins["id"]}
    assert ids(state="submitted") == {mine["id"]}
    assert admin_api.get("/api/reviews/", {"state": "lost"}).status_code == 400


def test_submitted_review_refuses_every_change_with_409(mosaic, expert_api) -> None:
    review = start(expert_api, mosaic)
    post_edit(expert_api, review["id"], 1)
    submitted = expert_api.post(f"/api/reviews/{review['id']}/submit/", format="json")
    assert submitted.status_code == 200 and submitted.json()["state"] == "submitted"
    assert submitted.json()["submitted_at"]
    before = snapshot(review["id"])
    assert post_edit(expert_api, review["id"], 2).status_code == 409
    assert expert_api.post(f"/api/reviews/{review['id']}/undo/", {"revision": 2}, format="json").status_code == 409
    assert expert_api.post(f"/api/reviews/{review['id']}/submit/", format="json").status_code == 409
    assert snapshot(review["id"]) == before
    assert start(expert_api, mosaic)["id"] != review["id"]  # a new review starts after a submitted one


def test_undo_and_redo_restore_exact_rasters_and_survive_a_reload(mosaic, expert_api) -> None:
    rid = start(expert_api, mosaic)["id"]
    empty = raster(rid)
    post_edit(expert_api, rid, 1, class_value=2, geometry=rectangle(0, 0, 200, 200))
    after_a = raster(rid)
    post_edit(expert_api, rid, 2, class_value=4, geometry=stroke([[50, 50], [300, 300]], 30))
    after_b = raster(rid)

    def step(name: str, revision: int) -> dict:
        response = expert_api.post(f"/api/reviews/{rid}/{name}/", {"revision": revision}, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    assert step("undo", 3)["revision"] == 4
    np.testing.assert_array_equal(raster(rid), after_a)
    assert expert_api.get(f"/api/reviews/{rid}/").json()["can_redo"] is True  # a reload sees the redo
    step("undo", 4)
    np.testing.assert_array_equal(raster(rid), empty)
    assert expert_api.post(f"/api/reviews/{rid}/undo/", {"revision": 5}, format="json").status_code == 409
    step("redo", 5)
    np.testing.assert_array_equal(raster(rid), after_a)
    data = step("redo", 6)
    np.testing.assert_array_equal(raster(rid), after_b)
    assert data["can_redo"] is False and data["labelled_pixels"] == int((after_b != 255).sum())
    assert LabelLayer.objects.get(review__pk=rid).labelled_pixels == int((after_b != 255).sum())


def test_a_new_edit_after_undo_drops_the_redo(mosaic, expert_api) -> None:
    rid = start(expert_api, mosaic)["id"]
    post_edit(expert_api, rid, 1, class_value=2)
    expert_api.post(f"/api/reviews/{rid}/undo/", {"revision": 2}, format="json")
    post_edit(expert_api, rid, 3, class_value=5, geometry=rectangle(0, 0, 40, 40))
    response = expert_api.post(f"/api/reviews/{rid}/redo/", {"revision": 4}, format="json")
    assert response.status_code == 409 and "Nothing to redo" in response.json()["detail"]
    assert set(np.unique(raster(rid))) == {5, 255}


def test_history_is_readable(mosaic, expert_api) -> None:
    rid = start(expert_api, mosaic)["id"]
    post_edit(expert_api, rid, 1, class_value=3)
    post_edit(expert_api, rid, 2, op="erase", geometry=rectangle(0, 0, 40, 40))
    expert_api.post(f"/api/reviews/{rid}/undo/", {"revision": 3}, format="json")
    rows = expert_api.get(f"/api/reviews/{rid}/edits/").json()["results"]
    assert [(r["op"], r["class_name"], r["geometry_type"], r["undone"], r["author"]) for r in rows] == [
        ("paint", "Ring", "stroke", False, "erin"),
        ("erase", None, "rectangle", True, "erin"),
        ("undo", None, None, None, "erin"),
    ]
    assert rows[2]["target"] == rows[1]["id"] and rows[0]["changed_pixels"] > 0
    assert [r["revision_after"] for r in rows] == [2, 3, 4] and all(r["created_at"] for r in rows)


def test_audit_rows_for_start_submit_and_every_edit(mosaic, expert_api, expert_user) -> None:
    rid = start(expert_api, mosaic)["id"]
    post_edit(expert_api, rid, 1)
    expert_api.post(f"/api/reviews/{rid}/undo/", {"revision": 2}, format="json")
    expert_api.post(f"/api/reviews/{rid}/redo/", {"revision": 3}, format="json")
    expert_api.post(f"/api/reviews/{rid}/submit/", format="json")
    events = AuditEvent.objects.filter(target_type="annotations.review", target_id=str(rid)).order_by("id")
    assert [e.verb for e in events] == ["review.start", "review.paint", "review.undo", "review.redo",
                                       "review.submit"]
    assert all(e.actor == expert_user for e in events)
    assert events[1].details["edit"] == Edit.objects.get(op="paint").pk


def test_a_failure_after_the_pixels_are_written_puts_them_back(mosaic, expert_api, expert_user,
                                                               monkeypatch) -> None:
    rid = start(expert_api, mosaic)["id"]
    post_edit(expert_api, rid, 1)
    before = snapshot(rid)

    def broken(**kwargs: object) -> None:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(reviews, "audit_record", broken)
    with pytest.raises(RuntimeError):
        reviews.review_edit(review=Review.objects.get(pk=rid), user=expert_user, revision=2, op="paint",
                            class_value=5, geometry=rectangle(0, 0, 400, 300))
    assert snapshot(rid) == before


def test_rebuild_replays_a_random_session_exactly_and_the_agreement_follows(predicted, expert_api,
                                                                            expert_user) -> None:
    mosaic = predicted
    rid = start(expert_api, mosaic)["id"]
    rng = random.Random(7)
    revision = 1
    ops = {"paint": 0, "erase": 0, "accept": 0, "undo": 0, "redo": 0}
    for _ in range(60):
        review = Review.objects.get(pk=rid)
        op = rng.choice(["paint", "paint", "paint", "erase", "accept", "undo", "undo", "redo"])
        try:
            if op in ("undo", "redo"):
                service = reviews.review_undo if op == "undo" else reviews.review_redo
                result = service(review=review, user=expert_user, revision=revision)
            else:
                x, y = rng.uniform(-40, 500), rng.uniform(-40, 380)
                geometry = rng.choice([
                    stroke([[x + rng.uniform(-80, 80), y + rng.uniform(-80, 80)] for _ in range(5)],
                           rng.uniform(2, 40)),
                    rectangle(x, y, x + rng.uniform(5, 150), y + rng.uniform(5, 150)),
                    {"type": "polygon", "points": [[x, y], [x + 90, y + 10], [x + 30, y + 70]]},
                ])
                result = reviews.review_edit(review=review, user=expert_user, revision=revision, op=op,
                                             class_value=rng.randrange(6) if op == "paint" else None,
                                             geometry=geometry)
        except reviews.ReviewConflict:  # nothing to undo or redo
            continue
        except reviews.EditRejected:  # a random shape entirely outside the image
            continue
        ops[op] += 1
        revision = result.revision
    assert all(count > 0 for count in ops.values()), ops
    review = Review.objects.get(pk=rid)
    stored = raster(rid)
    np.testing.assert_array_equal(reviews.review_rebuild(review), stored)
    np.testing.assert_array_equal(reviews.review_rebuild(review, rasterise_again=False), stored)
    model = read_raster(review.prediction.level_path(0))
    np.testing.assert_array_equal(np.asarray(review.confusion), confusion_matrix(stored, model))
    assert review.layer.labelled_pixels == int((stored != 255).sum())
    assert Edit.objects.filter(review=review).count() == revision - 1


def test_concurrent_edits_on_the_same_revision_one_wins(mosaic, expert_api, expert_user) -> None:
    rid = start(expert_api, mosaic)["id"]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def edit(value: int) -> None:
        try:
            barrier.wait()
            reviews.review_edit(review=Review.objects.get(pk=rid), user=expert_user, revision=1, op="paint",
                                class_value=value, geometry=rectangle(0, 0, 200, 200))
            outcomes.append("ok")
        except reviews.ReviewConflict:
            outcomes.append("stale")
        finally:
            connection.close()

    threads = [threading.Thread(target=edit, args=(v,)) for v in (1, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "stale"]
    edit_row = Edit.objects.get(review_id=rid)
    assert (raster(rid)[:50, :50] == edit_row.class_value).all()
    assert LabelLayer.objects.get(review__pk=rid).revision == 2


def test_repair_rewrites_a_raster_that_lost_writes(mosaic, expert_api) -> None:
    rid = start(expert_api, mosaic)["id"]
    post_edit(expert_api, rid, 1, class_value=1, geometry=rectangle(0, 0, 200, 200))
    post_edit(expert_api, rid, 2, class_value=3)
    review = Review.objects.get(pk=rid)
    good = raster(rid)
    assert reviews.review_repair(review=review) is False
    np.save(review.layer.raster_path, np.full_like(good, 255))  # as if the last writes never reached the disk
    assert reviews.review_repair(review=review) is True
    np.testing.assert_array_equal(raster(rid), good)
    assert AuditEvent.objects.filter(verb="review.repair").count() == 1
