from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from . import reviews
from .models import AuditEvent, Edit, LabelClass, LabelLayer, Mosaic, Review


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["value", "key", "name", "colour"]


@admin.register(Mosaic)
class MosaicAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "width", "height", "um_per_px", "status", "held_out", "uploaded_by", "created_at"]
    list_filter = ["status", "held_out"]
    search_fields = ["name", "original_filename", "checksum"]
    readonly_fields = ["checksum", "file_size", "width", "height", "working_width", "working_height", "bit_depth"]


@admin.register(LabelLayer)
class LabelLayerAdmin(admin.ModelAdmin):
    list_display = ["id", "mosaic", "source", "author", "revision", "labelled_pixels", "updated_at"]
    list_filter = ["source"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "verb", "target_type", "target_id"]
    list_filter = ["verb", "target_type"]
    readonly_fields = ["at", "actor", "verb", "target_type", "target_id", "details"]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["id", "mosaic", "expert", "state", "prediction", "layer", "created_at", "submitted_at"]
    list_filter = ["state"]
    readonly_fields = ["expert", "mosaic", "prediction", "layer", "confusion", "confusion_basis", "seen_regions",
                       "done_top", "redo_top", "submitted_at"]
    actions = ["repair_rasters"]

    @admin.action(description="Check the label rasters against their edits and rebuild those that differ")
    def repair_rasters(self, request: HttpRequest, queryset: QuerySet[Review]) -> None:
        rebuilt = [review.pk for review in queryset.select_related("layer") if
                   reviews.review_repair(review=review, user=request.user)]
        self.message_user(request, f"Checked {queryset.count()} review(s); rebuilt {len(rebuilt)} from their edits"
                          + (f": {', '.join(map(str, rebuilt))}." if rebuilt else "."))


@admin.register(Edit)
class EditAdmin(admin.ModelAdmin):
    """Edits are append-only: readable here, never changed (undo is a new edit)."""

    list_display = ["id", "review", "author", "op", "class_value", "revision_before", "revision_after",
                    "changed_pixels", "created_at"]
    list_filter = ["op"]
    exclude = ["before", "after"]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
