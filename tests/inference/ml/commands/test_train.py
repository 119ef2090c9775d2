import pytest

from inference.ml.cli import main
from inference.ml.weights import load_model


def test_train_writes_weights_with_config_and_validation_metrics(tiny_weights):
    loaded = load_model(tiny_weights)
    assert loaded.config.base_channels == 4 and loaded.config.levels == 2
    assert loaded.metadata["epoch"] == 1
    assert 0.0 <= loaded.metadata["metrics"]["accuracy"] <= 1.0
    assert len(loaded.metadata["class_weights"]) == 6


def test_train_checkpoints_beside_the_output(tiny_weights):
    ckpt = tiny_weights.with_name(tiny_weights.name + ".ckpt")
    assert (ckpt / "last.safetensors").exists() and (ckpt / "last_state.pt").exists()


def test_train_refuses_a_folder_without_labelled_mosaics(tmp_path):
    with pytest.raises(SystemExit, match="no <name>.tif"):
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "w.safetensors")])
