"""API representations of jobs."""

from __future__ import annotations

from rest_framework import serializers

from .models import Job


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id", "kind", "state", "progress", "message", "attempts", "max_attempts", "error", "params", "info",
            "mosaic", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields
