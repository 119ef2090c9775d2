"""Patch sampling of the paper (section 4): cover each mosaic with a grid of overlapping patches.

Mosaics are too large to be processed whole, so every epoch goes over patches taken on a regular grid with 50 %
overlap (every region is seen, spread evenly over the mosaic), each augmented afresh (``inference.ml.augment``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from inference.ml.augment import augment_pair
from inference.ml.classes import NUM_CLASSES, UNLABELLED

DEFAULT_PATCH = 256  # paper: 256 x 256 px windows at the working resolution (~1 mm at 4 µm/px)
DEFAULT_OVERLAP = 0.5  # paper: 50 % overlap between neighbouring training patches


def _axis_origins(size: int, patch: int, stride: int) -> list[int]:
    origins = list(range(0, size - patch + 1, stride))
    if origins[-1] != size - patch:  # last patch flush with the border so that every pixel is covered
        origins.append(size - patch)
    return origins


def grid_origins(height: int, width: int, patch: int, overlap: float = DEFAULT_OVERLAP) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of ``patch`` x ``patch`` windows covering a ``height`` x ``width`` image.

    Windows step by ``patch * (1 - overlap)`` (at least 1 px); the last row and column of windows are flush with the
    bottom and right borders. Raises ``ValueError`` if the image is smaller than one patch.
    """
    if patch < 1:
        raise ValueError(f"patch must be at least 1 px, got {patch}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if height < patch or width < patch:
        raise ValueError(
            f"image of {height} x {width} px is smaller than one patch: the minimum size is {patch} x {patch} px"
        )
    stride = max(1, round(patch * (1.0 - overlap)))
    return [(y, x) for y in _axis_origins(height, patch, stride) for x in _axis_origins(width, patch, stride)]


class PatchDataset(Dataset):
    """Patches of (image, labels) pairs at the working resolution, on the grid of ``grid_origins``.

    ``pairs``: (image (H, W) uint8, labels (H, W) uint8 with values 0..5 and 255 = unlabelled). Item ``i`` is
    ``(image float32 [1, P, P] in 0..1, labels int64 [P, P] with 255 kept)``. With ``augment``, each item is
    rotated, flipped, sheared and rescaled in intensity by a draw that depends only on (``seed``, epoch, ``i``),
    so results do not depend on the order or the worker that reads them; ``set_epoch`` changes the draw.
    With ``skip_unlabelled``, windows without any labelled pixel are left out (they carry no training signal).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        *,
        patch: int = DEFAULT_PATCH,
        overlap: float = DEFAULT_OVERLAP,
        augment: bool = False,
        seed: int = 0,
        skip_unlabelled: bool = True,
    ) -> None:
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for n, (image, labels) in enumerate(pairs):
            if image.ndim != 2 or image.shape != labels.shape:
                raise ValueError(
                    f"pair {n}: image and labels must be 2-D (H, W) and the same shape, got {image.shape} and "
                    f"{labels.shape}"
                )
            if image.dtype != np.uint8 or labels.dtype != np.uint8:
                raise ValueError(f"pair {n}: image and labels must be uint8, got {image.dtype} and {labels.dtype}")
            invalid = (labels >= NUM_CLASSES) & (labels != UNLABELLED)
            if invalid.any():
                bad = sorted(set(np.unique(labels[invalid]).tolist()))
                raise ValueError(f"pair {n}: label values must be 0..{NUM_CLASSES - 1} or {UNLABELLED}, found {bad}")
            self.pairs.append((image, labels))
        self.patch = patch
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.index: list[tuple[int, int, int]] = []  # (pair, y, x)
        for n, (image, labels) in enumerate(self.pairs):
            for y, x in grid_origins(*image.shape, patch, overlap):
                if skip_unlabelled and not (labels[y : y + patch, x : x + patch] != UNLABELLED).any():
                    continue
                self.index.append((n, y, x))

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (call at the start of each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch ``i``: (image float32 [1, P, P] in 0..1, labels int64 [P, P], 255 = unlabelled)."""
        n, y, x = self.index[i]
        image, labels = self.pairs[n]
        p = self.patch
        img = image[y : y + p, x : x + p]
        lab = labels[y : y + p, x : x + p]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            img, lab = augment_pair(img, lab, rng)
        img_t = torch.from_numpy(np.clip(np.asarray(img, dtype=np.float32) / 255.0, 0.0, 1.0)).unsqueeze(0)
        lab_t = torch.from_numpy(lab.astype(np.int64))
        return img_t, lab_t
