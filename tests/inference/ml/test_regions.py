import numpy as np
import pytest

from inference.ml.regions import uncertainty_blocks


def test_blocks_average_uncertainty_over_unlabelled_pixels_and_rank_most_uncertain_first() -> None:
    uncertainty = np.zeros((10, 9), np.uint8)
    uncertainty[0:4, 4:8] = 200  # block (0, 1): the most uncertain
    uncertainty[4:8, 0:4] = 100  # block (1, 0)
    uncertainty[8:10, 8:9] = 250  # the 2 x 1 corner block (2, 2), but labelled below
    unlabelled = np.ones((10, 9), bool)
    unlabelled[8:10, 8] = False
    unlabelled[0, 4:8] = False  # a labelled row in block (0, 1): its mean is over the 12 others
    uncertainty[0, 4:8] = 0
    blocks = uncertainty_blocks(uncertainty, unlabelled, block=4)

    assert blocks.mean.shape == (3, 3)
    assert blocks.counts[0, 1] == 12 and blocks.mean[0, 1] == 200
    assert blocks.sizes[2, 2] == 2 and not blocks.eligible[2, 2]  # fully labelled: never proposed
    assert blocks.bbox(2, 2) == (8, 8, 9, 10)
    ranked = blocks.ranked()
    assert ranked[:2] == [(0, 1), (1, 0)]
    assert ranked[2:] == [(0, 0), (0, 2), (1, 1), (1, 2), (2, 0), (2, 1)]  # equal means: row-major order
    narrower = blocks.eligible.copy()
    narrower[0, 1] = False
    assert blocks.ranked(narrower)[0] == (1, 0)


def test_a_block_less_than_half_unlabelled_is_not_eligible() -> None:
    unlabelled = np.zeros((4, 4), bool)
    unlabelled[0, :] = True  # 4 of 16
    assert not uncertainty_blocks(np.ones((4, 4)), unlabelled, block=4).eligible.any()
    unlabelled[1, :] = True  # 8 of 16
    assert uncertainty_blocks(np.ones((4, 4)), unlabelled, block=4).ranked() == [(0, 0)]


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match="same"):
        uncertainty_blocks(np.zeros((4, 4)), np.zeros((4, 5), bool))
