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
* **Constant weighting (paper mode).** Every window adds its softmax probabilities with weight 1; the mean is the
  sum divided by the number of windows covering the pixel (the count is separable, rows × columns, so no count map
  is held).
* **Cosine weighting (fast mode).** Every window's probabilities are weighted by ``sin²`` of the position along
  each side (1 in the middle, ~0 at the edges, where the zero padding inside the network degrades predictions);
  the weighted mean divides by the sum of the weights, separable like the count.
* **Bounded memory.** Windows are taken in row-major order, batched across rows of windows; a band buffer
  ``float32 [K, window, W_pad]`` holds the sums of the row of windows still open, and once its last window is
  added the ``stride`` rows that no later window touches are finalised (mean, arg-max, top-2) and written to the
  outputs. Peak memory is the outputs (``float16`` probabilities ``[K, H, W]``,
  ~430 MB for 6000 × 6000, optional) plus a few band buffers (~40 MB each at 6000 px wide) plus the model's
  activations for one batch; a 6000 × 6000 mosaic stays well under 4 GB.
* **Levels.** A multi-level model (MUNet) also yields coarser maps; each level ``m`` is averaged the same way at its
  own resolution (stride and window divided by ``2**m``) and returned as a label map of ``ceil(H / 2**m) ×
  ceil(W / 2**m)`` pixels (not upsampled). ``levels[0]`` is ``labels``.

Modes: ``"paper"`` = 256 px windows, 75 % overlap, even coverage, constant weighting (16 windows per pixel).
``"fast"`` = 512 px windows, 50 % overlap, clamped windows, cosine weighting, channels-last input (up to 4 windows
per pixel, each with 4× the area: ~4× less convolution work than paper mode on a large mosaic, less on a small
one); meant for the app, with a model prepared by :func:`optimise_for_cpu`. ``bench/speed.py`` measures both and
their agreement, with either weighting in fast mode (cosine agrees better with paper mode than constant: see the
README). ``window``, ``overlap`` and ``blend`` given explicitly override the mode's values.
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
Blend = Literal["constant", "cosine"]
BLENDS: tuple[str, ...] = ("constant", "cosine")
Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")
ProgressFn = Callable[[float, str], None]

# Paper, section 3: 256 px sliding window with 75 % overlap.
PAPER_WINDOW = 256
PAPER_OVERLAP = 0.75
# Fast mode: a 512 px window sees the same context as 4 paper windows while its borders (where the zero padding
# inside the network degrades predictions) are a quarter of the area; 50 % overlap still averages 4 windows per pixel.
FAST_WINDOW = 512
FAST_OVERLAP = 0.5
FAST_BLEND: Blend = "cosine"
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
    blend: str = "constant"


def _blend_profile(window: int, blend: Blend) -> np.ndarray | None:
    """``float32 [window]`` weight of each position along a window's side, or ``None`` for constant weighting.

    cosine: ``sin²(π (t + ½) / window)`` (a Hann window sampled at pixel centres), 1 in the middle and ~0 at the
    edges; with 50 % overlap two neighbours' weights sum to exactly 1. The 2-D weight is the outer product of the
    profile with itself.
    """
    if blend == "constant":
        return None
    t = (np.arange(window, dtype=np.float64) + 0.5) / window
    return np.sin(np.pi * t).astype(np.float32) ** 2


