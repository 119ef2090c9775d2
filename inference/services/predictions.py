"""Writes for predictions: request one (a job), and run it (the job's work)."""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from annotations.models import Mosaic
from annotations.rasters import class_pixel_counts, read_raster, write_raster

from ..ml.infer import predict_mosaic
from ..ml.weights import LoadedModel, load_model
from ..models import Job, ModelVersion, Prediction
from .jobs import ProgressReporter, job_create, job_enqueue

# Models kept loaded per worker process (a promotion switches versions; two covers old and new).
MODEL_CACHE_SIZE = 2
# Uncertainty 0..1 is stored as uint8 0..255: 1/255 steps are far below what a heatmap shows.
UNCERTAINTY_SCALE = 255

_models: dict[tuple[int, str], LoadedModel] = {}
_models_lock = threading.Lock()


def active_model_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def prediction_request(*, mosaic: Mosaic, version: ModelVersion | None = None, user: Any = None,
                       force: bool = False) -> Job | None:
    """Queue a prediction of ``mosaic`` by ``version`` (default: the active one). Returns the job that will make
    it, the one already queued or running, or None when there is no model or the prediction exists (unless
    ``force``, which predicts again)."""
    version = version or active_model_version()
    if version is None or mosaic.status != Mosaic.Status.READY:
        return None
    with transaction.atomic():
        running = Job.objects.filter(kind=Job.Kind.PREDICT, mosaic=mosaic, model_version=version,
                                     state__in=Job.ACTIVE_STATES).first()
        if running is not None:
            return running
        if not force and Prediction.objects.filter(mosaic=mosaic, model_version=version).exists():
            return None
        job = job_create(kind=Job.Kind.PREDICT, mosaic=mosaic, user=user,
                         params={"model_version": version.pk, "force": force})
        Job.objects.filter(pk=job.pk).update(model_version=version)
        job.model_version = version
        job_enqueue(job=job)
    return job


def _model(version: ModelVersion) -> LoadedModel:
    key = (version.pk, version.weights_sha256)
    with _models_lock:
        if key not in _models:
            if len(_models) >= MODEL_CACHE_SIZE:
                _models.pop(next(iter(_models)))
            _models[key] = load_model(version.weights_path)
        return _models[key]


def prediction_run(*, job: Job, progress: ProgressReporter) -> str:
    """Run the job's model on its mosaic and store labels, uncertainty and each level. Idempotent: outputs
    go to a scratch folder and are moved into place; the row is unique per (mosaic, version)."""
    mosaic = Mosaic.objects.get(pk=job.mosaic_id)
    version = ModelVersion.objects.get(pk=job.model_version_id)
    if Prediction.objects.filter(mosaic=mosaic, model_version=version).exists() and not job.params.get("force"):
        return "Already predicted"
    progress(0.0, f"Loading model {version.name}", force=True)
    loaded = _model(version)
    image = read_raster(mosaic.folder / "working.png")
    mode = settings.RCMWEB_PREDICT_MODE
    started = time.perf_counter()
    result = predict_mosaic(
        loaded.model, image, mode=mode, keep_probabilities=False,
        progress=lambda fraction, message="": progress(0.95 * fraction, f"Predicting ({mode} mode): {message}"),
    )
    seconds = time.perf_counter() - started
    progress(0.96, "Writing layers", force=True)
    final = Prediction(mosaic=mosaic, model_version=version).folder
    scratch = final.with_name(final.name + ".scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    write_raster(scratch / "labels.png", result.labels)
    write_raster(scratch / "uncertainty.png",
                 np.clip(np.rint(result.uncertainty * UNCERTAINTY_SCALE), 0, 255).astype(np.uint8))
    for level, labels in enumerate(result.levels[1:], start=1):
        write_raster(scratch / f"level{level}.png", labels)
    shutil.rmtree(final, ignore_errors=True)
    scratch.rename(final)
    counts = class_pixel_counts(result.labels)
    fields = {"mode": result.mode, "window": result.window, "overlap": result.overlap,
              "levels": len(result.levels), "class_pixels": counts, "seconds": seconds}
    try:
        Prediction.objects.update_or_create(mosaic=mosaic, model_version=version, defaults=fields)
    except IntegrityError:  # a concurrent duplicate made the row first: same inputs, same outputs
        pass
    return f"Predicted in {seconds:.0f} s ({result.windows} windows, {mode} mode)"
