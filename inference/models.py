"""Background jobs, model versions and predictions."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class Job(models.Model):
    """One background job (ingest, predict, train, evaluate): state, live progress, attempts, error.

    Tasks claim this row, report progress into it, and the UI polls it.
    """

    class Kind(models.TextChoices):
        INGEST = "ingest", "Ingest"
        PREDICT = "predict", "Predict"
        TRAIN = "train", "Train"
        EVALUATE = "evaluate", "Evaluate"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0, help_text="0 to 1.")
    message = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    info = models.JSONField(default=dict, blank=True, help_text="Job-specific live data (e.g. loss curve).")
    mosaic = models.ForeignKey("annotations.Mosaic", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="jobs")
    model_version = models.ForeignKey("ModelVersion", null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class ModelVersion(models.Model):
    """A trained model: weights (safetensors, with config and metrics in its header), lineage and status.

    Exactly one version is active at a time; predictions are made with it.
    """

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        DISCARDED = "discarded", "Discarded"

    name = models.CharField(max_length=128)
    architecture = models.JSONField(help_text="The model config (ModelConfig.to_dict()).")
    weights_sha256 = models.CharField(max_length=64, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE, db_index=True)
    training_summary = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="active"),
                                    name="one_active_model_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.pk}, {self.status})"

    @property
    def weights_path(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "models" / f"{self.pk}.safetensors"


class Prediction(models.Model):
    """One model version's output on one mosaic, at working resolution: labels, uncertainty, each level."""

    mosaic = models.ForeignKey("annotations.Mosaic", on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    mode = models.CharField(max_length=16, help_text="Tiled-inference mode (paper or fast).")
    window = models.PositiveIntegerField()
    overlap = models.FloatField()
    levels = models.PositiveSmallIntegerField()
    class_pixels = models.JSONField(default=dict, help_text="Pixels per class value of the final labels.")
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Changes when the prediction is made again.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["mosaic", "model_version"], name="one_prediction_per_mosaic_and_version"),
        ]

    def __str__(self) -> str:
        return f"{self.mosaic} by {self.model_version}"

    @property
    def folder(self) -> Path:
        return self.mosaic.folder / "predictions" / str(self.model_version_id)

    def level_path(self, level: int) -> Path:
        """Level 0 is the final label map; level m is MUNet's level-m output at its own resolution."""
        return self.folder / ("labels.png" if level == 0 else f"level{level}.png")

    @property
    def uncertainty_path(self) -> Path:
        return self.folder / "uncertainty.png"
