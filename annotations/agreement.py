"""Agreement between the model and the experts, between experts, and where to look next (reads only).

All figures come from confusion matrices (``inference.ml.metrics``) with rows = the expert ("truth") and columns
= the model, counted over the pixels the expert labelled (255 = unlabelled is ignored), at working resolution:

- per review: its layer against the prediction it was made on. Kept up to date by every edit from the edit's
  before/after patches (``Review.confusion``, see ``annotations.reviews``), so reading it costs nothing;
- per mosaic and model version: every *expert layer* of the mosaic (the layers of submitted and in-progress
  reviews, and imported expert labels; trainee layers are not expert labels) against that version's prediction.
  The layers' matrices are summed: a pixel labelled in two layers counts once for each (pixel-pooled figures, as
  the paper pools mosaics). Each version also carries its difference to its parent version's figures on the
  same pixels, so a fine-tuned model can be compared with the model it came from;
- expert against expert: for every two expert layers of a mosaic that overlap, the first layer (rows) against the
  second (columns) on the pixels both labelled.
"""

from __future__ import annotations

import io
import math
from itertools import combinations
from typing import Any

import matplotlib
import numpy as np
from django.db.models import QuerySet

from inference.ml.classes import NUM_CLASSES, UNLABELLED
from inference.ml.metrics import SegmentationReport, confusion_matrix
from inference.ml.regions import (  # noqa: F401 (the block constants are read from here too, by tests)
    MIN_UNLABELLED_FRACTION,
    NEXT_REGION_BLOCK_PX,
    uncertainty_blocks,
)
from inference.models import Prediction
from inference.services.predictions import UNCERTAINTY_SCALE

from .geometry import Frame
from .layers import label_layer_array, prediction_array
from .models import LabelClass, LabelLayer, Mosaic, Review
from .reviews import review_report

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EXPERT_SOURCES = (LabelLayer.Source.IMPORT, LabelLayer.Source.REVIEW)
# "Where to look next" ranks blocks of NEXT_REGION_BLOCK_PX working px that are at least MIN_UNLABELLED_FRACTION
# unlabelled (``inference.ml.regions``, shared with the fine-tuning loop benchmark, says why those numbers).
PLOT_DPI = 110  # crisp on screen and in a report, ~40 kB per plot


def report_json(confusion: np.ndarray) -> dict[str, Any]:
    """Table-1 figures of a ``[K, K]`` confusion matrix (rows expert, columns model), JSON-safe."""
    return SegmentationReport.from_confusion(np.asarray(confusion, np.int64)).to_dict()


def expert_layers(mosaic: Mosaic) -> QuerySet[LabelLayer]:
    return (mosaic.label_layers.filter(source__in=EXPERT_SOURCES)
            .select_related("author", "review").order_by("id"))


def layer_info(layer: LabelLayer) -> dict[str, Any]:
    review: Review | None = getattr(layer, "review", None) if layer.source == LabelLayer.Source.REVIEW else None
    return {
        "layer": layer.pk, "source": layer.source, "name": layer.name,
        "author": layer.author.get_username() if layer.author else None,
        "review": review.pk if review else None, "review_state": review.state if review else None,
        "labelled_pixels": layer.labelled_pixels,
    }


def review_agreement(review: Review) -> dict[str, Any]:
    """Model against this review's expert on the pixels labelled so far (from the stored confusion matrix)."""
    prediction = review.prediction
    version = prediction.model_version if prediction else None
    return {
        "review": review.pk,
        "prediction": prediction.pk if prediction else None,
        "model_version": version.pk if version else None,
        "model_name": version.name if version else None,
        "report": report.to_dict() if (report := review_report(review)) is not None else None,
    }


def _predictions(mosaic: Mosaic) -> list[Prediction]:
    return list(mosaic.predictions.select_related("model_version", "mosaic")
                .order_by("-model_version__activated_at", "-id"))


