from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

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


REVIEW_SPLIT_NAMES = {"held_out": "held out", "trained": "trained on (optimistic)",
                      "validation": "validation (picked the best epoch)", "not_used": "not used in the round"}


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "status", "parent", "created_by", "created_at", "activated_at"]
    list_filter = ["status"]
    readonly_fields = ["architecture", "weights_sha256", "parent", "status", "training_summary",
                       "review_agreement", "metrics", "created_by", "created_at", "activated_at"]
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

    @admin.display(description="Agreement with the experts' reviews")
    def review_agreement(self, obj: ModelVersion) -> str:
        """The candidate beside its parent on the submitted reviews compared after its round (metrics["reviews"])."""
        reviews = (obj.metrics or {}).get("reviews")
        if not reviews:
            return "–"
        if not reviews.get("splits"):
            return "No submitted review with labelled pixels when the round ran."

        def fmt(value: Any) -> str:
            return "–" if value is None else f"{value:.3f}"

        rows = format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td>" + "<td>{}</td><td>{}</td>" * 3 + "</tr>", (
            (REVIEW_SPLIT_NAMES.get(split, split), len(pool["reviews"]), f"{pool['labelled_pixels']:,}",
             *(fmt(pool[side][key]) for key in ("accuracy", "kappa", "mean_dice") for side in ("parent", "candidate")))
            for split, pool in reviews["splits"].items()))
        return format_html(
            "<table><thead><tr><th>mosaics</th><th>reviews</th><th>labelled px</th><th>agreement, parent</th>"
            "<th>agreement, this</th><th>kappa, parent</th><th>kappa, this</th><th>mean Dice, parent</th>"
            "<th>mean Dice, this</th></tr></thead><tbody>{}</tbody></table><p>{} of {} submitted reviews compared (the "
            "newest, at most {}), against parent v{} (fast mode). Agreement on trained-on mosaics is optimistic.</p>",
            rows, reviews.get("compared"), reviews.get("submitted"), reviews.get("limit"), reviews.get("parent"))

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
