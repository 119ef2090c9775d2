"""Tiled inference over a whole working-resolution mosaic (paper, section 3).

The paper slides a 256 px window with 75 % overlap over the ~3000 × 3000 mosaic, averages the overlapping softmax
probability maps and takes the arg-max. :func:`predict_mosaic` does exactly that, with these choices:

* **Even coverage (paper mode).** The mosaic is padded by reflection by ``window - stride`` pixels on the top/left
  and by enough on the bottom/right that window starts ``0, stride, 2·stride, …`` (in padded coordinates) cover every
  mosaic pixel with the same number of windows, ``(window / stride)²`` (16 in paper mode). Mosaics smaller than a
  window are padded the same way (reflection repeats as often as needed).
* **Clamped windows (fast mode).** No padding beyond what makes the mosaic at least one window and a multiple of
  the coarsest level's scale; starts every ``stride`` from 0, the last one moved back to end at the border (as MONAI's
  ``sliding_window_inference`` places them). Border pixels get fewer windows, but no window is spent on padding.
* **Constant weighting.** Every window adds its softmax probabilities with weight 1; the mean is the sum divided by
  the number of windows covering the pixel (the count is separable, rows × columns, so no count map is held).
* **Bounded memory.** Windows are run one row of windows at a time; a band buffer ``float32 [K, window, W_pad]``
  holds the sums of the rows still open, and the ``stride`` rows that no later window touches are finalised (mean,
  arg-max, top-2) and written to the outputs. Peak memory is the outputs (``float16`` probabilities ``[K, H, W]``,
  ~430 MB for 6000 × 6000, optional) plus a few band buffers (~40 MB each at 6000 px wide) plus the model's
  activations for one batch; a 6000 × 6000 mosaic stays well under 4 GB.
* **Levels.** A multi-level model (MUNet) also yields coarser maps; each level ``m`` is averaged the same way at its
  own resolution (stride and window divided by ``2**m``) and returned as a label map of ``ceil(H / 2**m) ×
  ceil(W / 2**m)`` pixels (not upsampled). ``levels[0]`` is ``labels``.

Modes: ``"paper"`` = 256 px windows, 75 % overlap, even coverage (16 windows per pixel). ``"fast"`` = 512 px
windows, 50 % overlap, clamped windows, channels-last input (up to 4 windows per pixel, each with 4× the area: ~4×
less convolution work than paper mode on a large mosaic, less on a small one); meant for the app, with a model
prepared by :func:`optimise_for_cpu`. ``bench/speed.py`` measures both and their agreement. ``window`` and
``overlap`` given explicitly override the mode's values.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from inference.ml.metrics import SegmentationReport, confusion_matrix

Mode = Literal["paper", "fast"]
ProgressFn = Callable[[float, str], None]

# Paper, section 3: 256 px sliding window with 75 % overlap.
PAPER_WINDOW = 256
PAPER_OVERLAP = 0.75
# Fast mode: a 512 px window sees the same context as 4 paper windows while its borders (where the zero padding
# inside the network degrades predictions) are a quarter of the area; 50 % overlap still averages 4 windows per pixel.
FAST_WINDOW = 512
FAST_OVERLAP = 0.5
# Largest window accepted: a 2048² window of the default MUNet needs ~2.5 GB of activations per image on CPU.
MAX_WINDOW = 2048
# Overlap must leave a stride of at least one pixel and be non-negative; 0.9375 (stride = window / 16) is already
# 256 windows per pixel, past any useful averaging.
MAX_OVERLAP = 0.9375
# Largest mosaic side accepted (working resolution): the paper's mosaics are ~3000 px at 4 µm/px; 20000 px leaves
# room for 80 mm wide mosaics while refusing dimensions that would exhaust memory in the outputs.
MAX_SIDE = 20000
# Batch sizes above 64 windows of 256² only add memory on CPU (the convolutions are already compute-bound).
MAX_BATCH_SIZE = 64


@dataclass
class MosaicPrediction:
    """Result of :func:`predict_mosaic` for a mosaic of ``H × W`` pixels and ``K`` classes.

    labels: uint8 ``(H, W)``, arg-max of the mean probabilities.
    probabilities: float16 ``[K, H, W]`` mean softmax probabilities, or ``None`` if not kept.
    confidence: float32 ``(H, W)``, the largest mean probability ``p1``.
    uncertainty: float32 ``(H, W)`` in ``[0, 1]``, ``1 - (p1 - p2)`` with ``p2`` the second largest.
    levels: uint8 label maps per model level, finest first; level ``m`` is ``ceil(H / 2**m) × ceil(W / 2**m)``
    (its own resolution; ``levels[0] is labels``).
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    confidence: np.ndarray
    uncertainty: np.ndarray
    levels: list[np.ndarray]
    window: int
    overlap: float
    stride: int
    mode: str
    windows: int  # number of windows run
    num_classes: int


