import pytest

from inference.ml.finetune import (
    DEFAULT_CE_WEIGHT,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_PATCH,
    DEFAULT_STEPS_PER_EPOCH,
    finetune_config,
    finetune_patch,
    validation_count,
)


def test_a_fifth_of_the_mosaics_validates_from_five_on() -> None:
    assert [validation_count(n) for n in (0, 1, 2, 4, 5, 9, 10)] == [0, 0, 0, 0, 1, 1, 2]


def test_patch_is_the_default_or_the_smallest_side_rounded_down_to_16() -> None:
    assert finetune_patch([(3000, 2000), (1024, 1024)]) == DEFAULT_PATCH
    assert finetune_patch([(3000, 2000), (100, 200)]) == 96
    with pytest.raises(ValueError, match="at least 64"):
        finetune_patch([(63, 500)])


def test_config_carries_the_round_defaults() -> None:
    config = finetune_config(patch=128)
    assert (config.epochs, config.lr, config.max_steps_per_epoch, config.ce_weight, config.patch) == (
        DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_STEPS_PER_EPOCH, DEFAULT_CE_WEIGHT, 128)
    assert finetune_config(epochs=2, ce_weight=0.0).ce_weight == 0.0
