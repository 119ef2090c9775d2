"""Fine-tuning from expert labels: launch (a job and a model version in training), run, evaluate.

The run trains the base version's weights on the partial labels gathered so far (imported labels, submitted
reviews, or both) of every ready mosaic that is not held out, with the core's trainer and the selective Dice loss,
checkpointing each epoch under the job's folder (a killed worker resumes there). The result is a *candidate*
version whose metrics on the held-out mosaics sit beside its parent's, and so does its agreement with the newest
submitted expert reviews (each on the pixels its expert labelled, told apart by whether the review's mosaic was
held out or trained on).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations.layers import label_layer_array, prediction_array
from annotations.models import LabelLayer, Mosaic, Review
from annotations.rasters import read_raster
from annotations.services import audit_record

from ..ml.classes import NUM_CLASSES, UNLABELLED
from ..ml.finetune import (
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_STEPS_PER_EPOCH,
    finetune_config,
    finetune_patch,
    validation_count,
)
from ..ml.infer import optimise_for_cpu, predict_mosaic
from ..ml.metrics import SegmentationReport, confusion_matrix
from ..ml.train import train
from ..ml.weights import load_model, save_model
from ..models import Job, ModelVersion, Prediction
from .jobs import JobCancelled, ProgressReporter, job_create, job_enqueue
from .models import _sha256
from .predictions import predict_precision

logger = logging.getLogger(__name__)

LABEL_SOURCES = ("imported", "reviews", "all")
# The round's defaults (epochs, lr, steps per epoch, loss), its training patch and its validation split live in
# inference.ml.finetune, shared with bench/loop.py, which measures them.
# Bounds an admin may choose within: beyond them a round would take days on CPU or the step would diverge.
MAX_EPOCHS = 200
LR_RANGE = (1e-6, 1e-1)
# After a round, the newest submitted reviews (at most this many) are compared with the candidate and its parent.
# Each review's mosaic costs a fast-mode prediction by the candidate (about 2.5 min for a 3000 x 3000 working
# mosaic on 2 CPU cores, seconds on a GPU) unless the held-out evaluation made it already, and one by the parent
# unless it has a stored prediction: a dozen keeps a round's extra time under about half an hour on CPU.
MAX_REVIEWS_COMPARED = 12
# Where a review's mosaic stood in the round: its agreement on trained-on mosaics is optimistic (the candidate
# learned those labels, or labels on the same mosaic), on held-out mosaics it is not.
REVIEW_SPLITS = ("held_out", "trained", "validation", "not_used")


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


def fast_labels(model: Any, mosaic: Mosaic) -> np.ndarray:
    """``model``'s label map of ``mosaic``, uint8 ``(H, W)`` at working resolution, by fast-mode tiled inference.

    On the CPU in the number format prediction jobs use (bfloat16 where native; int8 is for paper mode only and
    gives float32 here), so a candidate is scored as it will predict once promoted, and alike with its parent's
    stored predictions, which the comparison with the reviews reuses."""
    image = read_raster(mosaic.folder / "working.png")
    device = next(model.parameters()).device  # a candidate trained on a GPU is evaluated there
    if device.type == "cpu":
        model = optimise_for_cpu(model, precision="bfloat16" if predict_precision() == "bfloat16" else "float32")
    return predict_mosaic(model, image, mode="fast", keep_probabilities=False, device=device).labels


def evaluate(model: Any, held_out: list[tuple[Mosaic, np.ndarray]], *, keep: set[int] = frozenset(),
             kept: dict[int, np.ndarray] | None = None) -> dict[str, Any]:
    """Table-1 figures of ``model`` on the held-out mosaics' expert labels (labelled pixels only).

    The label maps of the mosaics whose ids are in ``keep`` are put in ``kept`` (mosaic id -> map) for reuse.
    """
    if not held_out:
        return {}
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for mosaic, labels in held_out:
        predicted = fast_labels(model, mosaic)
        if kept is not None and mosaic.pk in keep:
            kept[mosaic.pk] = predicted
        matrix += confusion_matrix(labels, predicted)
    report = SegmentationReport.from_confusion(matrix).to_dict()
    report["mosaics"] = [mosaic.pk for mosaic, _ in held_out]
    return report


def reviews_to_compare(limit: int | None = None) -> tuple[list[Review], int]:
    """The newest submitted reviews that labelled something, on ready mosaics (at most ``limit``, default
    ``MAX_REVIEWS_COMPARED``), and how many such reviews there are in all."""
    reviews = (Review.objects.filter(state=Review.State.SUBMITTED, layer__labelled_pixels__gt=0,
                                     mosaic__status=Mosaic.Status.READY)
               .select_related("mosaic", "expert", "layer").order_by("-submitted_at", "-id"))
    return list(reviews[: MAX_REVIEWS_COMPARED if limit is None else limit]), reviews.count()


def _review_figures(matrix: np.ndarray) -> dict[str, Any]:
    """What is kept per review: pixel agreement (accuracy), kappa, mean Dice, Dice per class, labelled pixels."""
    report = SegmentationReport.from_confusion(matrix).to_dict()
    return {key: report[key] for key in ("accuracy", "kappa", "mean_dice", "dice", "labelled_pixels")}


def _parent_labels(parent: ModelVersion, parent_model: Callable[[], Any], mosaic: Mosaic,
                   evaluated: dict[int, np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
    """The parent's label map of ``mosaic``: from this round's held-out evaluation, else its stored prediction,
    else made now (fast mode); with where it came from."""
    if mosaic.pk in evaluated:
        return evaluated[mosaic.pk], {"source": "evaluation", "mode": "fast"}
    stored = Prediction.objects.filter(mosaic=mosaic, model_version=parent).first()
    if stored is not None and stored.level_path(0).exists():
        labels = np.asarray(prediction_array(stored))
        if labels.shape == (mosaic.working_height, mosaic.working_width):
            return labels, {"source": "stored", "mode": stored.mode, "prediction": stored.pk}
    return fast_labels(parent_model(), mosaic), {"source": "computed", "mode": "fast"}


def compare_with_reviews(*, candidate: Any, parent: ModelVersion, parent_model: Callable[[], Any],
                         reviews: list[Review], submitted: int, splits: dict[int, str],
                         candidate_maps: dict[int, np.ndarray] | None = None,
                         parent_maps: dict[int, np.ndarray] | None = None,
                         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Agreement of the candidate and of its parent with each of ``reviews`` on the pixels its expert labelled.

    candidate: the candidate model; parent_model: returns the parent's model (called only when a label map must
    be made). splits: mosaic id -> one of ``REVIEW_SPLITS`` (a mosaic not in it is held out if flagged so, else
    not used). candidate_maps, parent_maps: label maps already made (the held-out evaluation's), by mosaic id.
    progress: called with (mosaics done, mosaics) before each mosaic.

    Returns per review (newest first) its figures for both models, and per split the figures of the reviews'
    summed confusion matrices (pixel-pooled, as the held-out figures). ``submitted``: how many reviews could
    have been compared (the count beyond the cap).
    """
    candidate_maps = candidate_maps or {}
    parent_maps = parent_maps or {}
    by_mosaic: dict[int, list[Review]] = {}
    for review in reviews:
        by_mosaic.setdefault(review.mosaic_id, []).append(review)
    zeros = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    pooled: dict[str, dict[str, Any]] = {}
    rows: dict[int, dict[str, Any]] = {}
    for index, group in enumerate(by_mosaic.values()):
        if progress is not None:
            progress(index, len(by_mosaic))
        mosaic = group[0].mosaic
        candidate_labels = candidate_maps.get(mosaic.pk)
        if candidate_labels is None:
            candidate_labels = fast_labels(candidate, mosaic)
        parent_labels, parent_source = _parent_labels(parent, parent_model, mosaic, parent_maps)
        split = splits.get(mosaic.pk) or ("held_out" if mosaic.held_out else "not_used")
        for review in group:
            expert = np.asarray(label_layer_array(review.layer))
            matrices = {"candidate": confusion_matrix(expert, candidate_labels),
                        "parent": confusion_matrix(expert, parent_labels)}
            labelled = int(matrices["candidate"].sum())
            if not labelled:
                continue
            pool = pooled.setdefault(split, {"reviews": [], "mosaics": [], "candidate": zeros, "parent": zeros})
            pool["reviews"].append(review.pk)
            if mosaic.pk not in pool["mosaics"]:
                pool["mosaics"].append(mosaic.pk)
            pool["candidate"] = pool["candidate"] + matrices["candidate"]
            pool["parent"] = pool["parent"] + matrices["parent"]
            rows[review.pk] = {
                "review": review.pk, "mosaic": mosaic.pk, "mosaic_name": mosaic.name,
                "expert": review.expert.get_username(),
                "submitted_at": review.submitted_at.isoformat() if review.submitted_at else None,
                "split": split, "labelled_pixels": labelled,
                "candidate": _review_figures(matrices["candidate"]), "parent": _review_figures(matrices["parent"]),
                "parent_prediction": parent_source,
            }
    splits_out = {}
    for split in REVIEW_SPLITS:
        if split in pooled:
            pool = pooled[split]
            splits_out[split] = {
                "reviews": pool["reviews"], "mosaics": pool["mosaics"],
                "labelled_pixels": int(pool["candidate"].sum()),
                "candidate": SegmentationReport.from_confusion(pool["candidate"]).to_dict(),
                "parent": SegmentationReport.from_confusion(pool["parent"]).to_dict(),
            }
    return {
        "parent": parent.pk, "mode": "fast", "limit": MAX_REVIEWS_COMPARED, "submitted": submitted,
        "compared": len(rows), "splits": splits_out,
        "per_review": [rows[review.pk] for review in reviews if review.pk in rows],
    }


