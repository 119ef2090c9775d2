"""Where an expert should look next: square blocks of a mosaic ranked by the model's uncertainty (arrays only).

The review page's "next region" (``annotations.agreement.next_region``) and the fine-tuning loop benchmark
(``bench/loop.py``) share this ranking, so the simulated experts of the benchmark correct the blocks the app would
have shown them. Everything is at working resolution; no Django here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Blocks of this many working pixels (64 px ≈ 0.26 mm at 4 µm/px): about one screen of the viewer at a
# magnification where patterns are recognisable, and ~2200 blocks on a 3000² layer.
NEXT_REGION_BLOCK_PX = 64
# A block is proposed only if at least this share of its pixels is still unlabelled: a block that is mostly
# labelled already has little left to look at, whatever the uncertainty of its few remaining pixels.
MIN_UNLABELLED_FRACTION = 0.5


@dataclass(frozen=True)
class UncertaintyBlocks:
    """A mosaic cut into ``block`` px squares (the last row and column may be smaller), with per-block figures.

    ``ys``/``xs`` (hb,)/(wb,): top/left pixel of each block row/column; ``heights``/``widths``: their sizes.
    ``counts`` (hb, wb): unlabelled pixels per block; ``mean`` (hb, wb) float64: mean uncertainty over those pixels
    (in the units of the uncertainty map given; 0 where none); ``eligible`` (hb, wb) bool: blocks with at least
    ``MIN_UNLABELLED_FRACTION`` of their pixels unlabelled.
    """

    block: int
    ys: np.ndarray
    xs: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    counts: np.ndarray
    mean: np.ndarray
    eligible: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        """(hb, wb) pixels per block."""
        return self.heights[:, None] * self.widths[None, :]

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Block centres in pixels: ``cy`` (hb, 1) and ``cx`` (1, wb), for broadcasting."""
        return (self.ys + self.heights / 2)[:, None], (self.xs + self.widths / 2)[None, :]

    def bbox(self, by: int, bx: int) -> tuple[int, int, int, int]:
        """Block (row ``by``, column ``bx``) as ``(x0, y0, x1, y1)`` pixels, end exclusive."""
        return (int(self.xs[bx]), int(self.ys[by]), int(self.xs[bx] + self.widths[bx]),
                int(self.ys[by] + self.heights[by]))

    def ranked(self, eligible: np.ndarray | None = None) -> list[tuple[int, int]]:
        """Eligible blocks as ``(by, bx)``, most uncertain first; ties in row-major order (the first block wins,
        as ``np.argmax`` picks it). ``eligible``: a narrower (hb, wb) mask to rank instead of ``self.eligible``."""
        mask = self.eligible if eligible is None else eligible
        order = np.argsort(-np.where(mask, self.mean, -np.inf), axis=None, kind="stable")
        order = order[: int(mask.sum())]
        return [(int(i) // mask.shape[1], int(i) % mask.shape[1]) for i in order]


def uncertainty_blocks(uncertainty: np.ndarray, unlabelled: np.ndarray, *, block: int = NEXT_REGION_BLOCK_PX,
                       min_unlabelled_fraction: float = MIN_UNLABELLED_FRACTION) -> UncertaintyBlocks:
    """Cut ``uncertainty`` (H, W) (any real dtype: the app stores it as uint8 0..255, the model gives float 0..1)
    into ``block`` px squares and average it over the ``unlabelled`` (H, W) bool pixels of each block."""
    uncertainty = np.asarray(uncertainty)
    unlabelled = np.asarray(unlabelled, bool)
    if uncertainty.ndim != 2 or uncertainty.shape != unlabelled.shape:
        raise ValueError(f"uncertainty {uncertainty.shape} and unlabelled {unlabelled.shape} must be the same (H, W)")
    if block < 1:
        raise ValueError(f"block must be at least 1 px, got {block}")
    h, w = unlabelled.shape
    hb, wb = -(-h // block), -(-w // block)
    u_pad = np.zeros((hb * block, wb * block), np.float64)
    n_pad = np.zeros((hb * block, wb * block), bool)
    u_pad[:h, :w] = np.where(unlabelled, uncertainty, 0)
    n_pad[:h, :w] = unlabelled
    sums = u_pad.reshape(hb, block, wb, block).sum(axis=(1, 3))
    counts = n_pad.reshape(hb, block, wb, block).sum(axis=(1, 3), dtype=np.int64)
    ys = np.arange(hb) * block
    xs = np.arange(wb) * block
    heights = np.minimum(ys + block, h) - ys
    widths = np.minimum(xs + block, w) - xs
    eligible = counts >= min_unlabelled_fraction * (heights[:, None] * widths[None, :])
    return UncertaintyBlocks(block=block, ys=ys, xs=xs, heights=heights, widths=widths, counts=counts,
                             mean=sums / np.maximum(counts, 1), eligible=eligible)


__all__ = ["MIN_UNLABELLED_FRACTION", "NEXT_REGION_BLOCK_PX", "UncertaintyBlocks", "uncertainty_blocks"]