def _covering_counts(length: int, window: int, starts: list[int], profile: np.ndarray | None = None) -> np.ndarray:
    """``float32 [length]``: how many of the windows starting at ``starts`` cover each position (with ``profile``:
    the sum of their weights there)."""
    if profile is not None:
        total = np.zeros(length, np.float64)
        for s in starts:
            total[s : s + window] += profile
        return total.astype(np.float32)
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
                 device: torch.device, profile: np.ndarray | None = None) -> None:
        self.window = window
        self.sums = torch.zeros((k, window, padded_w), dtype=torch.float32, device=device)
        self.col_counts = torch.from_numpy(col_counts).to(device)
        self.row_counts = torch.from_numpy(row_counts).to(device)
        # [window, window] blending weight (outer product of the profile), None for constant weighting
        self.weight = None if profile is None else torch.from_numpy(np.outer(profile, profile)).to(device)
        self.top = 0  # padded row held in sums[:, 0]

    def add(self, probs: torch.Tensor, x0: int) -> None:
        """probs ``[K, window, window]`` of a window of the current row (its top is ``self.top``) at padded column
        ``x0``."""
        target = self.sums[:, :, x0 : x0 + self.window]
        if self.weight is None:
            target += probs
        else:
            target.addcmul_(probs, self.weight)

    def pop(self, rows: int) -> tuple[int, torch.Tensor]:
        """Finalise the first ``rows`` rows: returns (their first padded row, mean probabilities ``[K, rows, W_pad]``)."""
        counts = self.row_counts[self.top : self.top + rows, None] * self.col_counts[None, :]
        # every padded pixel is covered by a window; the floor only guards the division (weights can be ~1e-10
        # at a corner covered by a single window's corner)
        mean = self.sums[:, :rows] / counts.clamp_min(torch.finfo(torch.float32).tiny)
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
    blend: Blend | None = None,
) -> MosaicPrediction:
    """Segment a whole mosaic with overlapping windows and return labels, probabilities and uncertainty.

    model: follows the contract of ``inference.ml.models`` (``[B, 1, h, w]`` float 0..1 → list of logits per level,
    finest first, level ``m`` ``[B, K, h / 2**m, w / 2**m]``); ``required_multiple`` and ``num_levels`` attributes
    are honoured when present. The model is put in eval mode for the call and its previous mode restored.
    image: uint8 ``(H, W)`` working-resolution mosaic. window/overlap: default from ``mode`` (see module docstring).
    batch_size: windows per forward pass, counted in 256² windows (a 512² window counts 4).
    progress: called as ``progress(fraction, message)`` after every batch and with ``1.0`` at the end.
    blend: how overlapping windows are weighted, ``"constant"`` (the paper's mean) or ``"cosine"``; default from
    ``mode`` (paper: constant, fast: ``FAST_BLEND``).
    """
    image = _check_image(image)
    window, overlap, stride = _resolve_geometry(model, mode, window, overlap)
    blend = blend if blend is not None else ("constant" if mode == "paper" else FAST_BLEND)
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
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
    # Windows in row-major order, batched across rows of windows: every batch is full but the last. A row's
    # finished part of the band is finalised as soon as its last window is added, before the next row's first.
    order = [(i, x0) for i in range(len(row_starts)) for x0 in col_starts]
    total = len(order)
    try:
        with torch.inference_mode():
            for b0 in range(0, total, per_batch):
                chunk = order[b0 : b0 + per_batch]
                batch = np.stack([padded[row_starts[i] : row_starts[i] + window, x0 : x0 + window] for i, x0 in chunk])
                x = torch.from_numpy(batch).to(device=device).unsqueeze(1).float().div_(255.0).to(dtype)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                outputs = model(x)
                if len(outputs) != levels:
                    raise ValueError(f"model returned {len(outputs)} levels, its num_levels says {levels}")
                if k is None:
                    k = int(outputs[0].shape[1])
                    for m in range(levels):
                        s = 2**m
                        profile = _blend_profile(window // s, blend)
                        bands.append(_LevelBand(
                            k, window // s, padded_w // s,
                            _covering_counts(padded_w // s, window // s, [c // s for c in col_starts], profile),
                            _covering_counts(padded_h // s, window // s, [r // s for r in row_starts], profile),
                            device, profile,
                        ))
                    if keep_probabilities:
                        probabilities = np.zeros((k, h, w), np.float16)
                probs = []
                for m, logits in enumerate(outputs):
                    s = 2**m
                    expected = (len(chunk), k, window // s, window // s)
                    if tuple(logits.shape) != expected:
                        raise ValueError(f"level {m} logits have shape {tuple(logits.shape)}, expected {expected}")
                    probs.append(torch.softmax(logits.float(), dim=1))
                for b, (i, x0) in enumerate(chunk):
                    for m in range(levels):
                        bands[m].add(probs[m][b], x0 // 2**m)
                    if x0 != col_starts[-1]:
                        continue
                    # Last window of row i: rows above the next row of windows are final; after the last row,
                    # everything left is.
                    for m in range(levels):
                        s = 2**m
                        rows = (row_starts[i + 1] - row_starts[i]) // s if i + 1 < len(row_starts) else window // s
                        finalise(m, rows)
                done = b0 + len(chunk)
                if progress is not None:
                    progress(done / total, f"window {done}/{total}")
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
        blend=blend,
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


class ReducedPrecisionModel(nn.Module):
    """A copy of ``model`` with its weights in ``dtype`` (bfloat16): inputs are cast to ``dtype`` and the logits
    returned are float32 (the model contract).

    Every layer runs in bfloat16 (oneDNN's AVX-512 BF16 kernels for the convolutions where the CPU has them), which
    halves the memory traffic of the activations too; faster than autocast, which keeps casting weights and
    activations back and forth (``bench/speed.py`` reports its agreement with float32). Same
    ``required_multiple``, ``num_levels`` and ``config`` as ``model``.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).to(dtype)
        self.dtype = dtype
        for name in ("required_multiple", "num_levels", "config"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [o.float() for o in self.model(x.to(self.dtype))]


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX-512 BF16 or AMX); without, oneDNN emulates them
    and bfloat16 is slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def optimise_for_cpu(model: nn.Module, *, precision: Precision = "float32") -> nn.Module:
    """Return an inference-only copy of ``model`` that runs faster on CPU (the original is left untouched).

    The copy is in eval mode, without gradients, with every BatchNorm folded into the convolution before it and its
    weights in channels-last memory format, so oneDNN runs the convolutions on NHWC activations without reordering
    them to and from its blocked layout around every layer (``bench/speed.py`` measures the gain). Same contract and
    attributes as ``model``; in float32 the labels agree with the original's to floating-point rounding.

    precision: ``"bfloat16"`` makes it a :class:`ReducedPrecisionModel` (every layer in bfloat16; worth it only where
    :func:`cpu_has_native_bfloat16`; ``bench/speed.py`` reports its speed and agreement with float32).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    fast = copy.deepcopy(model).eval()
    for p in fast.parameters():
        p.requires_grad_(False)
    fold_batchnorm(fast)
    fast = fast.to(memory_format=torch.channels_last)
    if precision == "bfloat16":
        return ReducedPrecisionModel(fast, torch.bfloat16).eval()
    return fast


__all__ = [
    "MosaicPrediction",
    "ReducedPrecisionModel",
    "cpu_has_native_bfloat16",
    "evaluate_model",
    "fold_batchnorm",
    "optimise_for_cpu",
    "predict_mosaic",
]
