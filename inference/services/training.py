"""Fine-tuning from expert labels: launch (a job and a model version in training), run, evaluate.

The run trains the base version's weights on the partial labels gathered so far (imported labels, submitted
reviews, or both) of every ready mosaic that is not held out, with the core's trainer and the selective Dice loss,
checkpointing each epoch under the job's folder (a killed worker resumes there). The result is a *candidate*
version whose metrics on the held-out mosaics sit beside its parent's.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations.models import LabelLayer, Mosaic
from annotations.rasters import read_raster
from annotations.services import audit_record

from ..ml.classes import NUM_CLASSES, UNLABELLED
from ..ml.infer import predict_mosaic
from ..ml.metrics import SegmentationReport, confusion_matrix
from ..ml.train import TrainConfig, train
from ..ml.weights import load_model, save_model
from ..models import Job, ModelVersion
from .jobs import JobCancelled, ProgressReporter, job_create, job_enqueue
from .models import _sha256

logger = logging.getLogger(__name__)

LABEL_SOURCES = ("imported", "reviews", "all")
# Defaults sized for a 2-core machine: a round of fine-tuning in minutes, not hours (see bench/finetune_loop.py).
DEFAULT_EPOCHS = 3
DEFAULT_LR = 1e-4  # a tenth of the from-scratch rate: fine-tuning nudges, it does not relearn
DEFAULT_STEPS_PER_EPOCH = 40
# Bounds an admin may choose within: beyond them a round would take days on CPU or the step would diverge.
MAX_EPOCHS = 200
LR_RANGE = (1e-6, 1e-1)
# Training patches: the paper's 256 px, smaller (a multiple of 16, MUNet's stride product) only for mosaics
# smaller than that; below 64 px a patch holds too little context to learn patterns from.
DEFAULT_PATCH = 256
PATCH_MULTIPLE = 16
MIN_PATCH = 64
# Share of the training mosaics kept aside to pick the best epoch (never the held-out ones).
VALIDATION_SHARE = 0.2


class TrainingRejected(ValueError):
    """The fine-tuning request is not valid; the message says what is allowed."""


@dataclass(frozen=True)
class FinetuneParams:
    base_version: int
    labels: str = "all"
    epochs: int = DEFAULT_EPOCHS
    lr: float = DEFAULT_LR
    steps_per_epoch: int = DEFAULT_STEPS_PER_EPOCH
    seed: int = 0

    def validate(self) -> None:
        if self.labels not in LABEL_SOURCES:
            raise TrainingRejected(f"labels must be one of {', '.join(LABEL_SOURCES)}; got {self.labels!r}.")
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise TrainingRejected(f"epochs must be between 1 and {MAX_EPOCHS}; got {self.epochs}.")
        if not LR_RANGE[0] <= self.lr <= LR_RANGE[1]:
            raise TrainingRejected(f"lr must be between {LR_RANGE[0]} and {LR_RANGE[1]}; got {self.lr}.")
        if not 1 <= self.steps_per_epoch <= 100_000:
            raise TrainingRejected(f"steps_per_epoch must be between 1 and 100000; got {self.steps_per_epoch}.")


def _layer_array(layer: LabelLayer) -> np.ndarray:
    path = layer.raster_path
    return np.load(path) if path.suffix == ".npy" else read_raster(path)


def _label_layers(mosaic: Mosaic, labels: str) -> list[LabelLayer]:
    layers = mosaic.label_layers.order_by("created_at", "id")
    chosen: list[LabelLayer] = []
    if labels in ("imported", "all"):
        chosen += list(layers.filter(source=LabelLayer.Source.IMPORT))
    if labels in ("reviews", "all"):
        chosen += [layer for layer in layers.filter(source=LabelLayer.Source.REVIEW)
                   if getattr(getattr(layer, "review", None), "state", None) == "submitted"]
    return chosen


def expert_labels(mosaic: Mosaic, labels: str = "all") -> np.ndarray | None:
    """The mosaic's expert labels at working resolution: imported layers, then submitted reviews on top (a later
    layer wins where it labelled a pixel). None when no chosen layer exists."""
    merged: np.ndarray | None = None
    for layer in _label_layers(mosaic, labels):
        array = _layer_array(layer)
        if merged is None:
            merged = np.full(array.shape, UNLABELLED, np.uint8)
        labelled = array != UNLABELLED
        merged[labelled] = array[labelled]
    return merged


def training_data(labels: str) -> dict[str, list[tuple[Mosaic, np.ndarray]]]:
    """Ready mosaics with expert labels, split into ``train`` (never held-out ones) and ``held_out``."""
    split: dict[str, list[tuple[Mosaic, np.ndarray]]] = {"train": [], "held_out": []}
    for mosaic in Mosaic.objects.filter(status=Mosaic.Status.READY).order_by("id"):
        merged = expert_labels(mosaic, "all" if mosaic.held_out else labels)
        if merged is None or not np.any(merged != UNLABELLED):
            continue
        split["held_out" if mosaic.held_out else "train"].append((mosaic, merged))
    return split


def finetune_launch(*, params: FinetuneParams, user: Any) -> tuple[Job, bool]:
    """Queue a fine-tuning round. A second launch while one runs returns the running job (``created`` False)."""
    params.validate()
    base = ModelVersion.objects.filter(pk=params.base_version).first()
    if base is None or base.status in (ModelVersion.Status.TRAINING, ModelVersion.Status.DISCARDED):
        raise TrainingRejected(f"Model version {params.base_version} cannot be fine-tuned (missing, training or "
                               "discarded); choose the active version or a candidate.")
    with transaction.atomic():
        running = Job.objects.select_for_update().filter(kind=Job.Kind.TRAIN, state__in=Job.ACTIVE_STATES).first()
        if running is not None:
            return running, False
        if not training_data(params.labels)["train"]:
            raise TrainingRejected(f"No mosaic outside the held-out set has {params.labels} labels yet: "
                                   "import labels or submit reviews first.")
        version = ModelVersion.objects.create(
            name=f"{base.name} + fine-tune {timezone.now():%Y-%m-%d %H:%M}"[:128], architecture=base.architecture,
            parent=base, status=ModelVersion.Status.TRAINING, created_by=user if user.is_authenticated else None,
        )
        job = job_create(kind=Job.Kind.TRAIN, user=user, params=params.__dict__ | {"candidate": version.pk},
                         max_attempts=3)
        Job.objects.filter(pk=job.pk).update(model_version=version)
        job.model_version = version
        audit_record(actor=user, verb="model.finetune_launch", target=version, details=params.__dict__)
        job_enqueue(job=job)
    return job, True


def _checkpoint_dir(job: Job) -> Path:
    return Path(settings.MEDIA_ROOT) / "training" / f"job-{job.pk}"


def evaluate(model: Any, held_out: list[tuple[Mosaic, np.ndarray]]) -> dict[str, Any]:
    """Table-1 figures of ``model`` on the held-out mosaics' expert labels (labelled pixels only)."""
    if not held_out:
        return {}
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for mosaic, labels in held_out:
        image = read_raster(mosaic.folder / "working.png")
        predicted = predict_mosaic(model, image, mode="fast", keep_probabilities=False).labels
        matrix += confusion_matrix(labels, predicted)
    report = SegmentationReport.from_confusion(matrix).to_dict()
    report["mosaics"] = [mosaic.pk for mosaic, _ in held_out]
    return report


