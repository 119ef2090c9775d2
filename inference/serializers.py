"""API representations of jobs."""

from __future__ import annotations

from rest_framework import serializers

from .ml.finetune import DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_STEPS_PER_EPOCH
from .models import Job, ModelVersion, Prediction


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id", "kind", "state", "progress", "message", "attempts", "max_attempts", "error", "params", "info",
            "mosaic", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    parent_name = serializers.CharField(source="parent.name", default=None, read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "architecture", "weights_sha256", "parent", "parent_name", "status",
                  "training_summary", "metrics", "notes", "created_by", "created_at", "activated_at"]
        read_only_fields = fields


class ModelVersionRegisterSerializer(serializers.Serializer):
    weights = serializers.FileField(help_text="A safetensors file written by inference.ml.weights.save_model.")
    name = serializers.CharField(max_length=128)
    notes = serializers.CharField(required=False, allow_blank=True)
    activate = serializers.BooleanField(required=False, default=False)


class PredictionSerializer(serializers.ModelSerializer):
    model_version_name = serializers.CharField(source="model_version.name", read_only=True)

    class Meta:
        model = Prediction
        fields = ["id", "mosaic", "model_version", "model_version_name", "mode", "window", "overlap", "levels",
                  "class_pixels", "seconds", "created_at"]
        read_only_fields = fields


class FinetuneSerializer(serializers.Serializer):
    labels = serializers.ChoiceField(choices=["imported", "reviews", "all"], default="all",
                                     help_text="Which expert labels to train on. Held-out mosaics are never used.")
    epochs = serializers.IntegerField(default=DEFAULT_EPOCHS, min_value=1, max_value=200)
    lr = serializers.FloatField(default=DEFAULT_LR, min_value=1e-6, max_value=1e-1)
    steps_per_epoch = serializers.IntegerField(default=DEFAULT_STEPS_PER_EPOCH, min_value=1, max_value=100_000)
    seed = serializers.IntegerField(default=0, min_value=0)
