"""Writes for predictions: request one (a job), and run it (the job's work)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from torch import nn

from annotations.models import Mosaic
from annotations.rasters import class_pixel_counts, read_raster, write_raster

from ..ml.infer import FAST_WINDOW, PAPER_WINDOW, cpu_has_native_bfloat16, optimise_for_cpu, predict_mosaic
from ..ml.weights import LoadedModel, load_model
from ..models import Job, ModelVersion, Prediction
from .jobs import ProgressReporter, job_create, job_enqueue

# Models kept loaded per worker process (a promotion switches versions; two covers old and new).
MODEL_CACHE_SIZE = 2
# Uncertainty 0..1 is stored as uint8 0..255: 1/255 steps are far below what a heatmap shows.
UNCERTAINTY_SCALE = 255

# Number formats of RCMWEB_PREDICT_PRECISION (see settings); "auto" picks bfloat16 where the CPU has it natively.
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
# Prepared (BatchNorm-folded, reduced-precision or quantized) models kept per worker process: two versions, each
# in fast and paper mode's window for int8.
PREPARED_CACHE_SIZE = 4
# int8 activation ranges come from these windows of a synthetic mosaic (a seed no training run uses), so that a
# mosaic's labels do not depend on which mosaic a worker happened to predict first.
INT8_CALIBRATION_SEED = 4243
INT8_CALIBRATION_WINDOWS = 16
INT8_CALIBRATION_SIDE = 1024

logger = logging.getLogger(__name__)

_models: dict[tuple[int, str], LoadedModel] = {}
_models_lock = threading.Lock()
_prepared: dict[tuple[int, str, str, int], tuple[nn.Module, str]] = {}
_prepared_lock = threading.Lock()


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


def predict_precision() -> str:
    """The number format prediction jobs use: ``RCMWEB_PREDICT_PRECISION`` with ``auto`` resolved for this CPU."""
    precision = settings.RCMWEB_PREDICT_PRECISION
    if precision not in PRECISIONS:
        raise ImproperlyConfigured(f"RCMWEB_PREDICT_PRECISION must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if cpu_has_native_bfloat16() else "float32"
    return precision


def _calibration_windows(window: int) -> np.ndarray:
    from ..ml.synthetic import generate_mosaic

    side = max(INT8_CALIBRATION_SIDE, 2 * window)
    image = generate_mosaic(height=side, width=side, um_per_px=settings.WORKING_UM_PER_PX,
                            seed=INT8_CALIBRATION_SEED).image
    rng = np.random.default_rng(INT8_CALIBRATION_SEED)
    corners = rng.integers(0, side - window + 1, size=(INT8_CALIBRATION_WINDOWS, 2))
    return np.stack([image[y : y + window, x : x + window] for y, x in corners])


def _prepare(version: ModelVersion, loaded: LoadedModel, precision: str, window: int) -> tuple[nn.Module, str]:
    if precision == "int8":
        try:
            from ..ml.quantize import quantize_for_cpu

            return quantize_for_cpu(loaded.model, _calibration_windows(window), window=window), "int8"
        except Exception as exc:  # noqa: BLE001 - whatever stops the optional path, the float one still works
            logger.warning("int8 model of %s for %d px windows could not be built (%s: %s); predicting in float32",
                           version.name, window, type(exc).__name__, exc)
            precision = "float32"
    return optimise_for_cpu(loaded.model, precision=precision), precision


def _prepared_model(version: ModelVersion, loaded: LoadedModel, precision: str, window: int,
                    progress: ProgressReporter) -> tuple[nn.Module, str]:
    """The model prepared for ``precision`` (for int8: compiled for ``window``² windows), built once per worker
    process. Returns (model, precision used): an int8 model that cannot be built (no torchao, no C++ compiler...)
    is logged once and replaced by the float32 path."""
    key = (version.pk, version.weights_sha256, precision, window if precision == "int8" else 0)
    with _prepared_lock:
        if key not in _prepared:
            if precision == "int8":
                progress(0.0, "Quantizing and compiling the int8 model (once per worker)", force=True)
            if len(_prepared) >= PREPARED_CACHE_SIZE:
                _prepared.pop(next(iter(_prepared)))
            _prepared[key] = _prepare(version, loaded, precision, window)
        return _prepared[key]


def prediction_run(*, job: Job, progress: ProgressReporter) -> str:
    """Run the job's model on its mosaic and store labels, uncertainty and each level. Idempotent: outputs
    go to a scratch folder and are moved into place; the row is unique per (mosaic, version)."""
    mosaic = Mosaic.objects.get(pk=job.mosaic_id)
    version = ModelVersion.objects.get(pk=job.model_version_id)
    if Prediction.objects.filter(mosaic=mosaic, model_version=version).exists() and not job.params.get("force"):
        return "Already predicted"
    progress(0.0, f"Loading model {version.name}", force=True)
    loaded = _model(version)
    mode = settings.RCMWEB_PREDICT_MODE
    window = PAPER_WINDOW if mode == "paper" else FAST_WINDOW
    model, precision = _prepared_model(version, loaded, predict_precision(), window, progress)
    image = read_raster(mosaic.folder / "working.png")
    started = time.perf_counter()
    result = predict_mosaic(
        model, image, mode=mode, keep_probabilities=False,
        progress=lambda fraction, message="": progress(0.95 * fraction,
                                                        f"Predicting ({mode} mode, {precision}): {message}"),
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
    return f"Predicted in {seconds:.0f} s ({result.windows} windows, {mode} mode, {precision})"