def mosaic_agreement(mosaic: Mosaic, *, shown: set[int] | None = None) -> dict[str, Any]:
    """Per model version (every prediction of the mosaic) and per expert pair; see the module docstring.

    ``shown``: ids of the layers whose own figures may be listed (None: all, for admins). The pooled figures of
    a version always count every expert layer; per-layer figures and expert pairs list shown layers only, so an
    expert learns nothing about another expert's review in progress.
    """
    layers = list(expert_layers(mosaic))
    arrays = {layer.pk: np.asarray(label_layer_array(layer)) for layer in layers}
    versions = []
    for prediction in _predictions(mosaic):
        model = np.asarray(prediction_array(prediction))
        total = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        per_layer = []
        for layer in layers:
            matrix = confusion_matrix(arrays[layer.pk], model)
            total += matrix
            if shown is None or layer.pk in shown:
                per_layer.append({**layer_info(layer), "report": report_json(matrix)})
        version = prediction.model_version
        versions.append({
            "prediction": prediction.pk, "model_version": version.pk, "name": version.name,
            "status": version.status, "parent": version.parent_id, "report": report_json(total),
            "layers": per_layer,
        })
    by_version = {entry["model_version"]: entry for entry in versions}
    for entry in versions:
        parent = by_version.get(entry["parent"])
        entry["delta_vs_parent"] = None if parent is None else {
            key: _difference(entry["report"][key], parent["report"][key]) for key in ("accuracy", "kappa", "mean_dice")
        }
    pairs = []
    for a, b in combinations([layer for layer in layers if shown is None or layer.pk in shown], 2):
        both = (arrays[a.pk] != UNLABELLED) & (arrays[b.pk] != UNLABELLED)
        overlap = int(np.count_nonzero(both))
        if overlap:
            matrix = confusion_matrix(arrays[a.pk][both], arrays[b.pk][both])
            pairs.append({"a": layer_info(a), "b": layer_info(b), "overlap_pixels": overlap,
                          "report": report_json(matrix)})
    listed = [layer_info(layer) for layer in layers if shown is None or layer.pk in shown]
    return {"mosaic": mosaic.pk, "layers": listed, "other_layers": len(layers) - len(listed), "versions": versions,
            "expert_pairs": pairs}


def _difference(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else new - old


def mosaic_version_confusion(mosaic: Mosaic, prediction: Prediction) -> np.ndarray:
    """Every expert layer of ``mosaic`` against ``prediction``, summed ``[K, K]``."""
    model = np.asarray(prediction_array(prediction))
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for layer in expert_layers(mosaic):
        total += confusion_matrix(np.asarray(label_layer_array(layer)), model)
    return total


def confusion_png(confusion: np.ndarray, *, title: str, rows: str = "expert", columns: str = "model") -> bytes:
    """A confusion-matrix plot: cells coloured by the share of their row, labelled with counts and shares."""
    cm = np.asarray(confusion, np.int64)
    names = [c.name.split(" (")[0] for c in LabelClass.objects.order_by("value")][: cm.shape[0]]
    row_sums = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, row_sums, out=np.zeros(cm.shape), where=row_sums > 0)
    report = SegmentationReport.from_confusion(cm)
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=PLOT_DPI)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]:,}\n{100 * share[i, j]:.0f} %", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.6 else "#222")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel(columns)
    ax.set_ylabel(f"{rows} (rows sum to 100 %)")

    def fmt(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.3f}"

    ax.set_title(f"{title}\nagreement {fmt(report.accuracy)}, κ {fmt(report.kappa)}, "
                 f"{report.labelled_pixels:,} px", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def labelled_by_experts(mosaic: Mosaic) -> np.ndarray:
    """bool ``(H, W)``: pixels labelled in at least one expert layer of the mosaic."""
    labelled = np.zeros((mosaic.working_height, mosaic.working_width), bool)
    for layer in expert_layers(mosaic):
        labelled |= np.asarray(label_layer_array(layer)) != UNLABELLED
    return labelled


def next_region(review: Review, frame: Frame) -> dict[str, Any] | None:
    """The most uncertain block among pixels nobody labelled that this review has not marked seen, or None.

    Blocks of ``NEXT_REGION_BLOCK_PX`` working px with at least ``MIN_UNLABELLED_FRACTION`` unlabelled pixels are
    ranked by the mean model uncertainty (0–1) over their unlabelled pixels; a block whose centre lies in a seen
    region is skipped. The answer gives the block in full-resolution image px and in working px.
    """
    if review.prediction is None:
        return None
    uncertainty = np.asarray(prediction_array(review.prediction, "uncertainty"))
    blocks = uncertainty_blocks(uncertainty, ~labelled_by_experts(review.mosaic))
    eligible = blocks.eligible.copy()
    cy, cx = blocks.centres()
    for x0, y0, x1, y1 in review.seen_regions:
        eligible &= ~((cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1))
    ranked = blocks.ranked(eligible)
    if not ranked:
        return None
    by, bx = ranked[0]
    bbox = blocks.bbox(by, bx)
    return {
        **frame.to_image(bbox),
        "working_bbox": list(bbox),
        "mean_uncertainty": float(blocks.mean[by, bx]) / UNCERTAINTY_SCALE,
        "unlabelled_fraction": float(blocks.counts[by, bx] / blocks.sizes[by, bx]),
        "remaining": int(eligible.sum()),
    }
