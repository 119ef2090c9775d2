"""Background jobs (and, later, model versions and predictions)."""

from __future__ import annotations

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
