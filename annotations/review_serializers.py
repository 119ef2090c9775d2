"""API representations of reviews, edits, agreement and next regions (no business logic)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from rest_framework import serializers

from .layers import layer_revision, raster_url
from .models import Edit, Review
from .reviews import EditResult, review_report


class ReviewSerializer(serializers.ModelSerializer):
    mosaic_name = serializers.CharField(source="mosaic.name", read_only=True)
    expert = serializers.CharField(source="expert.username", read_only=True)
    model_version = serializers.IntegerField(source="prediction.model_version_id", default=None, read_only=True)
    model_name = serializers.CharField(source="prediction.model_version.name", default=None, read_only=True)
    revision = serializers.IntegerField(source="layer.revision", read_only=True)
    labelled_pixels = serializers.IntegerField(source="layer.labelled_pixels", read_only=True)
    raster_url = serializers.SerializerMethodField(help_text="PNG of the review's layer at its current revision.")
    can_undo = serializers.SerializerMethodField()
    can_redo = serializers.SerializerMethodField()
    agreement = serializers.SerializerMethodField(help_text="Model vs this expert so far: accuracy, kappa, pixels.")

    class Meta:
        model = Review
        fields = ["id", "mosaic", "mosaic_name", "expert", "expert_id", "state", "prediction", "model_version",
                  "model_name", "layer", "revision", "labelled_pixels", "raster_url", "can_undo", "can_redo",
                  "agreement", "created_at", "updated_at", "submitted_at"]
        read_only_fields = fields

    def get_raster_url(self, obj: Review) -> str:
        return raster_url(obj.mosaic, "layer", obj.layer_id, layer_revision(obj.layer), "labels")

    def get_can_undo(self, obj: Review) -> bool:
        return obj.state == Review.State.IN_PROGRESS and obj.done_top_id is not None

    def get_can_redo(self, obj: Review) -> bool:
        return obj.state == Review.State.IN_PROGRESS and obj.redo_top_id is not None

    def get_agreement(self, obj: Review) -> dict[str, Any] | None:
        report = review_report(obj)
        if report is None:
            return None
        data = report.to_dict()
        return {key: data[key] for key in ("accuracy", "kappa", "mean_dice", "labelled_pixels")}


class GeometryField(serializers.JSONField):
    """A geometry in full-resolution image px: stroke, polygon or rectangle (see ``annotations.geometry``)."""


class EditRequestSerializer(serializers.Serializer):
    revision = serializers.IntegerField(help_text="The layer revision the edit was drawn on.")
    op = serializers.ChoiceField(choices=[c for c in Edit.CONTENT_OPS])
    class_value = serializers.IntegerField(required=False, allow_null=True, default=None,
                                           help_text="0–5, paint only.")
    geometry = GeometryField(help_text='{"type": "stroke", "points": [[x, y], ...], "radius_um": r} | '
                                       '{"type": "polygon", "points": [[x, y], ...]} | '
                                       '{"type": "rectangle", "x0": .., "y0": .., "x1": .., "y1": ..}')


class RevisionSerializer(serializers.Serializer):
    revision = serializers.IntegerField(help_text="The layer revision the browser shows.")


class RegionSerializer(serializers.Serializer):
    x0 = serializers.FloatField()
    y0 = serializers.FloatField()
    x1 = serializers.FloatField()
    y1 = serializers.FloatField()


def edit_result_data(result: EditResult, agreement: dict[str, Any] | None) -> dict[str, Any]:
    """The answer to an edit, undo or redo: enough for the viewer to update its overlay without a download."""
    review = result.review
    patch = np.ascontiguousarray(result.patch, np.uint8)
    return {
        "edit": result.edit.pk,
        "op": result.edit.op,
        "revision": result.revision,
        "bbox": list(result.bbox),
        "changed_pixels": result.changed_pixels,
        "labelled_pixels": result.labelled_pixels,
        "patch": {"width": patch.shape[1], "height": patch.shape[0], "encoding": "base64-uint8-rows",
                  "data": base64.b64encode(patch.tobytes()).decode("ascii")},
        "raster_url": raster_url(review.mosaic, "layer", review.layer_id, f"r{result.revision}", "labels"),
        "can_undo": review.done_top_id is not None,
        "can_redo": review.redo_top_id is not None,
        "agreement": agreement,
    }


class PatchSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    encoding = serializers.CharField(help_text="base64 of the uint8 class values inside bbox, row by row.")
    data = serializers.CharField()


class EditResultSerializer(serializers.Serializer):
    """Schema of an edit's answer (built by :func:`edit_result_data`)."""

    edit = serializers.IntegerField()
    op = serializers.CharField()
    revision = serializers.IntegerField(help_text="The layer's new revision: send it with the next edit.")
    bbox = serializers.ListField(child=serializers.IntegerField(), help_text="[x0, y0, x1, y1] working px.")
    changed_pixels = serializers.IntegerField()
    labelled_pixels = serializers.IntegerField()
    patch = PatchSerializer()
    raster_url = serializers.CharField()
    can_undo = serializers.BooleanField()
    can_redo = serializers.BooleanField()
    agreement = serializers.DictField(allow_null=True, help_text="As GET /api/reviews/{id}/agreement/.")


class EditHistorySerializer(serializers.ModelSerializer):
    """One row of a review's readable history; needs ``undone`` (set of ids) and ``class_names`` in context."""

    author = serializers.CharField(source="author.username", default=None, read_only=True)
    class_name = serializers.SerializerMethodField()
    geometry_type = serializers.SerializerMethodField()
    undone = serializers.SerializerMethodField(help_text="Paint/erase/accept: whether it is currently undone.")

    class Meta:
        model = Edit
        fields = ["id", "created_at", "author", "op", "class_value", "class_name", "geometry_type", "geometry",
                  "changed_pixels", "revision_before", "revision_after", "bbox", "target", "undone"]
        read_only_fields = fields

    def get_class_name(self, obj: Edit) -> str | None:
        return self.context["class_names"].get(obj.class_value) if obj.class_value is not None else None

    def get_geometry_type(self, obj: Edit) -> str | None:
        return obj.geometry.get("type") if isinstance(obj.geometry, dict) else None

    def get_undone(self, obj: Edit) -> bool | None:
        return obj.pk in self.context["undone"] if obj.op in Edit.CONTENT_OPS else None


class NextRegionSerializer(serializers.Serializer):
    region = serializers.DictField(allow_null=True, help_text="x0, y0, x1, y1 (full-resolution px), working_bbox, "
                                                             "mean_uncertainty (0–1), unlabelled_fraction, remaining.")
    detail = serializers.CharField(required=False)
