"""REST API for jobs (progress of every background job)."""

from __future__ import annotations

from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from rcmweb.access import get_for_user, is_admin

from . import selectors, services
from .models import Job
from .serializers import JobSerializer


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Jobs with live progress. Filter with ``?mosaic=<id>``, ``?state=running``, ``?kind=ingest``."""

    serializer_class = JobSerializer

    def get_queryset(self):  # noqa: ANN201 - DRF hook
        qs = selectors.jobs_visible_to(self.request.user)
        for field in ("mosaic", "state", "kind"):
            value = self.request.query_params.get(field)
            if value:
                qs = qs.filter(**{field: value})
        return qs

    def get_object(self) -> Job:
        return get_for_user(self.get_queryset(), self.kwargs["pk"])

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel a queued or running job (admins)."""
        job = self.get_object()
        if not is_admin(request.user):
            raise PermissionDenied("Only admins may cancel jobs.")
        return Response(JobSerializer(services.job_cancel(job=job)).data)
