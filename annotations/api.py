"""REST API for mosaics and label classes. Thin: parse, call a selector or service, serialise."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from rcmweb.access import get_for_user, is_admin

from . import selectors, services
from .imaging import ImageRejected
from .models import Mosaic
from .parsers import RawNameMultiPartParser
from .serializers import LabelClassSerializer, MosaicSerializer, MosaicUploadSerializer


class IsAdminForWrites(permissions.BasePermission):
    message = "Only admins may upload, change or delete mosaics."

    def has_permission(self, request: Request, view: object) -> bool:
        return request.method in permissions.SAFE_METHODS or is_admin(request.user)


class MosaicViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                    mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = MosaicSerializer
    permission_classes = [permissions.IsAuthenticated, IsAdminForWrites]
    parser_classes = [RawNameMultiPartParser, FormParser, JSONParser]

    def get_queryset(self):  # noqa: ANN201 - DRF hook
        return selectors.mosaic_list(self.request.user)

    def get_object(self) -> Mosaic:
        return get_for_user(self.get_queryset(), self.kwargs["pk"])

    @extend_schema(request={"multipart/form-data": MosaicUploadSerializer}, responses={201: MosaicSerializer,
                                                                                       200: MosaicSerializer})
    def create(self, request: Request) -> Response:
        """Upload a mosaic. The same file twice answers 200 with the existing mosaic."""
        form = MosaicUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        try:
            mosaic, created = services.mosaic_upload(
                source=upload, filename=upload.name, user=request.user,
                name=form.validated_data.get("name") or "", um_per_px=form.validated_data.get("um_per_px"),
            )
        except ImageRejected as exc:
            return Response({"file": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        mosaic = selectors.mosaic_list(request.user).get(pk=mosaic.pk)
        return Response(MosaicSerializer(mosaic).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def perform_update(self, serializer: MosaicSerializer) -> None:
        with transaction.atomic():
            mosaic = serializer.save()
            services.audit_record(actor=self.request.user, verb="mosaic.update", target=mosaic,
                                  details={k: v for k, v in serializer.validated_data.items()})

    def perform_destroy(self, instance: Mosaic) -> None:
        services.mosaic_delete(mosaic=instance, user=self.request.user)


class LabelClassViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = LabelClassSerializer
    pagination_class = None

    def get_queryset(self):  # noqa: ANN201 - DRF hook
        return selectors.label_classes()
