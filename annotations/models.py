"""Mosaics, label classes, label layers and the audit trail."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class LabelClass(models.Model):
    """One diagnostic class; ``value`` is the pixel value in every raster (paper order, 255 = unlabelled)."""

    value = models.PositiveSmallIntegerField(primary_key=True)
    key = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    colour = models.CharField(max_length=7, help_text="Overlay colour as #rrggbb.")

    class Meta:
        ordering = ["value"]

    def __str__(self) -> str:
        return f"{self.value} {self.name}"


class Mosaic(models.Model):
    """An RCM mosaic: the uploaded file, its full-resolution pyramid and its working-resolution copy."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        INGESTING = "ingesting", "Ingesting"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=255)
    original_filename = models.CharField(max_length=255)
    checksum = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the uploaded file.")
    file_size = models.BigIntegerField()
    width = models.PositiveIntegerField(help_text="Full-resolution width in pixels.")
    height = models.PositiveIntegerField(help_text="Full-resolution height in pixels.")
    um_per_px = models.FloatField(help_text="Full-resolution pixel size in µm.")
    um_per_px_source = models.CharField(max_length=16, default="default")
    bit_depth = models.PositiveSmallIntegerField(default=8)
    working_um_per_px = models.FloatField(help_text="Pixel size of labels and predictions in µm.")
    working_width = models.PositiveIntegerField()
    working_height = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    failure_reason = models.TextField(blank=True)
    held_out = models.BooleanField(default=False, help_text="Never used to train a model (evaluation only).")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def folder(self) -> Path:
        """Where everything of this mosaic lives on disk."""
        return Path(settings.MEDIA_ROOT) / "mosaics" / str(self.pk)

    @property
    def working_scale(self) -> float:
        """Working pixels per full-resolution pixel (e.g. 0.25 for 1 µm/px → 4 µm/px)."""
        return self.working_width / self.width

    @property
    def width_mm(self) -> float:
        return self.width * self.um_per_px / 1000.0

    @property
    def height_mm(self) -> float:
        return self.height * self.um_per_px / 1000.0


class LabelLayer(models.Model):
    """A uint8 raster at working resolution (255 = unlabelled) with its provenance and revision."""

    class Source(models.TextChoices):
        IMPORT = "import", "Imported"
        REVIEW = "review", "Expert review"
        TRAINEE = "trainee", "Trainee"

    mosaic = models.ForeignKey(Mosaic, on_delete=models.CASCADE, related_name="label_layers")
    source = models.CharField(max_length=16, choices=Source.choices)
    name = models.CharField(max_length=128, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    revision = models.PositiveIntegerField(default=1)
    labelled_pixels = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["mosaic", "id"]

    def __str__(self) -> str:
        return f"{self.mosaic} / {self.get_source_display()} #{self.pk}"

    @property
    def raster_path(self) -> Path:
        return self.mosaic.folder / "layers" / f"{self.pk}.png"


class AuditEvent(models.Model):
    """One row per change that matters (labels, mosaics, models), written in the same transaction."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    verb = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    details = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.verb} {self.target_type}:{self.target_id}"
