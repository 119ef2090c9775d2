"""Reads for mosaics and label classes, already restricted to what a user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from inference.models import Job
from rcmweb.access import Role, has_role

from .models import LabelClass, Mosaic


def mosaics_visible_to(user: Any) -> QuerySet[Mosaic]:
    """Every role sees every mosaic; anonymous users or users without a role see none."""
    if not has_role(user, Role.ADMIN, Role.EXPERT, Role.TRAINEE):
        return Mosaic.objects.none()
    return Mosaic.objects.all()


def mosaic_list(user: Any) -> QuerySet[Mosaic]:
    active = Job.objects.filter(state__in=Job.ACTIVE_STATES).order_by("created_at")
    return mosaics_visible_to(user).select_related("uploaded_by").prefetch_related(
        Prefetch("jobs", queryset=active, to_attr="active_jobs")
    )


def label_classes() -> QuerySet[LabelClass]:
    return LabelClass.objects.order_by("value")
