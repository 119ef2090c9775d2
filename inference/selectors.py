"""Reads for jobs, restricted to what a user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from rcmweb.access import Role, has_role, is_admin

from .models import Job, ModelVersion


def jobs_visible_to(user: Any) -> QuerySet[Job]:
    """Admins see every job; experts and trainees see the jobs of mosaics (ingest and prediction)."""
    if is_admin(user):
        return Job.objects.all()
    if has_role(user, Role.EXPERT, Role.TRAINEE):
        return Job.objects.filter(Q(kind__in=[Job.Kind.INGEST, Job.Kind.PREDICT]))
    return Job.objects.none()


def model_versions() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("parent", "created_by")
