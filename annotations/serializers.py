"""API representations of mosaics and label classes (no business logic)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inference.serializers import JobSerializer

from .models import LabelClass, Mosaic


class LabelClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["value", "key", "name", "colour"]


class MosaicSerializer(serializers.ModelSerializer):
    uploaded_by = serializers.CharField(source="uploaded_by.username", default=None, read_only=True)
    width_mm = serializers.FloatField(read_only=True)
    height_mm = serializers.FloatField(read_only=True)
    dzi_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    viewer_url = serializers.SerializerMethodField()
    active_jobs = serializers.SerializerMethodField()

    class Meta:
        model = Mosaic
        fields = [
            "id", "name", "original_filename", "checksum", "file_size", "width", "height", "width_mm", "height_mm",
            "um_per_px", "um_per_px_source", "bit_depth", "working_um_per_px", "working_width", "working_height",
            "status", "failure_reason", "held_out", "uploaded_by", "created_at", "updated_at",
            "dzi_url", "thumbnail_url", "viewer_url", "active_jobs",
        ]
        read_only_fields = [f for f in fields if f not in ("name", "held_out")]

    def get_dzi_url(self, obj: Mosaic) -> str | None:
        if obj.status != Mosaic.Status.READY:
            return None
        return reverse("tiles:dzi", kwargs={"mosaic_id": obj.pk, "rev": obj.checksum[:12]})

    def get_thumbnail_url(self, obj: Mosaic) -> str | None:
        if obj.status != Mosaic.Status.READY:
            return None
        return reverse("tiles:thumbnail", kwargs={"mosaic_id": obj.pk, "rev": obj.checksum[:12]})

    def get_viewer_url(self, obj: Mosaic) -> str:
        return reverse("frontend:viewer", kwargs={"mosaic_id": obj.pk})

    def get_active_jobs(self, obj: Mosaic) -> list[dict]:
        jobs = getattr(obj, "active_jobs", None)
        if jobs is None:
            jobs = list(obj.jobs.filter(state__in=("queued", "running")))
        return JobSerializer(jobs, many=True).data


@extend_schema_field(OpenApiTypes.BINARY)
class UploadFileField(serializers.FileField):
    """A file sent in a multipart form (described as binary in the OpenAPI schema, not as a URL)."""


def _value_mapping(value: object) -> dict[int, int] | None:
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise serializers.ValidationError('Give an object of "file value": class value pairs.')
    try:
        return {int(k): int(v) for k, v in value.items()}
    except (TypeError, ValueError) as exc:
        raise serializers.ValidationError("Keys and values of the mapping must be integers.") from exc


VALUE_MAPPING_HELP = ('JSON object mapping the label file\'s values to classes, e.g. {"1": 2, "2": 3, "0": 255}; every '
                      "value in the file needs an entry. Default: the values are already 0–5 and 255. Classes: "
                      "0 background, 1 artifact, 2 meshwork, 3 ring, 4 nested, 5 aspecific, 255 unlabelled.")


class MosaicUploadSerializer(serializers.Serializer):
    file = UploadFileField(help_text="TIFF/BigTIFF, PNG, BMP or JPEG; 8/16-bit gray or RGB.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    um_per_px = serializers.FloatField(required=False, allow_null=True,
                                       help_text="Pixel size in µm; default: the file's tags, else 1.0.")
    labels = UploadFileField(
        required=False, allow_null=True,
        help_text="Optional expert label map imported with the mosaic: PNG or TIFF, one channel, the size of the "
                  "mosaic at full or at working resolution. A bad label file refuses the whole upload. With the "
                  "same mosaic file again, the labels are imported onto the existing mosaic (once).")
    labels_name = serializers.CharField(required=False, allow_blank=True, max_length=128,
                                        help_text="Name of the imported label layer (default: the label file's name).")
    value_mapping = serializers.JSONField(required=False, allow_null=True,
                                          help_text="For the label map: " + VALUE_MAPPING_HELP)

    def validate_value_mapping(self, value: object) -> dict[int, int] | None:
        return _value_mapping(value)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("labels") is None:
            unused = [key for key in ("value_mapping", "labels_name") if attrs.get(key) not in (None, "")]
            if unused:
                raise serializers.ValidationError(
                    {key: ["Only used with a label map: send the label file as 'labels' too, or leave this out."]
                     for key in unused})
        return attrs


class LabelImportSerializer(serializers.Serializer):
    file = UploadFileField(help_text="PNG or TIFF, one channel, at working or full resolution.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=128)
    value_mapping = serializers.JSONField(required=False, allow_null=True, help_text=VALUE_MAPPING_HELP)

    def validate_value_mapping(self, value: object) -> dict[int, int] | None:
        return _value_mapping(value)


class UploadedLabelsSerializer(serializers.Serializer):
    layer = serializers.IntegerField(help_text="Id of the imported label layer.")
    key = serializers.CharField(help_text="Its key in /api/mosaics/{id}/layers/ (layer:<id>).")
    name = serializers.CharField()
    labelled_pixels = serializers.IntegerField(help_text="Labelled pixels at working resolution.")
    created = serializers.BooleanField(
        help_text="False when the same labels were already imported onto this mosaic (no copy is made).")


class MosaicUploadResultSerializer(MosaicSerializer):
    labels = serializers.SerializerMethodField(
        help_text="The label layer imported from the upload's label map; null without one.")

    class Meta(MosaicSerializer.Meta):
        fields = [*MosaicSerializer.Meta.fields, "labels"]
        read_only_fields = fields

    @extend_schema_field(UploadedLabelsSerializer(allow_null=True))
    def get_labels(self, obj: Mosaic) -> dict | None:
        layer = self.context.get("label_layer")
        if layer is None:
            return None
        return UploadedLabelsSerializer({"layer": layer.pk, "key": f"layer:{layer.pk}", "name": layer.name,
                                         "labelled_pixels": layer.labelled_pixels,
                                         "created": bool(self.context.get("labels_created"))}).data


class ClassAreaSerializer(serializers.Serializer):
    value = serializers.IntegerField()
    key = serializers.CharField()
    name = serializers.CharField()
    colour = serializers.CharField()
    pixels = serializers.IntegerField()
    area_mm2 = serializers.FloatField()
    share_of_labelled = serializers.FloatField()
    share_of_lesion = serializers.FloatField(allow_null=True)


class LayerSerializer(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.ChoiceField(choices=["prediction", "labels"])
    title = serializers.CharField()
    url = serializers.CharField(help_text="Lossless PNG of class values at working resolution (255 unlabelled).")
    uncertainty_url = serializers.CharField(required=False)
    levels = serializers.ListField(child=serializers.DictField(), required=False)
    source = serializers.CharField(required=False)
    revision = serializers.IntegerField(required=False)
