"""Label rasters on disk at working resolution (255 = unlabelled), written atomically.

Two formats: lossless PNG for what never changes after it is written (predictions, their uncertainty and
levels), and raw NumPy ``.npy`` for label layers, which experts edit stroke by stroke: a stroke rewrites only its
bounding box in place through a memory map (:func:`open_raster_for_update`), which costs microseconds where
re-encoding a 3000 × 3000 PNG costs a few hundred milliseconds. :func:`read_raster` and :func:`write_raster`
choose the format by the file's suffix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from inference.ml.classes import NUM_CLASSES, UNLABELLED

# PNG zlib level for label rasters: label maps compress ~50× already at level 1; higher levels cost seconds
# on 3000² maps for a few per cent.
PNG_COMPRESS_LEVEL = 1


def read_raster(path: Path) -> np.ndarray:
    """A uint8 ``(H, W)`` array from a single-channel PNG, or from an ``.npy`` file (read whole, a copy)."""
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    else:
        with Image.open(path) as image:
            array = np.asarray(image)
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"{path.name} is not a single-channel 8-bit raster (shape {array.shape}, {array.dtype}).")
    return array


def write_raster(path: Path, array: np.ndarray) -> None:
    """Write a uint8 ``(H, W)`` array as PNG (or ``.npy`` if ``path`` ends so) via a temporary file and an atomic
    rename (readers never see half)."""
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W) array, got {array.dtype} {array.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=f"{path.suffix}.tmp")
    try:
        if path.suffix == ".npy":
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        else:
            os.close(fd)
            Image.fromarray(array).save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_raster_for_update(path: Path) -> np.memmap:
    """Memory-map an ``.npy`` raster for in-place writes of a few pixels; call ``.flush()`` after writing.

    The caller serialises writers (the layer row is locked while a patch is written).
    """
    array = np.load(path, mmap_mode="r+", allow_pickle=False)
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ValueError(f"{path.name} is not a uint8 (H, W) raster (shape {array.shape}, {array.dtype}).")
    return array


def open_raster(path: Path) -> np.ndarray:
    """A read-only view of an ``.npy`` raster through a memory map (nothing read until used)."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def png_as_npy(png: Path, cache: Path) -> np.ndarray:
    """A read-only memory map of a PNG raster's pixels, decoded once into the ``.npy`` file ``cache``.

    The cache is reused while it is newer than the PNG, so a prediction stored again (re-predicted with the same
    model) is decoded again. Memory maps share the page cache between server processes: no process holds its own
    copy of each prediction it reads.
    """
    try:
        if cache.stat().st_mtime_ns >= png.stat().st_mtime_ns:
            return open_raster(cache)
    except FileNotFoundError:
        pass
    write_raster(cache, read_raster(png))
    return open_raster(cache)


def class_pixel_counts(labels: np.ndarray) -> dict[int, int]:
    """Pixels per class value 0..K-1 (unlabelled pixels are not counted)."""
    counts = np.bincount(labels.ravel(), minlength=256)
    return {value: int(counts[value]) for value in range(NUM_CLASSES)}


def labelled_pixels(labels: np.ndarray) -> int:
    return int(np.count_nonzero(labels != UNLABELLED))


def reduce_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reduce a label map to ``height × width``: each output pixel takes the majority class of the labelled
    input pixels in its footprint (255 where none is labelled). Exact block vote when the factor is an integer
    (the usual 4× of 1 → 4 µm/px, edges padded as unlabelled); nearest sampling otherwise."""
    in_h, in_w = labels.shape
    fy, fx = in_h / height, in_w / width
    if abs(fy - round(fy)) > 0.02 or abs(fx - round(fx)) > 0.02 or round(fy) < 1 or round(fx) < 1:
        ys = np.minimum(((np.arange(height) + 0.5) * fy).astype(np.int64), in_h - 1)
        xs = np.minimum(((np.arange(width) + 0.5) * fx).astype(np.int64), in_w - 1)
        return labels[np.ix_(ys, xs)]
    fy_i, fx_i = round(fy), round(fx)
    padded = np.full((height * fy_i, width * fx_i), UNLABELLED, np.uint8)
    h, w = min(in_h, padded.shape[0]), min(in_w, padded.shape[1])
    padded[:h, :w] = labels[:h, :w]
    blocks = padded.reshape(height, fy_i, width, fx_i)
    best = np.full((height, width), UNLABELLED, np.uint8)
    best_votes = np.zeros((height, width), np.int32)
    for value in range(NUM_CLASSES):
        votes = (blocks == value).sum(axis=(1, 3), dtype=np.int32)
        better = votes > best_votes
        best[better] = value
        best_votes[better] = votes[better]
    return best
