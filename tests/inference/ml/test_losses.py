"""Tests of inference/ml/losses.py: the selective Dice against MONAI, masking, class weights, label downsampling."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, MaskedDiceLoss

from inference.ml.classes import NUM_CLASSES, UNLABELLED
from inference.ml.losses import (
    DEFAULT_EPS,
    MultiLevelDiceLoss,
    class_weights,
    downsample_labels,
    selective_dice,
)

K = NUM_CLASSES


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _random_batch(seed: int, b: int = 2, h: int = 16, w: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [b, K, h, w] and labels [b, h, w] with ~30 % unlabelled pixels."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, K, h, w, generator=g)
    target = torch.randint(0, K, (b, h, w), generator=g)
    target[torch.rand(b, h, w, generator=g) < 0.3] = UNLABELLED
    return logits, target


def _monai_inputs(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax probabilities, one-hot labels (unlabelled -> all zero) and the labelled mask [B, 1, H, W]."""
    mask = (target != UNLABELLED).unsqueeze(1).float()
    one_hot = F.one_hot(torch.where(target == UNLABELLED, 0, target), K).permute(0, 3, 1, 2).float()
    return torch.softmax(logits, 1), one_hot, mask


def _monai_dice_loss(**kwargs: object) -> DiceLoss:
    return DiceLoss(include_background=True, softmax=False, batch=True, smooth_nr=DEFAULT_EPS, smooth_dr=DEFAULT_EPS,
                    **kwargs)


def test_selective_dice_with_uniform_alpha_matches_monai_on_masked_pixels() -> None:
    logits, target = _random_batch(0)
    probs, one_hot, mask = _monai_inputs(logits, target)
    ours = 1 - selective_dice(probs, target, torch.full((K,), 1 / K))
    reference = _monai_dice_loss(reduction="mean")(probs * mask, one_hot * mask)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


def test_selective_dice_matches_monai_masked_dice_loss() -> None:
    logits, target = _random_batch(1)
    probs, one_hot, mask = _monai_inputs(logits, target)
    ours = 1 - selective_dice(probs, target, torch.full((K,), 1 / K))
    reference = MaskedDiceLoss(include_background=True, softmax=False, batch=True, smooth_nr=DEFAULT_EPS,
                               smooth_dr=DEFAULT_EPS, reduction="mean")(probs, one_hot, mask=mask)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


def test_selective_dice_with_class_weights_matches_monai_weighted_sum() -> None:
    logits, target = _random_batch(2)
    probs, one_hot, mask = _monai_inputs(logits, target)
    alpha = torch.tensor([0.05, 0.3, 0.1, 0.2, 0.25, 0.1])
    ours = 1 - selective_dice(probs, target, alpha)
    # sum_k alpha_k (1 - d_k) = 1 - sum_k alpha_k d_k because the alpha sum to 1
    reference = _monai_dice_loss(reduction="sum", weight=alpha)(probs * mask, one_hot * mask)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


def test_single_level_loss_with_unit_alpha_matches_monai() -> None:
    logits, target = _random_batch(3)
    probs, one_hot, mask = _monai_inputs(logits, target)
    ours = MultiLevelDiceLoss(np.ones(K), betas=(1.0,))([logits], target)
    reference = _monai_dice_loss(reduction="mean")(probs * mask, one_hot * mask)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


def _perfect_logits(target: torch.Tensor) -> torch.Tensor:
    """Logits [B, K, H, W] whose softmax is (numerically) the one-hot of ``target``; unlabelled pixels arbitrary."""
    return 100.0 * F.one_hot(torch.where(target == UNLABELLED, 0, target), K).permute(0, 3, 1, 2).float()


def test_perfect_prediction_has_zero_loss_at_every_level() -> None:
    _, target = _random_batch(4, h=32, w=32)
    target[target == 5] = 4  # the labels lack a class: a perfect prediction must still score 0
    logits = [_perfect_logits(downsample_labels(target, 2**m)) for m in range(3)]
    loss = MultiLevelDiceLoss(class_weights([target.numpy()]))(logits, target)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


def test_wrong_prediction_has_loss_near_one() -> None:
    _, target = _random_batch(5)
    wrong = _perfect_logits((torch.where(target == UNLABELLED, 0, target) + 1) % K)
    loss = MultiLevelDiceLoss(np.ones(K), betas=(1.0,))([wrong], target)
    assert loss.item() > 0.99