def finetune_run(*, job: Job, progress: ProgressReporter) -> str:
    """The training job's work: gather data, train from the base weights (resuming a checkpoint), evaluate the
    candidate and its parent on the held-out mosaics, store the candidate's weights and figures."""
    params = FinetuneParams(**{k: v for k, v in job.params.items() if k != "candidate"})
    version = ModelVersion.objects.get(pk=job.model_version_id)
    base = version.parent
    if base is None:
        raise TrainingRejected("The candidate has no parent version to start from.")
    data = training_data(params.labels)
    mosaics = data["train"]
    n_val = int(len(mosaics) * VALIDATION_SHARE) if len(mosaics) >= 2 else 0
    train_set, val_set = mosaics[n_val:], mosaics[:n_val]
    pairs = [(read_raster(m.folder / "working.png"), labels) for m, labels in train_set]
    val_pairs = [(read_raster(m.folder / "working.png"), labels) for m, labels in val_set]
    history: list[dict[str, Any]] = list(job.info.get("history", []))
    steps: list[dict[str, Any]] = list(job.info.get("steps", []))

    def report(fraction: float, message: str, info: dict[str, Any]) -> None:
        if info.get("event") == "step":
            steps.append({"epoch": info["epoch"], "step": info["step"], "loss": round(float(info["loss"]), 5)})
        elif info.get("event") == "epoch":
            history.append({k: info.get(k) for k in ("epoch", "train_loss", "val_loss", "val_mean_dice",
                                                     "val_accuracy")})
        progress(0.85 * fraction, message, {"history": history, "steps": steps[-2000:], "phase": "training"},
                 force=info.get("event") == "epoch")

    smallest = min(min(image.shape) for image, _ in pairs + val_pairs)
    patch = min(DEFAULT_PATCH, smallest // PATCH_MULTIPLE * PATCH_MULTIPLE)  # small mosaics train on smaller patches
    if patch < MIN_PATCH:
        raise TrainingRejected(f"A training mosaic is only {smallest} working pixels wide; at least {MIN_PATCH} "
                               "are needed.")
    config = TrainConfig(epochs=params.epochs, lr=params.lr, seed=params.seed, patch=patch,
                         max_steps_per_epoch=params.steps_per_epoch, checkpoint_dir=_checkpoint_dir(job),
                         device="auto")
    result = train(None, pairs, val_pairs, config, progress=report, resume=True, base_weights=base.weights_path)
    progress(0.86, "Evaluating the candidate on held-out mosaics",
             {"history": history, "steps": steps[-2000:], "phase": "evaluating"}, force=True)
    candidate_metrics = evaluate(result.model, data["held_out"])
    progress(0.93, "Evaluating the parent on the same mosaics",
             {"history": history, "steps": steps[-2000:], "phase": "evaluating"}, force=True)
    parent_metrics = evaluate(load_model(base.weights_path).model, data["held_out"])
    summary = {
        "labels": params.labels,
        "train_mosaics": [m.pk for m, _ in train_set],
        "validation_mosaics": [m.pk for m, _ in val_set],
        "held_out_mosaics": [m.pk for m, _ in data["held_out"]],
        "labelled_pixels_per_class": {
            str(k): int(sum(np.count_nonzero(labels == k) for _, labels in mosaics)) for k in range(NUM_CLASSES)},
        "epochs": params.epochs, "lr": params.lr, "steps_per_epoch": params.steps_per_epoch,
        "history": history,
    }
    metrics = {"held_out": candidate_metrics, "parent_held_out": parent_metrics}
    version.weights_path.parent.mkdir(parents=True, exist_ok=True)
    save_model(version.weights_path, result.model, metadata={"metrics": metrics, "training": summary,
                                                              "parent": base.pk})
    with transaction.atomic():
        version.refresh_from_db()
        if version.status != ModelVersion.Status.TRAINING:
            raise JobCancelled(f"Candidate {version.pk} is {version.status}.")
        version.status = ModelVersion.Status.CANDIDATE
        version.metrics = metrics
        version.training_summary = summary
        version.weights_sha256 = _sha256(version.weights_path)
        version.save(update_fields=["status", "metrics", "training_summary", "weights_sha256"])
        audit_record(actor=job.created_by, verb="model.finetune_done", target=version,
                     details={"job": job.pk, "held_out_mean_dice": candidate_metrics.get("mean_dice"),
                              "parent_held_out_mean_dice": parent_metrics.get("mean_dice")})
    shutil.rmtree(_checkpoint_dir(job), ignore_errors=True)
    dice = candidate_metrics.get("mean_dice")
    return f"Candidate v{version.pk} ready" + (f": held-out mean Dice {dice:.3f}" if dice is not None else "")


def finetune_abandon(*, job: Job) -> None:
    """After a cancelled or failed round, its candidate is discarded (the job row keeps the reason)."""
    if job.model_version_id:
        ModelVersion.objects.filter(pk=job.model_version_id, status=ModelVersion.Status.TRAINING).update(
            status=ModelVersion.Status.DISCARDED)
