import numpy as np
import pytest
import torch

from inference.ml.classes import NUM_CLASSES, UNLABELLED
from inference.ml.sampling import PatchDataset, grid_origins
from inference.ml.synthetic import generate_mosaic


@pytest.mark.parametrize(("height", "width", "patch"), [(64, 64, 64), (100, 77, 32), (257, 300, 64), (40, 200, 40)])
def test_grid_covers_every_pixel_and_stays_inside(height, width, patch):
    covered = np.zeros((height, width), int)
    for y, x in grid_origins(height, width, patch):
        assert 0 <= y <= height - patch and 0 <= x <= width - patch
        covered[y : y + patch, x : x + patch] += 1
    assert covered.min() >= 1


def test_grid_steps_by_half_a_patch_and_ends_flush():
    origins = grid_origins(300, 256, 128, overlap=0.5)
    ys = sorted({y for y, _ in origins})
    xs = sorted({x for _, x in origins})
    assert ys == [0, 64, 128, 172]  # last row flush with the bottom border
    assert xs == [0, 64, 128]
    assert len(origins) == len(ys) * len(xs)


def test_grid_without_overlap_tiles_the_image():
    assert grid_origins(64, 64, 32, overlap=0.0) == [(0, 0), (0, 32), (32, 0), (32, 32)]


def test_image_smaller_than_a_patch_is_an_error_naming_the_minimum():
    with pytest.raises(ValueError, match="minimum size is 256 x 256"):
        grid_origins(200, 300, 256)


def test_invalid_overlap_is_rejected():
    with pytest.raises(ValueError, match="overlap"):
        grid_origins(64, 64, 32, overlap=1.0)


@pytest.fixture(scope="module")
def pairs():
    mosaics = [generate_mosaic(height=96, width=128, um_per_px=8.0, seed=s) for s in (0, 1)]
    return [(m.image, m.partial) for m in mosaics]


def test_items_are_scaled_float_images_and_int64_labels(pairs):
    ds = PatchDataset(pairs, patch=32, augment=True, seed=0)
    image, labels = ds[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert labels.shape == (32, 32) and labels.dtype == torch.int64
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_without_augmentation_items_are_the_grid_crops(pairs):
    ds = PatchDataset(pairs, patch=32, augment=False, skip_unlabelled=False)
    assert len(ds) == 2 * len(grid_origins(96, 128, 32))
    image, labels = ds[1]
    y, x = grid_origins(96, 128, 32)[1]
    np.testing.assert_array_equal(image[0].numpy(), pairs[0][0][y : y + 32, x : x + 32] / np.float32(255.0))
    np.testing.assert_array_equal(labels.numpy(), pairs[0][1][y : y + 32, x : x + 32])


def test_same_seed_and_epoch_give_the_same_items(pairs):
    a = PatchDataset(pairs, patch=32, augment=True, seed=3)
    b = PatchDataset(pairs, patch=32, augment=True, seed=3)
    for ds in (a, b):
        ds.set_epoch(2)
    for i in (0, 5, len(a) - 1):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])


def test_epoch_and_seed_change_the_draw(pairs):
    ds = PatchDataset(pairs, patch=32, augment=True, seed=3)
    first = ds[4]
    ds.set_epoch(1)
    assert not torch.equal(ds[4][0], first[0])
    ds.set_epoch(0)
    assert torch.equal(ds[4][0], first[0])  # back to epoch 0: the same draw again
    other = PatchDataset(pairs, patch=32, augment=True, seed=4)
    assert not torch.equal(other[4][0], first[0])


def test_labels_after_augmentation_are_classes_or_unlabelled(pairs):
    ds = PatchDataset(pairs, patch=32, augment=True, seed=0)
    for epoch in range(2):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            labels = ds[i][1]
            assert bool((((labels >= 0) & (labels < NUM_CLASSES)) | (labels == UNLABELLED)).all())


def test_skip_unlabelled_drops_patches_without_labels():
    image = np.full((64, 64), 100, np.uint8)
    labels = np.full((64, 64), UNLABELLED, np.uint8)
    labels[:16, :16] = 2  # only the top-left patch has labelled pixels
    kept = PatchDataset([(image, labels)], patch=32, overlap=0.0)
    every = PatchDataset([(image, labels)], patch=32, overlap=0.0, skip_unlabelled=False)
    assert (len(kept), len(every)) == (1, 4)
    assert bool((kept[0][1] != UNLABELLED).any())


def test_rejects_invalid_label_values():
    labels = np.zeros((32, 32), np.uint8)
    labels[0, 0] = 7
    with pytest.raises(ValueError, match=r"found \[7\]"):
        PatchDataset([(np.zeros((32, 32), np.uint8), labels)], patch=32)


def test_rejects_mismatched_pairs():
    with pytest.raises(ValueError, match="same shape"):
        PatchDataset([(np.zeros((32, 32), np.uint8), np.zeros((32, 40), np.uint8))], patch=32)
