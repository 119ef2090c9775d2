"""Writes for model versions: register a weights file, activate (and re-predict), discard."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from annotations.models import Mosaic
from annotations.services import audit_record

from ..ml.weights import load_model
from ..models import ModelVersion

# Bytes hashed per read when fingerprinting a weights file.
HASH_CHUNK_BYTES = 4 * 1024 * 1024


class ModelRejected(ValueError):
    """The weights file cannot be registered; the message says why."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def model_version_register(*, weights_file: Path, name: str, user: Any = None, parent: ModelVersion | None = None,
                           notes: str = "", activate: bool = False) -> tuple[ModelVersion, bool]:
    """Register a safetensors weights file (config and metrics in its header). The same file twice gives the
    existing version. Returns ``(version, created)``."""
    if not weights_file.is_file():
        raise ModelRejected(f"No weights file at {weights_file}.")
    sha = _sha256(weights_file)
    existing = ModelVersion.objects.filter(weights_sha256=sha).exclude(status=ModelVersion.Status.DISCARDED).first()
    if existing is not None:
        if activate and existing.status != ModelVersion.Status.ACTIVE:
            model_version_activate(version=existing, user=user)
        return existing, False
    try:
        loaded = load_model(weights_file)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelRejected(f"{weights_file.name} is not a usable model: {exc}") from exc
    version = _create(weights_file=weights_file, sha=sha, name=name, user=user, parent=parent, notes=notes,
                      config=loaded.config.to_dict(), metadata=loaded.metadata)
    if activate:
        model_version_activate(version=version, user=user)
    return version, True


def _create(*, weights_file: Path, sha: str, name: str, user: Any, parent: ModelVersion | None, notes: str,
            config: dict[str, Any], metadata: dict[str, Any]) -> ModelVersion:
    target: Path | None = None
    try:
        with transaction.atomic():
            version = ModelVersion.objects.create(
                name=name[:128], architecture=config, weights_sha256=sha, parent=parent,
                status=ModelVersion.Status.CANDIDATE, notes=notes,
                metrics=_metrics_from(metadata), training_summary=metadata.get("training") or {},
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
            target = version.weights_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(weights_file, target)
            audit_record(actor=user, verb="model.register", target=version, details={"sha256": sha, "name": name})
    except BaseException:
        if target is not None:
            target.unlink(missing_ok=True)
        raise
    return version


def _metrics_from(metadata: dict[str, Any]) -> dict[str, Any]:
    """Figures stored with the weights: a fine-tuned version's ``metrics``; or the held-out report that
    bench/train_demo.py writes as ``heldout``, shown like a fine-tune's held-out figures."""
    if metadata.get("metrics"):
        return dict(metadata["metrics"])
    if isinstance(metadata.get("heldout"), dict):
        return {"held_out": metadata["heldout"]}
    return {}


def model_version_activate(*, version: ModelVersion, user: Any = None) -> ModelVersion:
    """Make ``version`` the one active model (the previous one is retired) and queue a prediction of every
    ready mosaic with it."""
    from .predictions import prediction_request

    if version.status == ModelVersion.Status.DISCARDED:
        raise ModelRejected("A discarded model version cannot be activated.")
    if version.status == ModelVersion.Status.TRAINING:
        raise ModelRejected("A model version still training cannot be activated.")
    with transaction.atomic():
        previous = list(ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.ACTIVE)
                        .exclude(pk=version.pk))
        for old in previous:
            old.status = ModelVersion.Status.RETIRED
            old.save(update_fields=["status"])
        version.status = ModelVersion.Status.ACTIVE
        version.activated_at = timezone.now()
        version.save(update_fields=["status", "activated_at"])
        audit_record(actor=user, verb="model.activate", target=version,
                     details={"retired": [old.pk for old in previous]})
        for mosaic in Mosaic.objects.filter(status=Mosaic.Status.READY):
            prediction_request(mosaic=mosaic, version=version, user=user)
    return version


@transaction.atomic
def model_version_discard(*, version: ModelVersion, user: Any = None) -> ModelVersion:
    if version.status == ModelVersion.Status.ACTIVE:
        raise ModelRejected("The active model cannot be discarded; activate another version first.")
    version.status = ModelVersion.Status.DISCARDED
    version.save(update_fields=["status"])
    audit_record(actor=user, verb="model.discard", target=version)
    return version
