"""``manage.py repair_reviews`` and the admin action rebuild review rasters that lost writes, and only those."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from annotations.models import AuditEvent, Review
from annotations.rasters import read_raster
from tests.annotations.test_reviews import post_edit, rectangle, start

pytestmark = pytest.mark.django_db(transaction=True)


def _review_with_edits(api, mosaic) -> tuple[Review, np.ndarray]:
    rid = start(api, mosaic)["id"]
    post_edit(api, rid, 1, class_value=1, geometry=rectangle(0, 0, 200, 200))
    review = Review.objects.select_related("layer").get(pk=rid)
    return review, read_raster(review.layer.raster_path)


def _lose_writes(review: Review, good: np.ndarray) -> None:
    np.save(review.layer.raster_path, np.full_like(good, 255))  # as if the last writes never reached the disk


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("repair_reviews", *args, stdout=out, verbosity=0)
    return out.getvalue()


def test_command_rebuilds_only_the_rasters_that_differ(ready_mosaic, expert_api) -> None:
    review, good = _review_with_edits(expert_api, ready_mosaic(seed=1))
    intact, intact_raster = _review_with_edits(expert_api, ready_mosaic(seed=2))
    assert _run() == "Checked 2 review(s); rebuilt 0 from their edits.\n"
    _lose_writes(review, good)
    assert _run() == f"Checked 2 review(s); rebuilt 1 from their edits: {review.pk}.\n"
    np.testing.assert_array_equal(read_raster(review.layer.raster_path), good)
    np.testing.assert_array_equal(read_raster(intact.layer.raster_path), intact_raster)
    assert AuditEvent.objects.filter(verb="review.repair").count() == 1


def test_old_submitted_reviews_are_checked_only_with_all(ready_mosaic, expert_api) -> None:
    review, good = _review_with_edits(expert_api, ready_mosaic(seed=1))
    Review.objects.filter(pk=review.pk).update(state=Review.State.SUBMITTED,
                                               updated_at=timezone.now() - timedelta(days=3))
    _lose_writes(review, good)
    assert _run() == "Checked 0 review(s); rebuilt 0 from their edits.\n"
    assert _run("--all") == f"Checked 1 review(s); rebuilt 1 from their edits: {review.pk}.\n"
    np.testing.assert_array_equal(read_raster(review.layer.raster_path), good)


def test_admin_action_repairs_the_selected_reviews(ready_mosaic, expert_api, admin_user, client) -> None:
    review, good = _review_with_edits(expert_api, ready_mosaic(seed=1))
    _lose_writes(review, good)
    client.force_login(admin_user)
    response = client.post("/admin/annotations/review/", {"action": "repair_rasters", "_selected_action": [review.pk]},
                           follow=True)
    assert response.status_code == 200
    assert f"rebuilt 1 from their edits: {review.pk}." in response.content.decode()
    np.testing.assert_array_equal(read_raster(review.layer.raster_path), good)
    assert AuditEvent.objects.get(verb="review.repair").actor == admin_user
