import numpy as np
import pytest
from scipy import ndimage

from inference.ml.augment import GAIN_RANGE, augment_pair, random_affine
from inference.ml.classes import NUM_CLASSES, UNLABELLED
from inference.ml.synthetic import generate_mosaic


@pytest.fixture(scope="module")
def truth():
    """A (128, 128) label map with large regions of several classes and no unlabelled pixel."""
    return generate_mosaic(height=128, width=128, um_per_px=16.0, seed=2).truth


def _image_of(labels: np.ndarray) -> np.ndarray:
    return (40 * labels.astype(np.int32) + 20).astype(np.uint8)  # class k -> grey 40 k + 20


def _agreement(image: np.ndarray, labels: np.ndarray) -> float:
    """Share of labelled pixels away from label borders whose grey level is ``gain * (40 k + 20)``."""
    edge = ndimage.maximum_filter(labels, 3) != ndimage.minimum_filter(labels, 3)  # next to another label or 255
    inner = (labels != UNLABELLED) & ~edge
    expected = 40.0 * labels[inner] + 20.0
    gain = np.median(image[inner] / expected)
    assert GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]
    return float((np.abs(image[inner] - gain * expected) < 1.0).mean())


@pytest.mark.parametrize("seed", range(5))
def test_image_and_labels_stay_aligned(truth, seed):
    assert len(np.unique(truth)) >= 3
    image, labels = augment_pair(_image_of(truth), truth, np.random.default_rng(seed))
    assert _agreement(image, labels) > 0.998


def test_misaligned_labels_would_be_caught(truth):
    """The alignment check fails for labels shifted by a single pixel (so it can detect a mismatch)."""
    image, labels = augment_pair(_image_of(truth), truth, np.random.default_rng(0))
    assert _agreement(image, np.roll(labels, 1, axis=1)) < 0.998


def test_pixels_from_outside_become_unlabelled_and_neutral(truth):
    image_in = _image_of(truth)
    outside_seen = 0
    for seed in range(5):
        image, labels = augment_pair(image_in, truth, np.random.default_rng(seed))
        outside = labels == UNLABELLED
        outside_seen += outside.sum()
        # away from the patch's content (so bilinear mixing at the border is excluded) the image is the neutral
        # value: the input mean times the same intensity gain
        deep = ndimage.binary_erosion(outside, iterations=2)
        if deep.any():
            known = ~outside
            gain = np.median(image[known] / (40.0 * labels[known] + 20.0))
            np.testing.assert_allclose(image[deep], image_in.mean() * gain, rtol=1e-4)
    assert outside_seen > 0  # rotations by angles that are not multiples of 90 degrees bring in the corners


def test_labels_keep_only_input_values(truth):
    labels_in = truth.copy()
    labels_in[:20, :20] = UNLABELLED
    for seed in range(5):
        _, labels = augment_pair(_image_of(truth), labels_in, np.random.default_rng(seed))
        assert labels.dtype == np.uint8
        assert set(np.unique(labels)) <= set(np.unique(labels_in)) | {UNLABELLED}
        assert ((labels < NUM_CLASSES) | (labels == UNLABELLED)).all()


def test_same_rng_state_gives_the_same_result(truth):
    a = augment_pair(_image_of(truth), truth, np.random.default_rng(7))
    b = augment_pair(_image_of(truth), truth, np.random.default_rng(7))
    c = augment_pair(_image_of(truth), truth, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_output_shapes_and_types(truth):
    image, labels = augment_pair(_image_of(truth)[:100, :60], truth[:100, :60], np.random.default_rng(0))
    assert image.shape == labels.shape == (100, 60)
    assert image.dtype == np.float32 and labels.dtype == np.uint8


def test_random_affine_covers_flips_and_shears():
    dets = [np.linalg.det(random_affine(np.random.default_rng(s))) for s in range(40)]
    assert min(dets) < 0 < max(dets)  # mirrored and not mirrored
    np.testing.assert_allclose(np.abs(dets), 1.0, atol=1e-9)  # rotation, mirror and shear keep the area


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        augment_pair(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8), np.random.default_rng(0))


def test_rejects_non_uint8_labels():
    with pytest.raises(ValueError, match="uint8"):
        augment_pair(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.int64), np.random.default_rng(0))
