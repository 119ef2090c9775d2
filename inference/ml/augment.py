"""Data augmentation of the paper (section 4): random rotation, flipping, shearing and mean-intensity change.

One call transforms one (image, labels) patch pair with a single random affine map, so the two stay aligned:
the image is interpolated bilinearly, the labels by nearest neighbour. Pixels that the map brings in from outside
the patch become ``UNLABELLED`` in the labels (the loss ignores them) and the patch's mean in the image (a neutral
value that adds no edge for the network to learn).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from inference.ml.classes import UNLABELLED

MAX_SHEAR = 0.2  # largest shear factor: a 256 px patch's rows slide by up to ~50 px, strong but still plausible
# for tissue pressed under the objective
GAIN_RANGE = (0.75, 1.25)  # mean-intensity change: laser power and depth change RCM brightness by ~+-25 %


def random_affine(rng: np.random.Generator) -> np.ndarray:
    """A random 2 x 2 matrix: rotation by any angle, optional flip, shear up to ``MAX_SHEAR``."""
    angle = rng.uniform(0.0, 2.0 * math.pi)
    flip = rng.random() < 0.5  # with rotation by any angle, one mirror axis gives every orientation
    shear = rng.uniform(-MAX_SHEAR, MAX_SHEAR)
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    shear_m = np.array([[1.0, shear], [0.0, 1.0]])
    mirror = np.diag([1.0, -1.0 if flip else 1.0])
    return rotation @ shear_m @ mirror


def augment_pair(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Randomly rotate, flip, shear and rescale the intensity of one patch pair.

    ``image`` (P, Q) uint8 or float and ``labels`` (P, Q) uint8 (class values and 255). Returns ``image``
    (P, Q) float32 on the input's intensity scale and ``labels`` (P, Q) uint8. The same ``rng`` state gives the
    same result.
    """
    if image.ndim != 2 or image.shape != labels.shape:
        raise ValueError(f"image and labels must be 2-D and the same shape, got {image.shape} and {labels.shape}")
    if labels.dtype != np.uint8:
        raise ValueError(f"labels must be uint8 (class values and {UNLABELLED}), got {labels.dtype}")
    matrix = random_affine(rng)
    gain = rng.uniform(*GAIN_RANGE)
    # affine_transform maps output coordinates o to input coordinates matrix @ o + offset; about the patch centre
    centre = (np.array(image.shape, dtype=np.float64) - 1.0) / 2.0
    offset = centre - matrix @ centre
    source = image.astype(np.float32, copy=False)
    neutral = float(source.mean())
    out_image = ndimage.affine_transform(
        source, matrix, offset, order=1, mode="constant", cval=neutral, output=np.float32
    )
    out_labels = ndimage.affine_transform(labels, matrix, offset, order=0, mode="constant", cval=UNLABELLED)
    out_image *= np.float32(gain)
    return out_image, out_labels
