"""REST API for mosaics and label classes. Thin: parse, call a selector or service, serialise."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from inference.serializers import JobSerializer
from rcmweb.access import get_for_user, is_admin

from . import exports, layers, reports, selectors, services
from .imaging import ImageRejected
from .models import Mosaic
from .parsers import RawNameMultiPartParser
from .serializers import (
    ClassAreaSerializer,
    LabelClassSerializer,
    LabelImportSerializer,
    LayerSerializer,
    MosaicSerializer,
    MosaicUploadResultSerializer,
    MosaicUploadSerializer,
)


class IsAdminForWrites(permissions.BasePermission):
    message = "Only admins may upload, change, predict, import labels for or delete mosaics."

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

    @extend_schema(request={"multipart/form-data": MosaicUploadSerializer}, responses={
        201: MosaicUploadResultSerializer, 200: MosaicUploadResultSerializer,
        400: OpenApiResponse(OpenApiTypes.OBJECT, description=(
            'Refused, nothing stored: {"file": [reason]} for the mosaic, {"labels": [reason]} for the label map '
            "(format, size, values outside the mapping), or the form field at fault.")),
    })
    def create(self, request: Request) -> Response:
        """Upload a mosaic, optionally with an expert label map (``labels``, ``value_mapping``, ``labels_name``)
        imported as its expert-labels layer. A bad mosaic answers 400 under ``file``, a bad label map 400 under
        ``labels``; either way nothing is stored. The same file twice answers 200 with the existing mosaic (and
        imports the labels sent with it onto that mosaic, once)."""
        form = MosaicUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        label_upload = form.validated_data.get("labels")
        labels = None
        if label_upload is not None:
            labels = services.LabelFile(source=label_upload, filename=label_upload.name,
                                        value_mapping=form.validated_data.get("value_mapping"),
                                        name=form.validated_data.get("labels_name") or "")
        try:
            result = services.mosaic_upload_with_labels(
                source=upload, filename=upload.name, user=request.user,
                name=form.validated_data.get("name") or "", um_per_px=form.validated_data.get("um_per_px"),
                labels=labels,
            )
        except ImageRejected as exc:
            return Response({"file": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        except services.LabelsRejected as exc:
            return Response({"labels": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        mosaic = selectors.mosaic_list(request.user).get(pk=result.mosaic.pk)
        context = {"label_layer": result.label_layer, "labels_created": result.labels_created}
        return Response(MosaicUploadResultSerializer(mosaic, context=context).data,
                        status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    def perform_update(self, serializer: MosaicSerializer) -> None:
        with transaction.atomic():
            mosaic = serializer.save()
            services.audit_record(actor=self.request.user, verb="mosaic.update", target=mosaic,
                                  details={k: v for k, v in serializer.validated_data.items()})

    def perform_destroy(self, instance: Mosaic) -> None:
        services.mosaic_delete(mosaic=instance, user=self.request.user)

    @extend_schema(responses=LayerSerializer(many=True))
    @action(detail=True, methods=["get"])
    def layers(self, request: Request, pk: str) -> Response:
        """Layers the user may draw over this mosaic: predictions (with uncertainty and coarser levels) and label
        layers, each with the URL of its lossless raster at working resolution."""
        return Response(layers.mosaic_layers(request.user, self.get_object()))

    @extend_schema(
        parameters=[
            OpenApiParameter("layer", OpenApiTypes.STR, description="Layer key from /layers/ (default: newest)."),
            OpenApiParameter("output", OpenApiTypes.STR, enum=["json", "csv", "png"], description="Default json."),
        ],
        responses={200: ClassAreaSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], url_path="class-areas")
    def class_areas(self, request: Request, pk: str) -> Response | HttpResponse:
        """Area (mm²) and share of each class in one layer, as JSON, CSV or a bar chart PNG."""
        mosaic = self.get_object()
        available = layers.mosaic_layers(request.user, mosaic)
        key = request.query_params.get("layer") or (available[0]["key"] if available else None)
        layer = next((item for item in available if item["key"] == key), None)
        if layer is None:
            raise NotFound(f"No layer {key!r} on this mosaic. Available: {[item['key'] for item in available]}.")
        if layer["kind"] == "prediction":
            rows = layers.class_areas_from_counts(layer["class_pixels"], um_per_px=mosaic.working_um_per_px)
        else:
            from .models import LabelLayer
            from .rasters import read_raster

            raster = read_raster(LabelLayer.objects.get(pk=layer["layer"]).raster_path)
            rows = layers.class_areas(raster, um_per_px=mosaic.working_um_per_px)
        title = f"{mosaic.name}: {layer['title']}"
        fmt = request.query_params.get("output", "json")
        stem = f"class-areas-mosaic{mosaic.pk}-{key.replace(':', '-')}"
        if fmt == "csv":
            response = HttpResponse(reports.class_areas_csv(rows, title=title), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
            return response
        if fmt == "png":
            response = HttpResponse(reports.class_areas_png(rows, title=title), content_type="image/png")
            response["Content-Disposition"] = f'inline; filename="{stem}.png"'
            return response
        if fmt != "json":
            raise NotFound(f"Unknown output {fmt!r}; use json, csv or png.")
        return Response(ClassAreaSerializer(rows, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("layer", OpenApiTypes.STR, required=True, description="Layer key from /layers/, "
                             "e.g. prediction:<id> or layer:<id>."),
            OpenApiParameter("as", OpenApiTypes.STR, enum=list(exports.EXPORT_FORMATS), description=(
                "png: label mask at working resolution (uint8, classes 0–5, 255 unlabelled); png-full: the same "
                "mask at full resolution (nearest neighbour); geojson: one MultiPolygon per class in full-resolution "
                "image pixels (x right, y down, origin top-left); csv: class areas. Default png.")),
        ],
        responses={(200, "image/png"): OpenApiTypes.BINARY, (200, "application/geo+json"): OpenApiTypes.OBJECT,
                   (200, "text/csv"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str) -> HttpResponse | StreamingHttpResponse:
        """Download one layer the user may see as a label mask PNG (working or full resolution), GeoJSON polygons
        or a class-area CSV."""
        mosaic = self.get_object()
        fmt = request.query_params.get("as", "png")
        if fmt not in exports.EXPORT_FORMATS:
            raise ValidationError({"as": [f"Unknown export {fmt!r}; use one of {', '.join(exports.EXPORT_FORMATS)}."]})
        available = layers.mosaic_layers(request.user, mosaic)
        key = request.query_params.get("layer", "")
        layer = next((item for item in available if item["key"] == key), None)
        if layer is None:
            raise NotFound(f"No layer {key!r} on this mosaic. Available: {[item['key'] for item in available]}.")
        labels = exports.layer_labels(layer)
        stem = f"mosaic{mosaic.pk}-{key.replace(':', '-')}"
        response: HttpResponse | StreamingHttpResponse
        if fmt == "png":
            response = HttpResponse(exports.png_bytes(labels), content_type="image/png")
            filename = f"{stem}.png"
        elif fmt == "png-full":
            response = StreamingHttpResponse(exports.full_resolution_png(labels, mosaic.height, mosaic.width),
                                             content_type="image/png")
            filename = f"{stem}-full.png"
        else:
            rows = layers.class_areas(labels, um_per_px=mosaic.working_um_per_px)
            if fmt == "csv":
                response = HttpResponse(reports.class_areas_csv(rows, title=f"{mosaic.name}: {layer['title']}"),
                                        content_type="text/csv")
                filename = f"{stem}.csv"
            else:
                response = JsonResponse(
                    exports.layer_geojson(labels, height=mosaic.height, width=mosaic.width, classes=rows),
                    content_type="application/geo+json")
                filename = f"{stem}.geojson"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(request=None, responses={202: JobSerializer, 200: JobSerializer})
    @action(detail=True, methods=["post"])
    def predict(self, request: Request, pk: str) -> Response:
        """Predict this mosaic again with the active model (admins). Answers the queued or running job."""
        from inference.services.predictions import prediction_request

        mosaic = self.get_object()
        job = prediction_request(mosaic=mosaic, user=request.user, force=True)
        if job is None:
            return Response({"detail": "No active model, or the mosaic is not ready."},
                            status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request={"multipart/form-data": LabelImportSerializer}, responses={201: LayerSerializer})
    @action(detail=True, methods=["post"], url_path="labels")
    def import_labels(self, request: Request, pk: str) -> Response:
        """Import an expert label map (admins): PNG/TIFF at working or full resolution, with a value mapping."""
        mosaic = self.get_object()
        form = LabelImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        try:
            layer = services.label_layer_import(
                mosaic=mosaic, source=upload, filename=upload.name, user=request.user,
                value_mapping=form.validated_data.get("value_mapping"), name=form.validated_data.get("name") or "",
            )
        except services.LabelsRejected as exc:
            return Response({"file": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        created = next(item for item in layers.mosaic_layers(request.user, mosaic) if item["key"] == f"layer:{layer.pk}")
        return Response(created, status=status.HTTP_201_CREATED)


class LabelClassViewSet(viewsets.ReadOnlyModelViewSet):
    """The label classes (value, name, colour) in the order used by every raster."""

    serializer_class = LabelClassSerializer
    pagination_class = None
    lookup_field = "value"

    def get_queryset(self):  # noqa: ANN201 - DRF hook
        return selectors.label_classes()
