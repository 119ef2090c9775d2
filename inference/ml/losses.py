"""The paper's selective multi-level Dice loss (section 3.2), which ignores unlabelled pixels.

For one level, with ``A`` the one-hot labels, ``B`` the softmax probabilities and ``1_ij`` the labelled-pixel mask::

    DSC(A, B) = sum_k alpha_k * (eps + 2 * sum_ij 1_ij A_ijk B_ijk) / (eps + sum_ij 1_ij (A_ijk + B_ijk))

Two deliberate departures from the printed formula: the factor 2 (missing in the paper; with it DSC = 1 for a perfect
prediction when the alpha sum to 1), and eps in the numerator as well, so that a class absent from both the labels and
the prediction of a batch scores 1 instead of 0 (with eps in the denominator only, a batch lacking a class could never
reach DSC = 1, and the loss would carry a batch-dependent offset). A class absent from the labels but predicted with
total probability p scores eps / (eps + p), which is ~0 as soon as p >> eps. This is MONAI's ``DiceLoss`` with
``smooth_nr = smooth_dr = eps``, ``batch=True`` and the prediction and one-hot labels masked.
The sums run over every pixel of the batch (one Dice per class for the whole batch, not per image). Over the levels of
a multi-level model, ``L = 1 - sum_m beta_m * DSC(L_m, B_m)`` where ``L_m`` are the labels downsampled by ``2**m``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inference.ml.classes import NUM_CLASSES, UNLABELLED

DEFAULT_EPS = 1e-6  # avoids 0/0 for a class absent from labels and prediction; small next to any real pixel count
DEFAULT_BETAS: tuple[float, ...] = (0.8, 0.16, 0.04)  # the paper's level weights, finest first
BETA_SUM_TOLERANCE = 1e-4  # betas typed as decimals (0.8 + 0.16 + 0.04) do not sum to 1 exactly in floating point


def class_weights(label_maps: Iterable[np.ndarray], num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Dice class weights ``alpha`` [K] float64, inversely proportional to each class's pixel count, summing to 1.

    Only labelled pixels count (``UNLABELLED`` = 255 is skipped). A class absent from every map gets the largest
    weight of the present classes (as rare as the rarest one seen): finite, and high enough that a first example of
    it is not ignored. Raises ``ValueError`` if no pixel is labelled or a value is neither a class nor 255.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for labels in label_maps:
        arr = np.asarray(labels)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"label maps must be integer arrays, got dtype {arr.dtype}")
        if arr.size == 0:
            continue
        if arr.min() < 0 or arr.max() > UNLABELLED:
            values = None
        else:
            values = np.bincount(arr.ravel().astype(np.int64, copy=False), minlength=UNLABELLED + 1)
        if values is None or values[num_classes:UNLABELLED].any():
            bad = sorted(set(np.unique(arr).tolist()) - set(range(num_classes)) - {UNLABELLED})
            raise ValueError(f"label values {bad[:10]} are not allowed: use 0..{num_classes - 1} or {UNLABELLED}")
        counts += values[:num_classes]
    present = counts > 0
    if not present.any():
        raise ValueError("no labelled pixel in the label maps: cannot derive class weights")
    inverse = np.zeros(num_classes, dtype=np.float64)
    inverse[present] = 1.0 / counts[present]
    inverse[~present] = inverse[present].max()
    return inverse / inverse.sum()


def selective_dice(probs: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor, eps: float = DEFAULT_EPS
                   ) -> torch.Tensor:
    """Weighted Dice coefficient over labelled pixels (scalar tensor; 1 is perfect when ``alpha`` sums to 1).

    probs: ``[B, K, H, W]`` probabilities (softmax output); target: ``[B, H, W]`` int64 in ``0..K-1`` or 255 (ignored);
    alpha: ``[K]`` class weights. Unlabelled pixels are removed from both the prediction and the one-hot labels, so
    they carry no gradient. Numerator ``eps + 2 * |A and B|`` (see the module docstring for both departures from the
    paper's formula).
    """
    if probs.ndim != 4:
        raise ValueError(f"probs must be [B, K, H, W], got shape {tuple(probs.shape)}")
    b, k, h, w = probs.shape
    if tuple(target.shape) != (b, h, w):
        raise ValueError(f"target must be [B, H, W] = {(b, h, w)} to match probs, got {tuple(target.shape)}")
    if alpha.shape != (k,):
        raise ValueError(f"alpha must have one weight per class, shape ({k},), got {tuple(alpha.shape)}")
    labelled = target != UNLABELLED
    # Map unlabelled pixels to an extra class K so one_hot stays small, then drop that channel.
    one_hot = F.one_hot(torch.where(labelled, target, k), k + 1)[..., :k].permute(0, 3, 1, 2).to(probs.dtype)
    masked_probs = probs * labelled.unsqueeze(1).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (one_hot * masked_probs).sum(dims)
    total = one_hot.sum(dims) + masked_probs.sum(dims)
    return (alpha.to(probs) * (eps + 2.0 * intersection) / (eps + total)).sum()


def downsample_labels(target: torch.Tensor, factor: int, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Labels at ``1/factor`` resolution: ``[B, H, W] -> [B, H/factor, W/factor]`` int64.

    Each coarse pixel takes the majority class among the labelled fine pixels of its ``factor x factor`` block (ties
    go to the lowest class value); it is 255 (unlabelled) when fewer than half of the block is labelled, so mostly
    unlabelled regions stay out of the loss at coarse levels too. ``factor`` 1 returns a copy.
    """
    if target.ndim != 3:
        raise ValueError(f"target must be [B, H, W], got shape {tuple(target.shape)}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    h, w = int(target.shape[1]), int(target.shape[2])
    if h % factor or w % factor:
        raise ValueError(f"target size {h}x{w} is not divisible by factor {factor}")
    bad = (target != UNLABELLED) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        raise ValueError(f"target values must be 0..{num_classes - 1} or {UNLABELLED}, found {target[bad][0].item()}")
    if factor == 1:
        return target.clone()
    idx = torch.where(target == UNLABELLED, num_classes, target).long()
    one_hot = F.one_hot(idx, num_classes + 1).permute(0, 3, 1, 2).float()
    counts = F.avg_pool2d(one_hot, factor, divisor_override=1)  # [B, K+1, h, w] pixel counts per block
    majority = counts[:, :num_classes].argmax(dim=1)
    mostly_unlabelled = 2 * counts[:, num_classes] > factor * factor
    return torch.where(mostly_unlabelled, torch.full_like(majority, UNLABELLED), majority)


class MultiLevelDiceLoss(nn.Module):
    """``L = 1 - sum_m beta_m * selective_dice(softmax(logits_m), labels downsampled by 2**m, alpha)``.

    alpha: ``[K]`` class weights (e.g. from ``class_weights``), normalised here to sum to 1 so that ``L`` is in [0, 1];
    betas: one weight per level, finest first, summing to 1 (the paper's ``(0.8, 0.16, 0.04)``; ``(1.0,)`` for a
    single-level baseline).
    """

    alpha: torch.Tensor
    betas: torch.Tensor

    def __init__(self, alpha: np.ndarray | torch.Tensor | Sequence[float],
                 betas: Sequence[float] = DEFAULT_BETAS, eps: float = DEFAULT_EPS) -> None:
        super().__init__()
        a = torch.as_tensor(np.asarray(alpha, dtype=np.float64), dtype=torch.float32)
        if a.ndim != 1 or a.numel() < 2:
            raise ValueError(f"alpha must be a 1-D array with one weight per class, got shape {tuple(a.shape)}")
        if not torch.isfinite(a).all() or (a < 0).any() or a.sum() <= 0:
            raise ValueError(f"alpha must be finite, non-negative and not all zero, got {a.tolist()}")
        b = torch.as_tensor(list(betas), dtype=torch.float32)
        if b.ndim != 1 or b.numel() < 1 or (b < 0).any():
            raise ValueError(f"betas must be a non-empty sequence of non-negative weights, got {list(betas)}")
        if abs(float(b.sum()) - 1.0) > BETA_SUM_TOLERANCE:
            raise ValueError(f"betas must sum to 1 (within {BETA_SUM_TOLERANCE}), got {list(betas)} = {float(b.sum())}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.register_buffer("alpha", a / a.sum())
        self.register_buffer("betas", b)
        self.eps = float(eps)

    def level_dice(self, logits: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Selective Dice per level, ``[M]``, finest first. logits: M tensors ``[B, K, H/2**m, W/2**m]``;
        target: ``[B, H, W]`` int64 with 255 for unlabelled."""
        if len(logits) != self.betas.numel():
            raise ValueError(
                f"got {len(logits)} output level(s) but {self.betas.numel()} beta(s) {self.betas.tolist()}: "
                "give one beta per level (e.g. (1.0,) for a single-level model)"
            )
        k = int(self.alpha.numel())
        scores = []
        for m, level_logits in enumerate(logits):
            expected = (target.shape[0], k, target.shape[1] // 2**m, target.shape[2] // 2**m)
            if level_logits.ndim != 4 or tuple(level_logits.shape) != expected:
                raise ValueError(
                    f"level {m} logits must be [B, K, H/2**m, W/2**m] = {expected} for target "
                    f"{tuple(target.shape)} and {k} classes, got {tuple(level_logits.shape)}"
                )
            level_target = downsample_labels(target, 2**m, num_classes=k)
            probs = torch.softmax(level_logits.float(), dim=1)
            scores.append(selective_dice(probs, level_target, self.alpha, self.eps))
        return torch.stack(scores)

    def forward(self, logits: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Scalar loss in [0, 1]; see ``level_dice`` for the shapes."""
        return 1.0 - (self.betas * self.level_dice(logits, target)).sum()
