from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Job, ModelVersion, Prediction
from .services.models import ModelRejected, model_version_activate, model_version_register
from .services.training import FinetuneParams, TrainingRejected, finetune_launch


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "state", "progress", "message", "attempts", "mosaic", "model_version", "created_at"]
    list_filter = ["kind", "state"]
    readonly_fields = ["created_at", "started_at", "finished_at", "heartbeat_at"]


class ModelVersionAddForm(forms.ModelForm):
    weights = forms.FileField(help_text="A safetensors file written by inference.ml.weights.save_model "
                                        "(config and metrics are read from its header).")
    activate = forms.BooleanField(required=False, help_text="Make it the active model and re-predict every mosaic.")

    class Meta:
        model = ModelVersion
        fields = ["name", "notes"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "status", "parent", "created_by", "created_at", "activated_at"]
    list_filter = ["status"]
    readonly_fields = ["architecture", "weights_sha256", "parent", "status", "training_summary", "metrics",
                       "created_by", "created_at", "activated_at"]
    actions = ["make_active", "finetune"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ModelVersionAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "notes", "weights", "activate"]
        return super().get_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: ModelVersion, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        upload = form.cleaned_data["weights"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "weights.safetensors"
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            try:
                version, _ = model_version_register(weights_file=path, name=obj.name, notes=obj.notes,
                                                    user=request.user, activate=form.cleaned_data["activate"])
            except ModelRejected as exc:
                raise forms.ValidationError(str(exc)) from exc
        obj.pk = version.pk
        obj.refresh_from_db()

    @admin.action(description="Make the selected version active (re-predicts every mosaic)")
    def make_active(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = model_version_activate(version=queryset.get(), user=request.user)
        except ModelRejected as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version} is active; predictions are queued.")


    @admin.action(description="Fine-tune the selected version on all expert labels (default settings)")
    def finetune(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to fine-tune.", messages.ERROR)
            return
        try:
            job, created = finetune_launch(params=FinetuneParams(base_version=queryset.get().pk), user=request.user)
        except TrainingRejected as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        note = "queued" if created else "already running (one round at a time)"
        self.message_user(request, f"Fine-tuning job {job.pk} {note}; its candidate is version {job.model_version_id}.")


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "mosaic", "model_version", "mode", "seconds", "created_at"]
    list_filter = ["model_version", "mode"]
