"""API representations of mosaics and label classes (no business logic)."""

from __future__ import annotations

from django.urls import reverse
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


class MosaicUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="TIFF/BigTIFF, PNG, BMP or JPEG; 8/16-bit gray or RGB.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)
    um_per_px = serializers.FloatField(required=False, allow_null=True,
                                       help_text="Pixel size in µm; default: the file's tags, else 1.0.")


class LabelImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="PNG or TIFF, one channel, at working or full resolution.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=128)
    value_mapping = serializers.JSONField(
        required=False, allow_null=True,
        help_text='Map file values to classes, e.g. {"1": 2, "2": 3, "0": 255}. Default: values are 0–5 and 255.')

    def validate_value_mapping(self, value: object) -> dict[int, int] | None:
        if value is None or value == "":
            return None
        if not isinstance(value, dict):
            raise serializers.ValidationError('Give an object of "file value": class value pairs.')
        try:
            return {int(k): int(v) for k, v in value.items()}
        except (TypeError, ValueError) as exc:
            raise serializers.ValidationError("Keys and values of the mapping must be integers.") from exc


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
