import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inference.ml.losses import MultiLevelDiceLoss, downsample_labels
from inference.ml.models import ModelConfig, build_model
from inference.ml.synthetic import generate_mosaic
from inference.ml.train import (
    LAST_STATE,
    CheckpointMismatch,
    DiceCrossEntropyLoss,
    TrainConfig,
    default_betas,
    train,
)
from inference.ml.weights import load_model, save_model

TINY = ModelConfig(arch="munet", levels=2, base_channels=4, extra={"depth": 2})


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def pairs() -> tuple[list, list]:
    mosaics = [generate_mosaic(height=64, width=64, um_per_px=4.0, seed=s) for s in (1, 2, 3)]
    train_pairs = [(m.image, m.partial) for m in mosaics[:2]]
    val_pairs = [(mosaics[2].image, mosaics[2].truth)]
    return train_pairs, val_pairs


def _config(tmp_path=None, **kw) -> TrainConfig:
    base = {"epochs": 3, "batch_size": 4, "patch": 32, "lr": 3e-3, "seed": 7, "device": "cpu",
            "checkpoint_dir": tmp_path}
    return TrainConfig(**{**base, **kw})


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resumed_run_continues_at_the_next_epoch_and_matches_an_uninterrupted_run(pairs, tmp_path):
    train_pairs, val_pairs = pairs
    config = _config(tmp_path / "a", restore_best=False)

    def stop_after_epoch_2(fraction, message, info):
        if info["event"] == "epoch" and info["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(TINY, train_pairs, val_pairs, config, progress=stop_after_epoch_2)
    epochs_seen: list[int] = []
    resumed = train(TINY, train_pairs, val_pairs, config, progress=lambda f, m, i: epochs_seen.append(i["epoch"]))
    uninterrupted = train(TINY, train_pairs, val_pairs, _config(tmp_path / "b", restore_best=False))

    assert set(epochs_seen) == {3}
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert _same_weights(resumed.model, uninterrupted.model)
    assert resumed.history[-1]["train_loss"] == uninterrupted.history[-1]["train_loss"]


def test_a_kill_between_the_checkpoint_writes_resumes_from_the_previous_epoch(pairs, tmp_path, monkeypatch):
    """Killed after epoch 2's weights were written but before its state: the resume redoes epoch 2 and the run
    ends as an uninterrupted one does (the state file is the commit point)."""
    from inference.ml import train as train_module

    train_pairs, val_pairs = pairs
    config = _config(tmp_path / "a", epochs=3, restore_best=False)
    real_save = train_module._atomic_torch_save

    def killed_at_epoch_2(obj, path):  # noqa: ANN001, ANN202
        if obj["epoch"] == 2:
            raise Stop
        real_save(obj, path)

    monkeypatch.setattr(train_module, "_atomic_torch_save", killed_at_epoch_2)
    with pytest.raises(Stop):
        train(TINY, train_pairs, val_pairs, config)
    assert load_model(tmp_path / "a" / "last.safetensors").metadata["epoch"] == 2  # weights ahead of the state
    monkeypatch.setattr(train_module, "_atomic_torch_save", real_save)
    epochs_seen: list[int] = []
    resumed = train(TINY, train_pairs, val_pairs, config, progress=lambda f, m, i: epochs_seen.append(i["epoch"]))
    uninterrupted = train(TINY, train_pairs, val_pairs, _config(tmp_path / "b", epochs=3, restore_best=False))
    assert set(epochs_seen) == {2, 3}
    assert _same_weights(resumed.model, uninterrupted.model)


def test_same_seed_gives_the_same_model_and_another_seed_does_not(pairs):
    train_pairs, _ = pairs
    a = train(TINY, train_pairs, [], _config(epochs=1))
    b = train(TINY, train_pairs, [], _config(epochs=1))
    c = train(TINY, train_pairs, [], _config(epochs=1, seed=8))
    assert _same_weights(a.model, b.model)
    assert not _same_weights(a.model, c.model)


def test_training_lowers_the_loss(pairs):
    train_pairs, val_pairs = pairs
    result = train(TINY, train_pairs, val_pairs, _config(epochs=6, lr=1e-2, augment=False))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.05


def test_checkpoints_are_safe_files_with_config_weights_and_metrics(pairs, tmp_path):
    train_pairs, val_pairs = pairs
    result = train(TINY, train_pairs, val_pairs, _config(tmp_path, epochs=2))
    state = torch.load(tmp_path / LAST_STATE, weights_only=True)
    assert state["epoch"] == 2 and "state" in state["optimizer"]
    loaded = load_model(result.last_checkpoint)
    assert loaded.config.to_dict() == TINY.to_dict()
    assert loaded.metadata["epoch"] == 2
    assert loaded.metadata["class_weights"] == pytest.approx(result.class_weights.tolist())
    assert set(loaded.metadata["metrics"]) >= {"accuracy", "mean_dice", "dice", "kappa"}
    assert load_model(result.best_checkpoint).metadata["epoch"] == result.best_epoch


def test_history_holds_losses_and_validation_metrics_per_epoch(pairs):
    train_pairs, val_pairs = pairs
    result = train(TINY, train_pairs, val_pairs, _config(epochs=2))
    assert [h["epoch"] for h in result.history] == [1, 2]
    for h in result.history:
        assert h["train_loss"] > 0 and h["val_loss"] > 0
        assert 0 <= h["val"]["accuracy"] <= 1
    json.dumps(result.history, allow_nan=False)


def test_returned_model_holds_the_best_epoch_weights(pairs, tmp_path):
    train_pairs, val_pairs = pairs
    result = train(TINY, train_pairs, val_pairs, _config(tmp_path, epochs=3))
    best = load_model(result.best_checkpoint).model
    assert _same_weights(result.model, best)
    dice = [h["val"]["mean_dice"] for h in result.history]
    assert result.best_epoch == int(np.argmax(dice)) + 1


def test_progress_reports_steps_with_loss_and_reaches_one(pairs):
    train_pairs, _ = pairs
    calls: list[tuple[float, str, dict]] = []
    train(TINY, train_pairs, [], _config(epochs=2), progress=lambda f, m, i: calls.append((f, m, i)))
    steps = [i for _, _, i in calls if i["event"] == "step"]
    assert steps and all({"epoch", "step", "steps", "loss", "lr"} <= set(i) for i in steps)
    fractions = [f for f, _, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [i["epoch"] for _, _, i in calls if i["event"] == "epoch"] == [1, 2]


def test_max_steps_per_epoch_caps_the_steps(pairs):
    train_pairs, _ = pairs
    calls: list[dict] = []
    train(TINY, train_pairs, [], _config(epochs=1, max_steps_per_epoch=2), progress=lambda f, m, i: calls.append(i))
    assert [i["step"] for i in calls if i["event"] == "step"] == [1, 2]


def test_resuming_with_another_config_is_refused(pairs, tmp_path):
    train_pairs, _ = pairs
    train(TINY, train_pairs, [], _config(tmp_path, epochs=1))
    with pytest.raises(CheckpointMismatch, match="train_config.lr"):
        train(TINY, train_pairs, [], _config(tmp_path, epochs=1, lr=1e-4))
    train(TINY, train_pairs, [], _config(tmp_path, epochs=1, lr=1e-4), resume=False)  # starts afresh


def test_fine_tuning_starts_from_base_weights(pairs, tmp_path):
    train_pairs, _ = pairs
    torch.manual_seed(123)
    base = build_model(TINY)
    save_model(tmp_path / "base.safetensors", base, metadata={})
    tuned = train(None, train_pairs, [], _config(epochs=1, lr=1e-7, min_lr=0.0, max_steps_per_epoch=1),
                  base_weights=tmp_path / "base.safetensors")
    fresh = train(TINY, train_pairs, [], _config(epochs=1, lr=1e-7, min_lr=0.0, max_steps_per_epoch=1))
    conv = "subnets.0.encoder.0.0.0.weight"
    base_w = base.state_dict()[conv]
    assert torch.allclose(tuned.model.state_dict()[conv], base_w, atol=1e-5)
    assert not torch.allclose(fresh.model.state_dict()[conv], base_w, atol=1e-2)


def test_betas_must_match_the_model_levels(pairs):
    train_pairs, _ = pairs
    with pytest.raises(ValueError, match="2 output levels"):
        train(TINY, train_pairs, [], _config(betas=(0.8, 0.16, 0.04)))


def test_default_betas_are_the_papers_for_three_levels_and_sum_to_one():
    assert default_betas(3) == (0.8, 0.16, 0.04)
    assert sum(default_betas(2)) == pytest.approx(1.0) and default_betas(1) == (1.0,)


@pytest.mark.parametrize(("field", "value"), [("epochs", 0), ("lr", 0.0), ("patch", 8), ("overlap", 1.0)])
def test_invalid_train_config_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_dice_cross_entropy_loss_adds_the_level_weighted_cross_entropy():
    alpha = np.full(6, 1 / 6)
    logits = [torch.randn(2, 6, 16, 16), torch.randn(2, 6, 8, 8)]
    target = torch.randint(0, 6, (2, 16, 16))
    target[:, :4] = 255
    dice_only = DiceCrossEntropyLoss(alpha, (0.8, 0.2))(logits, target)
    assert dice_only == pytest.approx(float(MultiLevelDiceLoss(alpha, (0.8, 0.2))(logits, target)))
    combined = DiceCrossEntropyLoss(alpha, (0.8, 0.2), ce_weight=0.5)(logits, target)
    ce = 0.8 * F.cross_entropy(logits[0], target, ignore_index=255) + 0.2 * F.cross_entropy(
        logits[1], downsample_labels(target, 2), ignore_index=255)
    assert combined == pytest.approx(float(dice_only + 0.5 * ce), rel=1e-5)