def finetune_run(*, job: Job, progress: ProgressReporter) -> str:
    """The training job's work: gather data, train from the base weights (resuming a checkpoint), evaluate the
    candidate and its parent on the held-out mosaics and against the newest submitted reviews, store the
    candidate's weights and figures."""
    params = FinetuneParams(**{k: v for k, v in job.params.items() if k != "candidate"})
    version = ModelVersion.objects.get(pk=job.model_version_id)
    base = version.parent
    if base is None:
        raise TrainingRejected("The candidate has no parent version to start from.")
    data = training_data(params.labels)
    mosaics = data["train"]
    n_val = validation_count(len(mosaics))
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

    try:
        patch = finetune_patch(image.shape for image, _ in pairs + val_pairs)  # smaller only for small mosaics
    except ValueError as exc:
        raise TrainingRejected(str(exc)) from exc
    config = finetune_config(epochs=params.epochs, lr=params.lr, steps_per_epoch=params.steps_per_epoch,
                             seed=params.seed, patch=patch, checkpoint_dir=_checkpoint_dir(job), device="auto")
    result = train(None, pairs, val_pairs, config, progress=report, resume=True, base_weights=base.weights_path)
    info = {"history": history, "steps": steps[-2000:], "phase": "evaluating"}
    reviews, submitted = reviews_to_compare()
    review_mosaics = {review.mosaic_id for review in reviews}
    candidate_maps: dict[int, np.ndarray] = {}
    parent_maps: dict[int, np.ndarray] = {}
    parent_model = cache(lambda: load_model(base.weights_path).model)  # loaded once, and only if needed
    progress(0.86, "Evaluating the candidate on held-out mosaics", info, force=True)
    candidate_metrics = evaluate(result.model, data["held_out"], keep=review_mosaics, kept=candidate_maps)
    progress(0.9, "Evaluating the parent on the same mosaics", info, force=True)
    parent_metrics = (evaluate(parent_model(), data["held_out"], keep=review_mosaics, kept=parent_maps)
                      if data["held_out"] else {})
    splits = ({m.pk: "trained" for m, _ in train_set} | {m.pk: "validation" for m, _ in val_set}
              | {m.pk: "held_out" for m, _ in data["held_out"]})

    def review_progress(done: int, total: int) -> None:
        progress(0.94 + 0.05 * done / max(1, total),
                 f"Comparing with the experts' reviews (mosaic {done + 1} of {total})", info, force=True)

    progress(0.94, "Comparing with the experts' reviews", info, force=True)
    review_metrics = compare_with_reviews(
        candidate=result.model, parent=base, parent_model=parent_model, reviews=reviews, submitted=submitted,
        splits=splits, candidate_maps=candidate_maps, parent_maps=parent_maps, progress=review_progress)
    del candidate_maps, parent_maps
    summary = {
        "labels": params.labels,
        "train_mosaics": [m.pk for m, _ in train_set],
        "validation_mosaics": [m.pk for m, _ in val_set],
        "held_out_mosaics": [m.pk for m, _ in data["held_out"]],
        "labelled_pixels_per_class": {
            str(k): int(sum(np.count_nonzero(labels == k) for _, labels in mosaics)) for k in range(NUM_CLASSES)},
        "epochs": params.epochs, "lr": params.lr, "steps_per_epoch": params.steps_per_epoch,
        "ce_weight": config.ce_weight,
        "history": history,
    }
    metrics = {"held_out": candidate_metrics, "parent_held_out": parent_metrics, "reviews": review_metrics}
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
                              "parent_held_out_mean_dice": parent_metrics.get("mean_dice"),
                              "reviews_compared": review_metrics["compared"]})
    shutil.rmtree(_checkpoint_dir(job), ignore_errors=True)
    dice = candidate_metrics.get("mean_dice")
    return f"Candidate v{version.pk} ready" + (f": held-out mean Dice {dice:.3f}" if dice is not None else "")


def finetune_abandon(*, job: Job) -> None:
    """After a cancelled or failed round, its candidate is discarded (the job row keeps the reason)."""
    if job.model_version_id:
        ModelVersion.objects.filter(pk=job.model_version_id, status=ModelVersion.Status.TRAINING).update(
            status=ModelVersion.Status.DISCARDED)