def test_unlabelled_pixels_do_not_change_the_loss_or_get_gradient() -> None:
    logits, target = _random_batch(6)
    loss_fn = MultiLevelDiceLoss(np.ones(K), betas=(1.0,))
    unlabelled = (target == UNLABELLED).unsqueeze(1).expand_as(logits)
    changed = torch.where(unlabelled, torch.randn_like(logits) * 10, logits)
    torch.testing.assert_close(loss_fn([changed], target), loss_fn([logits], target))
    logits.requires_grad_(True)
    loss_fn([logits], target).backward()
    assert logits.grad is not None
    assert (logits.grad[unlabelled] == 0).all()
    assert (logits.grad[~unlabelled] != 0).any()


def test_each_level_is_weighted_by_its_beta() -> None:
    _, target = _random_batch(7, h=32, w=32)
    alpha = np.ones(K)
    logits = [_perfect_logits(downsample_labels(target, 2**m)) for m in range(3)]
    logits[1] = torch.zeros_like(logits[1])  # uniform prediction at level 1 only
    loss_fn = MultiLevelDiceLoss(alpha, betas=(0.8, 0.16, 0.04))
    level1 = selective_dice(torch.softmax(logits[1], 1), downsample_labels(target, 2), loss_fn.alpha)
    torch.testing.assert_close(loss_fn(logits, target), 0.16 * (1 - level1), rtol=1e-5, atol=1e-5)


def test_betas_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        MultiLevelDiceLoss(np.ones(K), betas=(0.5, 0.2))


def test_betas_must_match_the_number_of_levels() -> None:
    logits, target = _random_batch(8)
    with pytest.raises(ValueError, match=r"1 output level\(s\) but 3 beta"):
        MultiLevelDiceLoss(np.ones(K))([logits], target)


def test_level_shapes_are_checked() -> None:
    logits, target = _random_batch(9)
    with pytest.raises(ValueError, match=r"level 1 logits must be"):
        MultiLevelDiceLoss(np.ones(K), betas=(0.5, 0.5))([logits, logits], target)


def test_alpha_is_normalised_to_sum_to_one() -> None:
    loss_fn = MultiLevelDiceLoss([2.0] * K)
    torch.testing.assert_close(loss_fn.alpha, torch.full((K,), 1 / K))


def test_class_weights_are_inverse_to_labelled_counts() -> None:
    a = np.array([[0, 0, 0, 0], [1, 1, 255, 255]], dtype=np.uint8)
    b = np.array([[2, 255], [0, 0]], dtype=np.uint8)
    alpha = class_weights([a, b], num_classes=3)  # counts: 6, 2, 1 (255 ignored)
    expected = np.array([1 / 6, 1 / 2, 1.0])
    np.testing.assert_allclose(alpha, expected / expected.sum())


def test_absent_class_gets_the_largest_weight() -> None:
    alpha = class_weights([np.array([0, 0, 0, 1], dtype=np.uint8)], num_classes=3)  # class 2 absent
    assert alpha[2] == alpha[1] == alpha.max()
    assert np.isfinite(alpha).all() and alpha.sum() == pytest.approx(1.0)


def test_class_weights_refuse_invalid_values() -> None:
    with pytest.raises(ValueError, match=r"\[7\] are not allowed"):
        class_weights([np.array([0, 7, 255], dtype=np.uint8)])


def test_class_weights_refuse_maps_without_labels() -> None:
    with pytest.raises(ValueError, match="no labelled pixel"):
        class_weights([np.full((4, 4), 255, dtype=np.uint8)])


def test_downsample_labels_takes_majority_of_labelled_pixels() -> None:
    u = UNLABELLED
    target = torch.tensor([[
        [1, 1, 2, u],
        [1, 2, u, u],  # top-left: majority 1; top-right: 3 of 4 unlabelled -> 255
        [3, 4, 0, u],
        [4, 3, u, 0],  # bottom-left: tie 3/4 -> lowest value 3; bottom-right: half labelled -> 0
    ]])
    assert downsample_labels(target, 2).tolist() == [[[1, u], [3, 0]]]


def test_downsample_labels_factor_one_is_a_copy() -> None:
    _, target = _random_batch(10)
    out = downsample_labels(target, 1)
    assert torch.equal(out, target) and out.data_ptr() != target.data_ptr()


def test_downsample_labels_refuses_indivisible_size() -> None:
    with pytest.raises(ValueError, match="not divisible by factor 4"):
        downsample_labels(torch.zeros(1, 6, 8, dtype=torch.long), 4)


def test_downsample_labels_refuses_values_outside_the_classes() -> None:
    with pytest.raises(ValueError, match=f"0..{K - 1} or 255"):
        downsample_labels(torch.full((1, 2, 2), 9, dtype=torch.long), 2)
