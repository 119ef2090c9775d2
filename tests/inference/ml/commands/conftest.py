from pathlib import Path

import pytest

from inference.ml.cli import main


@pytest.fixture(scope="package")
def mosaic_folder(tmp_path_factory) -> Path:
    """Two 64 x 64 synthetic mosaics at the working resolution (4 µm/px)."""
    out = tmp_path_factory.mktemp("mosaics")
    assert main(["generate", "--out", str(out), "--count", "2", "--height", "64", "--seed", "3"]) == 0
    return out


@pytest.fixture(scope="package")
def tiny_weights(mosaic_folder, tmp_path_factory) -> Path:
    """Weights of a tiny MUNet trained for one epoch by the ``train`` subcommand."""
    out = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    argv = ["train", "--data", str(mosaic_folder), "--val", str(mosaic_folder), "--out", str(out),
            "--base-channels", "4", "--levels", "2", "--epochs", "1", "--patch", "32", "--batch-size", "4",
            "--device", "cpu"]
    assert main(argv) == 0
    return out
