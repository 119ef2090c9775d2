"""Reading mosaic folders for the ``train``, ``predict`` and ``evaluate`` subcommands.

A mosaic folder holds, per mosaic, ``<name>.tif`` (grayscale image at the working resolution) and label PNGs
``<name>_<labels>.png`` (values 0..5, 255 = unlabelled), e.g. as written by ``python -m inference.ml generate``
(``_truth`` = full labels, ``_partial`` = partial labels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from inference.ml.synthetic import read_um_per_px

WORKING_UM_PER_PX = 4.0  # the paper's working resolution (section 3): 1/4 of the ~1 µm/px acquisition
UM_PER_PX_TOLERANCE = 0.05  # relative; a mosaic written at 4.1 µm/px is still the working resolution


def read_image(path: Path, *, um_per_px: float = WORKING_UM_PER_PX) -> np.ndarray:
    """uint8 ``(H, W)`` image of a TIFF; refuses one whose resolution tags say it is not at ``um_per_px``."""
    image = tifffile.imread(path)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2:
        raise SystemExit(f"{path}: expected a grayscale image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise SystemExit(f"{path}: expected 8-bit pixels, got {image.dtype}")
    found = read_um_per_px(path)
    if found is not None and abs(found - um_per_px) > UM_PER_PX_TOLERANCE * um_per_px:
        raise SystemExit(
            f"{path}: {found:.3g} µm/px but the model works at {um_per_px:g} µm/px; resample it first "
            "(or pass --um-per-px if the model was trained at that resolution)"
        )
    return image


def read_labels(path: Path) -> np.ndarray:
    labels = np.asarray(Image.open(path))
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise SystemExit(f"{path}: expected a single-channel 8-bit label PNG, got {labels.shape} {labels.dtype}")
    return labels


def find_mosaics(folder: Path, labels: str) -> list[tuple[Path, Path]]:
    """(image, label) paths of every ``<name>.tif`` in ``folder`` that has ``<name>_<labels>.png``, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"{folder}: not a folder")
    found = []
    for tif in sorted(folder.glob("*.tif")):
        png = tif.with_name(f"{tif.stem}_{labels}.png")
        if png.exists():
            found.append((tif, png))
    if not found:
        raise SystemExit(f"{folder}: no <name>.tif with a <name>_{labels}.png beside it")
    return found


def load_pairs(folder: Path, labels: str, *, um_per_px: float = WORKING_UM_PER_PX) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for tif, png in find_mosaics(folder, labels):
        image, lab = read_image(tif, um_per_px=um_per_px), read_labels(png)
        if image.shape != lab.shape:
            raise SystemExit(f"{png}: labels are {lab.shape} but the image {tif.name} is {image.shape}")
        pairs.append((image, lab))
    return pairs
