"""Segmentation metrics of the paper's Table 1 (sensitivity, specificity, Dice, precision, accuracy).

Everything is computed from one confusion matrix ``C`` of shape ``[K, K]`` with rows = truth and columns =
prediction, counted over *labelled* pixels only (truth ``== UNLABELLED`` is ignored, as the paper discards
unlabelled pixels from its figures). Confusion matrices of several mosaics add up, so a test set is scored by
summing their matrices and building one :class:`SegmentationReport` (pixel-pooled figures, as in the paper).

Absent classes: a per-class figure whose denominator is zero (e.g. sensitivity of a class that never occurs in
the truth) is ``NaN`` in the arrays and ``None`` in :meth:`SegmentationReport.to_dict`. ``mean_dice`` averages
the Dice of the classes present in the truth only, so a class that no mosaic contains neither helps nor hurts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.ml.classes import CLASS_KEYS, NUM_CLASSES, UNLABELLED


def confusion_matrix(
    truth: np.ndarray,
    pred: np.ndarray,
    num_classes: int = NUM_CLASSES,
    ignore: int | None = UNLABELLED,
) -> np.ndarray:
    """Count (truth, prediction) pairs over the pixels whose truth is not ``ignore``.

    truth, pred: integer arrays of the same shape (any number of dimensions, e.g. ``(H, W)``), values in
    ``[0, num_classes)``; ``truth`` may also hold ``ignore``. Returns an int64 array ``[K, K]``, rows = truth,
    columns = prediction. One ``np.bincount`` over the flattened pairs, so a 3000 × 3000 map takes a fraction of a second.
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} must have the same shape")
    if not (np.issubdtype(truth.dtype, np.integer) and np.issubdtype(pred.dtype, np.integer)):
        raise TypeError(f"truth and prediction must be integer label maps, got {truth.dtype} and {pred.dtype}")
    t = truth.ravel()
    p = pred.ravel()
    if t.size == 0:
        return np.zeros((num_classes, num_classes), np.int64)
    p_lo, p_hi = int(p.min()), int(p.max())
    t_lo, t_hi = int(t.min()), int(t.max())
    if p_lo < 0 or p_hi >= num_classes:
        raise ValueError(f"prediction holds values in [{p_lo}, {p_hi}]; allowed are 0..{num_classes - 1}")
    if t_lo < 0:
        raise ValueError(f"truth holds negative values (min {t_lo}); allowed are 0..{num_classes - 1}")
    # One bincount over truth * K + pred, with a row for every truth value up to its maximum (this includes the
    # ignored value), then the ignored row is dropped: no boolean mask copy, ~4x faster on a 3000 x 3000 map.
    pairs = t.astype(np.intp) * num_classes + p
    counts = np.bincount(pairs, minlength=(t_hi + 1) * num_classes).reshape(-1, num_classes)
    if ignore is not None and ignore <= t_hi:
        counts[ignore] = 0
    if counts[num_classes:].any():
        bad = int(np.flatnonzero(counts.sum(axis=1))[-1])
        allowed = f"allowed are 0..{num_classes - 1}" + (f" and {ignore} (unlabelled)" if ignore is not None else "")
        raise ValueError(f"truth holds the value {bad}; {allowed}")
    out = np.zeros((num_classes, num_classes), np.int64)
    out[: min(num_classes, counts.shape[0])] = counts[:num_classes]
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise ``num / den`` with NaN where ``den == 0``."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True)
class SegmentationReport:
    """Table-1 figures of one confusion matrix (see the module docstring for the conventions).

    Per-class arrays have shape ``[K]`` and are NaN where undefined.
    """

    confusion: np.ndarray  # int64 [K, K], rows truth, columns prediction
    sensitivity: np.ndarray  # TP / (TP + FN): recall of each class
    specificity: np.ndarray  # TN / (TN + FP)
    dice: np.ndarray  # 2 TP / (2 TP + FP + FN), equal to F1
    precision: np.ndarray  # TP / (TP + FP)
    accuracy: float  # trace / labelled pixels
    mean_dice: float  # mean Dice over the classes present in the truth
    kappa: float  # Cohen's kappa of truth vs prediction
    labelled_pixels: int  # pixels counted (truth != unlabelled)
    class_keys: tuple[str, ...] = CLASS_KEYS

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, class_keys: tuple[str, ...] | None = None) -> SegmentationReport:
        """Build the report from a ``[K, K]`` confusion matrix (rows truth)."""
        cm = np.asarray(confusion, dtype=np.int64)
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
            raise ValueError(f"confusion matrix must be square [K, K], got shape {cm.shape}")
        k = cm.shape[0]
        keys = class_keys if class_keys is not None else (CLASS_KEYS if k == NUM_CLASSES else tuple(map(str, range(k))))
        if len(keys) != k:
            raise ValueError(f"{len(keys)} class keys given for a {k}-class confusion matrix")
        n = int(cm.sum())
        tp = np.diag(cm)
        in_truth = cm.sum(axis=1)
        in_pred = cm.sum(axis=0)
        fn = in_truth - tp
        fp = in_pred - tp
        tn = n - tp - fn - fp
        dice = _ratio(2 * tp, 2 * tp + fp + fn)
        present = in_truth > 0
        mean_dice = float(np.nanmean(dice[present])) if present.any() else math.nan
        accuracy = float(tp.sum() / n) if n else math.nan
        if n:
            expected = float((in_truth.astype(np.float64) * in_pred).sum()) / float(n) ** 2
            kappa = (accuracy - expected) / (1.0 - expected) if expected < 1.0 else math.nan
        else:
            kappa = math.nan
        return cls(
            confusion=cm,
            sensitivity=_ratio(tp, tp + fn),
            specificity=_ratio(tn, tn + fp),
            dice=dice,
            precision=_ratio(tp, tp + fp),
            accuracy=accuracy,
            mean_dice=mean_dice,
            kappa=kappa,
            labelled_pixels=n,
            class_keys=tuple(keys),
        )

    @classmethod
    def from_maps(cls, truth: np.ndarray, pred: np.ndarray, num_classes: int = NUM_CLASSES) -> SegmentationReport:
        """Shortcut for ``from_confusion(confusion_matrix(truth, pred, num_classes))``."""
        return cls.from_confusion(confusion_matrix(truth, pred, num_classes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: per-class figures keyed by class key, NaN (undefined) written as ``None``."""

        def per_class(values: np.ndarray) -> dict[str, float | None]:
            return {key: _json_float(float(v)) for key, v in zip(self.class_keys, values, strict=True)}

        return {
            "accuracy": _json_float(self.accuracy),
            "mean_dice": _json_float(self.mean_dice),
            "kappa": _json_float(self.kappa),
            "labelled_pixels": self.labelled_pixels,
            "sensitivity": per_class(self.sensitivity),
            "specificity": per_class(self.specificity),
            "dice": per_class(self.dice),
            "precision": per_class(self.precision),
            "confusion": self.confusion.tolist(),
        }

    def to_markdown(self, names: tuple[str, ...] | None = None) -> str:
        """Per-class table (sensitivity, specificity, Dice, precision in %) and the overall figures, as Markdown."""
        names = names if names is not None else self.class_keys

        def pct(v: float) -> str:
            return "n/a" if math.isnan(v) else f"{100 * v:.2f}"

        lines = ["| class | sensitivity | specificity | Dice | precision |", "|---|---:|---:|---:|---:|"]
        for i, name in enumerate(names):
            lines.append(
                f"| {name} | {pct(self.sensitivity[i])} | {pct(self.specificity[i])} | {pct(self.dice[i])} "
                f"| {pct(self.precision[i])} |"
            )
        lines.append("")
        lines.append(
            f"overall accuracy {pct(self.accuracy)} %, mean Dice {pct(self.mean_dice)} %, "
            f"kappa {self.kappa:.4f}, labelled pixels {self.labelled_pixels}"
        )
        return "\n".join(lines)

