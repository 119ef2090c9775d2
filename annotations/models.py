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
        """The raw uint8 raster (``.npy``; edited in place through a memory map)."""
        return self.mosaic.folder / "layers" / f"{self.pk}.npy"

    def png_path(self, revision: int) -> Path:
        """The PNG of one revision, encoded on first request (see ``annotations.layers.label_layer_png``)."""
        return self.mosaic.folder / "layers" / f"{self.pk}.r{revision}.png"


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


class Review(models.Model):
    """One expert's review of one mosaic against one prediction; its labels live in its own ``LabelLayer``.

    ``confusion`` is the ``[K, K]`` confusion matrix of the review's layer (rows, truth) against its prediction
    (columns) over the pixels the expert labelled, kept up to date by every edit. ``done_top`` and ``redo_top``
    are the heads of the undo and redo stacks, linked through ``Edit.below`` (see ``annotations.reviews``).
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        SUBMITTED = "submitted", "Submitted"

    expert = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    mosaic = models.ForeignKey(Mosaic, on_delete=models.CASCADE, related_name="reviews")
    prediction = models.ForeignKey("inference.Prediction", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="reviews")
    layer = models.OneToOneField(LabelLayer, on_delete=models.CASCADE, related_name="review")
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS, db_index=True)
    confusion = models.JSONField(null=True, blank=True,
                                 help_text="Expert (rows) × model (columns) pixel counts; null without prediction.")
    confusion_basis = models.DateTimeField(null=True, blank=True,
                                           help_text="The prediction's updated_at the confusion was counted on.")
    seen_regions = models.JSONField(default=list, blank=True,
                                    help_text="Regions shown by 'where to look next', [x0, y0, x1, y1] working px.")
    # DO_NOTHING on the edit pointers: edits are only ever deleted with their review, so a review's edits go in
    # one DELETE (Django would otherwise load every edit, patches included, to clear these fields).
    done_top = models.ForeignKey("Edit", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                                 help_text="The edit an undo reverts next.")
    redo_top = models.ForeignKey("Edit", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                                 help_text="The undo a redo reverses next.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["expert", "mosaic"], condition=models.Q(state="in_progress"),
                                    name="one_review_in_progress_per_expert_and_mosaic"),
        ]

    def __str__(self) -> str:
        return f"Review #{self.pk} of {self.mosaic} by {self.expert} ({self.state})"


class Edit(models.Model):
    """One append-only step of a review: paint, erase, accept (of the model's labels), undo or redo.

    ``bbox`` is ``[x0, y0, x1, y1]`` in working pixels (half-open) and ``before``/``after`` hold the layer's
    pixels inside it, zlib-compressed uint8 in row-major order, so undo, redo and rebuild never rasterise again.
    Undo and redo rows point at the edit they revert or re-apply (``target``) and carry no patches.
    """

    class Op(models.TextChoices):
        PAINT = "paint", "Paint"
        ERASE = "erase", "Erase"
        ACCEPT = "accept", "Accept model"
        UNDO = "undo", "Undo"
        REDO = "redo", "Redo"

    CONTENT_OPS = (Op.PAINT, Op.ERASE, Op.ACCEPT)

    review = models.ForeignKey(Review, on_delete=models.CASCADE, related_name="edits")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    op = models.CharField(max_length=8, choices=Op.choices)
    class_value = models.PositiveSmallIntegerField(null=True, blank=True)
    geometry = models.JSONField(null=True, blank=True, help_text="As sent, in full-resolution image pixels.")
    target = models.ForeignKey("self", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                               help_text="Undo/redo: the paint, erase or accept reverted or re-applied.")
    below = models.ForeignKey("self", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
                              help_text="Paint/erase/accept: the edit under it on the undo stack. "
                                        "Undo: the undo under it on the redo stack.")
    revision_before = models.PositiveIntegerField()
    revision_after = models.PositiveIntegerField()
    bbox = models.JSONField(help_text="[x0, y0, x1, y1] in working pixels, half-open.")
    before = models.BinaryField(null=True, blank=True)
    after = models.BinaryField(null=True, blank=True)
    changed_pixels = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["review", "id"]
        constraints = [
            models.UniqueConstraint(fields=["review", "revision_after"], name="one_edit_per_review_revision"),
        ]

    def __str__(self) -> str:
        return f"{self.get_op_display()} #{self.pk} (r{self.revision_before}→r{self.revision_after})"