def _covering_counts(length: int, window: int, starts: list[int]) -> np.ndarray:
    """``float32 [length]``: how many of the windows starting at ``starts`` cover each position."""
    diff = np.zeros(length + 1, np.float32)
    for s in starts:
        diff[s] += 1
        diff[s + window] -= 1
    return np.cumsum(diff[:-1])


def _axis_layout(size: int, window: int, stride: int, step: int, even: bool) -> tuple[int, int, list[int]]:
    """Padding before, padded length and window starts along one axis of ``size`` pixels.

    even: pad ``window - stride`` before and enough after that starts ``0, stride, …`` cover every pixel equally.
    Otherwise (clamped): no padding before, pad after only up to ``max(window, multiple of step)``, starts every
    ``stride`` with the last one moved back to end at the padded edge (it overlaps its neighbour more).
    """
    if even:
        before = window - stride
        n = (before + size - 1) // stride + 1
        return before, (n - 1) * stride + window, [i * stride for i in range(n)]
    length = max(window, -(-size // step) * step)
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return 0, length, starts


def _resolve_geometry(model: nn.Module, mode: Mode, window: int | None, overlap: float | None) -> tuple[int, float, int]:
    if mode not in ("paper", "fast"):
        raise ValueError(f"mode must be 'paper' or 'fast', got {mode!r}")
    window = window if window is not None else (PAPER_WINDOW if mode == "paper" else FAST_WINDOW)
    overlap = overlap if overlap is not None else (PAPER_OVERLAP if mode == "paper" else FAST_OVERLAP)
    multiple = int(getattr(model, "required_multiple", 1))
    levels = int(getattr(model, "num_levels", 1))
    if not isinstance(window, int) or window < multiple or window % multiple or window > MAX_WINDOW:
        raise ValueError(
            f"window must be a multiple of the model's required_multiple ({multiple}) in [{multiple}, {MAX_WINDOW}], "
            f"got {window!r}"
        )
    if not 0.0 <= overlap <= MAX_OVERLAP:
        raise ValueError(f"overlap must be in [0, {MAX_OVERLAP}], got {overlap!r}")
    # The stride is rounded down to a multiple of the coarsest level's scale so every level's windows land on whole
    # pixels of that level; at least one such step.
    step = 2 ** (levels - 1)
    stride = max(step, int(round(window * (1.0 - overlap))) // step * step)
    return window, overlap, stride


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be a 2-D grayscale array (H, W), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got {image.dtype}")
    h, w = image.shape
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ValueError(f"image sides must be in [1, {MAX_SIDE}] px, got {h}x{w}")
    return image


class _LevelBand:
    """Running sums of one level's probabilities over the rows of windows still open (see the module docstring)."""

    def __init__(self, k: int, window: int, padded_w: int, col_counts: np.ndarray, row_counts: np.ndarray,
                 device: torch.device) -> None:
        self.window = window
        self.sums = torch.zeros((k, window, padded_w), dtype=torch.float32, device=device)
        self.col_counts = torch.from_numpy(col_counts).to(device)
        self.row_counts = torch.from_numpy(row_counts).to(device)
        self.top = 0  # padded row held in sums[:, 0]

    def add(self, probs: torch.Tensor, x0: int) -> None:
        """probs ``[K, window, window]`` of a window of the current row (its top is ``self.top``) at padded column
        ``x0``."""
        self.sums[:, :, x0 : x0 + self.window] += probs

    def pop(self, rows: int) -> tuple[int, torch.Tensor]:
        """Finalise the first ``rows`` rows: returns (their first padded row, mean probabilities ``[K, rows, W_pad]``)."""
        counts = self.row_counts[self.top : self.top + rows, None] * self.col_counts[None, :]
        mean = self.sums[:, :rows] / counts.clamp_min(1.0)
        top = self.top
        if rows < self.window:
            self.sums = torch.cat([self.sums[:, rows:], torch.zeros_like(self.sums[:, :rows])], dim=1)
        self.top += rows
        return top, mean


def predict_mosaic(
    model: nn.Module,
    image: np.ndarray,
    *,
    window: int | None = None,
    overlap: float | None = None,
    batch_size: int = 8,
    mode: Mode = "paper",
    progress: ProgressFn | None = None,
    device: str | torch.device = "cpu",
    keep_probabilities: bool = True,
) -> MosaicPrediction:
    """Segment a whole mosaic with overlapping windows and return labels, probabilities and uncertainty.

    model: follows the contract of ``inference.ml.models`` (``[B, 1, h, w]`` float 0..1 → list of logits per level,
    finest first, level ``m`` ``[B, K, h / 2**m, w / 2**m]``); ``required_multiple`` and ``num_levels`` attributes
    are honoured when present. The model is put in eval mode for the call and its previous mode restored.
    image: uint8 ``(H, W)`` working-resolution mosaic. window/overlap: default from ``mode`` (see module docstring).
    batch_size: windows per forward pass, counted in 256² windows (a 512² window counts 4).
    progress: called as ``progress(fraction, message)`` after every batch and with ``1.0`` at the end.
    """
    image = _check_image(image)
    window, overlap, stride = _resolve_geometry(model, mode, window, overlap)
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be in [1, {MAX_BATCH_SIZE}], got {batch_size}")
    # batch_size counts paper-size (256²) windows: larger windows go fewer at a time, so a batch holds about the
    # same number of pixels (and the activations the same memory) whatever the window.
    per_batch = max(1, batch_size * PAPER_WINDOW**2 // window**2)
    device = torch.device(device)
    levels = int(getattr(model, "num_levels", 1))
    step = 2 ** (levels - 1)
    h, w = image.shape
    even = mode == "paper"
    pad_y, padded_h, row_starts = _axis_layout(h, window, stride, step, even)
    pad_x, padded_w, col_starts = _axis_layout(w, window, stride, step, even)
    padded = np.pad(image, ((pad_y, padded_h - pad_y - h), (pad_x, padded_w - pad_x - w)), mode="reflect")
    channels_last = mode == "fast"

    try:
        param = next(model.parameters())
        dtype = param.dtype if param.is_floating_point() else torch.float32
    except StopIteration:
        dtype = torch.float32

    k: int | None = None
    bands: list[_LevelBand] = []
    labels = np.zeros((h, w), np.uint8)
    confidence = np.zeros((h, w), np.float32)
    uncertainty = np.zeros((h, w), np.float32)
    probabilities: np.ndarray | None = None
    level_maps = [labels] + [np.zeros((math.ceil(h / 2**m), math.ceil(w / 2**m)), np.uint8) for m in range(1, levels)]

    def finalise(m: int, rows: int) -> None:
        band = bands[m]
        top, mean = band.pop(rows)
        scale = 2**m
        lo = top - pad_y // scale  # first row of this level's (unpadded) map held in mean
        out_h, out_w = level_maps[m].shape
        r0, r1 = max(lo, 0), min(lo + rows, out_h)
        if r0 >= r1:
            return
        c0 = pad_x // scale
        mean = mean[:, r0 - lo : r1 - lo, c0 : c0 + out_w]
        if m > 0:
            level_maps[m][r0:r1] = mean.argmax(0).to(torch.uint8).cpu().numpy()
            return
        if mean.shape[0] > 1:
            top2 = mean.topk(2, dim=0)
            p1, p2, idx = top2.values[0], top2.values[1], top2.indices[0]
        else:
            p1, p2, idx = mean[0], torch.zeros_like(mean[0]), torch.zeros_like(mean[0], dtype=torch.long)
        labels[r0:r1] = idx.to(torch.uint8).cpu().numpy()
        confidence[r0:r1] = p1.cpu().numpy()
        uncertainty[r0:r1] = (1.0 - (p1 - p2)).clamp(0.0, 1.0).cpu().numpy()
        if probabilities is not None:
            probabilities[:, r0:r1] = mean.to(torch.float16).cpu().numpy()

    was_training = model.training
    model.eval()
    total = len(row_starts) * len(col_starts)
    done = 0
    try:
        with torch.inference_mode():
            for i, y0 in enumerate(row_starts):
                strip = padded[y0 : y0 + window]
                for j0 in range(0, len(col_starts), per_batch):
                    xs = col_starts[j0 : j0 + per_batch]
                    batch = np.stack([strip[:, x0 : x0 + window] for x0 in xs])
                    x = torch.from_numpy(batch).to(device=device).unsqueeze(1).to(dtype).div_(255.0)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    outputs = model(x)
                    if len(outputs) != levels:
                        raise ValueError(f"model returned {len(outputs)} levels, its num_levels says {levels}")
                    if k is None:
                        k = int(outputs[0].shape[1])
                        for m in range(levels):
                            s = 2**m
                            bands.append(_LevelBand(
                                k, window // s, padded_w // s,
                                _covering_counts(padded_w // s, window // s, [c // s for c in col_starts]),
                                _covering_counts(padded_h // s, window // s, [r // s for r in row_starts]),
                                device,
                            ))
                        if keep_probabilities:
                            probabilities = np.zeros((k, h, w), np.float16)
                    for m, logits in enumerate(outputs):
                        s = 2**m
                        expected = (len(xs), k, window // s, window // s)
                        if tuple(logits.shape) != expected:
                            raise ValueError(f"level {m} logits have shape {tuple(logits.shape)}, expected {expected}")
                        probs = torch.softmax(logits.float(), dim=1)
                        for b, x0 in enumerate(xs):
                            bands[m].add(probs[b], x0 // s)
                    done += len(xs)
                    if progress is not None:
                        progress(done / total, f"window {done}/{total}")
                # Rows above the next row of windows are final; after the last row, everything left is.
                for m in range(levels):
                    s = 2**m
                    rows = (row_starts[i + 1] - y0) // s if i + 1 < len(row_starts) else window // s
                    finalise(m, rows)
    finally:
        model.train(was_training)
    if progress is not None:
        progress(1.0, "done")
    return MosaicPrediction(
        labels=labels,
        probabilities=probabilities,
        confidence=confidence,
        uncertainty=uncertainty,
        levels=level_maps,
        window=window,
        overlap=overlap,
        stride=stride,
        mode=mode,
        windows=total,
        num_classes=int(k) if k is not None else 0,
    )


def evaluate_model(
    model: nn.Module,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    progress: ProgressFn | None = None,
    **predict_kwargs: Any,
) -> tuple[SegmentationReport, list[SegmentationReport]]:
    """Predict every mosaic with :func:`predict_mosaic` and score it against its labels (255 ignored).

    pairs: (image uint8 ``(H, W)``, labels uint8 ``(H, W)``). predict_kwargs: passed on (mode, window, device...).
    Returns the pooled report (confusion matrices summed over the mosaics) and one report per mosaic.
    """
    reports: list[SegmentationReport] = []
    total = None
    for n, (image, labels) in enumerate(pairs):
        if labels.shape != image.shape:
            raise ValueError(f"pair {n}: labels {labels.shape} and image {image.shape} must have the same shape")

        def sub_progress(fraction: float, message: str, n: int = n) -> None:
            if progress is not None:
                progress((n + fraction) / len(pairs), f"mosaic {n + 1}/{len(pairs)}: {message}")

        pred = predict_mosaic(model, image, progress=sub_progress, keep_probabilities=False, **predict_kwargs)
        cm = confusion_matrix(labels, pred.labels, num_classes=pred.num_classes)
        reports.append(SegmentationReport.from_confusion(cm))
        total = cm if total is None else total + cm
    if total is None:
        raise ValueError("pairs is empty: nothing to evaluate")
    return SegmentationReport.from_confusion(total), reports


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` in an ``nn.Sequential`` into that
    convolution (the BN becomes ``nn.Identity``), in place. Returns ``model``."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:], strict=False):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                module._modules[a] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return model


def optimise_for_cpu(model: nn.Module) -> nn.Module:
    """Return an inference-only copy of ``model`` that runs faster on CPU (the original is left untouched).

    The copy is in eval mode, without gradients, with every BatchNorm folded into the convolution before it and its
    weights in channels-last memory format, so oneDNN runs the convolutions on NHWC activations without reordering
    them to and from its blocked layout around every layer (``bench/speed.py`` measures the gain). Same contract and
    attributes as ``model``; the labels agree with the original's to floating-point rounding.
    """
    fast = copy.deepcopy(model).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    fold_batchnorm(fast)
    return fast.to(memory_format=torch.channels_last)


__all__ = ["MosaicPrediction", "evaluate_model", "fold_batchnorm", "optimise_for_cpu", "predict_mosaic"]
