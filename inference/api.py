"""REST API for jobs, model versions and predictions. Thin: parse, call a selector or service, serialise."""

from __future__ import annotations

import tempfile
from pathlib import Path

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from rcmweb.access import Role, get_for_user, has_role, is_admin

from . import selectors, services
from .models import Job, ModelVersion, Prediction
from .serializers import (
    FinetuneSerializer,
    JobSerializer,
    ModelVersionRegisterSerializer,
    ModelVersionSerializer,
    PredictionSerializer,
)
from .services.models import ModelRejected, model_version_activate, model_version_discard, model_version_register
from .services.training import FinetuneParams, TrainingRejected, finetune_abandon, finetune_launch


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Jobs with live progress. Filter with ``?mosaic=<id>``, ``?state=running``, ``?kind=ingest``."""

    serializer_class = JobSerializer

    def get_queryset(self):  # noqa: ANN201 - DRF hook
        qs = selectors.jobs_visible_to(self.request.user)
        for field in ("mosaic", "state", "kind", "model_version"):
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
        job = services.job_cancel(job=job)
        if job.kind == Job.Kind.TRAIN:
            finetune_abandon(job=job)
        return Response(JobSerializer(job).data)


class ExpertsReadAdminsWrite(permissions.BasePermission):
    message = "Model versions: experts and admins may read; only admins may register, activate or discard."

    def has_permission(self, request: Request, view: object) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return has_role(request.user, Role.ADMIN, Role.EXPERT)
        return is_admin(request.user)


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Model versions: lineage, metrics, status. Exactly one is active."""

    serializer_class = ModelVersionSerializer
    permission_classes = [permissions.IsAuthenticated, ExpertsReadAdminsWrite]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):  # noqa: ANN201 - DRF hook
        return selectors.model_versions()

    def get_object(self) -> ModelVersion:
        return get_for_user(self.get_queryset(), self.kwargs["pk"])

    @extend_schema(request={"multipart/form-data": ModelVersionRegisterSerializer},
                   responses={201: ModelVersionSerializer, 200: ModelVersionSerializer})
    def create(self, request: Request) -> Response:
        """Register a weights file (admins). The same file twice answers 200 with the existing version."""
        form = ModelVersionRegisterSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["weights"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload.safetensors"
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            try:
                version, created = model_version_register(
                    weights_file=path, name=form.validated_data["name"], user=request.user,
                    notes=form.validated_data.get("notes", ""), activate=form.validated_data["activate"])
            except ModelRejected as exc:
                return Response({"weights": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        version.refresh_from_db()
        return Response(ModelVersionSerializer(version).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str) -> Response:
        """Make this version the active one (admins); every ready mosaic is predicted again with it."""
        try:
            version = model_version_activate(version=self.get_object(), user=request.user)
        except ModelRejected as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(request=FinetuneSerializer, responses={202: JobSerializer, 200: JobSerializer})
    @action(detail=True, methods=["post"])
    def finetune(self, request: Request, pk: str) -> Response:
        """Fine-tune this version on the expert labels gathered so far (admins). A second launch while one runs
        answers 200 with the running job."""
        version = self.get_object()
        form = FinetuneSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            job, created = finetune_launch(params=FinetuneParams(base_version=version.pk, **form.validated_data),
                                           user=request.user)
        except TrainingRejected as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def discard(self, request: Request, pk: str) -> Response:
        """Discard a candidate or retired version (admins)."""
        try:
            version = model_version_discard(version=self.get_object(), user=request.user)
        except ModelRejected as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(ModelVersionSerializer(version).data)


class PredictionViewSet(viewsets.ReadOnlyModelViewSet):
    """Predictions (experts and admins). Filter with ``?mosaic=<id>`` or ``?model_version=<id>``."""

    serializer_class = PredictionSerializer

    def get_queryset(self):  # noqa: ANN201 - DRF hook
        if not has_role(self.request.user, Role.ADMIN, Role.EXPERT):
            return Prediction.objects.none()
        qs = Prediction.objects.select_related("model_version")
        for field in ("mosaic", "model_version"):
            value = self.request.query_params.get(field)
            if value:
                qs = qs.filter(**{field: value})
        return qs

    def get_object(self) -> Prediction:
        return get_for_user(self.get_queryset(), self.kwargs["pk"])
