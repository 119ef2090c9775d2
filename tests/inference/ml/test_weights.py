"""Tests of inference/ml/weights.py: safetensors round trip with config and metadata, and refusal of bad files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from inference.ml.models import ModelConfig, build_model
from inference.ml.weights import KEY_CONFIG, KEY_FORMAT, WEIGHTS_FORMAT_VERSION, load_model, read_header, save_model

TINY = 4


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _trained_tiny_munet() -> torch.nn.Module:
    """A tiny MUNet whose BatchNorm running statistics moved away from their initial values."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(base_channels=TINY))
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 1, 32, 32))
    return model.eval()


def test_round_trip_restores_config_metadata_and_outputs(tmp_path: Path) -> None:
    model = _trained_tiny_munet()
    metadata = {"class_weights": np.array([0.5, 0.25, 0.25]), "metrics": {"dice": 0.7}, "epochs": 3}
    path = tmp_path / "m.safetensors"
    save_model(path, model, metadata=metadata)
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.metadata == {"class_weights": [0.5, 0.25, 0.25], "metrics": {"dice": 0.7}, "epochs": 3}
    assert not loaded.model.training
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        for ours, theirs in zip(loaded.model(x), model(x), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_half_precision_file_is_smaller_and_loads_as_float32(tmp_path: Path) -> None:
    model = _trained_tiny_munet()
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_model(full, model, metadata={})
    save_model(half, model, metadata={}, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x)[0], model(x)[0], rtol=0, atol=5e-2)


def test_read_header_gives_config_without_building(tmp_path: Path) -> None:
    model = build_model(ModelConfig(arch="segnet", base_channels=TINY))
    save_model(tmp_path / "s.safetensors", model, metadata={"note": "x"})
    assert read_header(tmp_path / "s.safetensors") == (model.config, {"note": "x"})


def test_tensors_not_matching_the_config_are_refused_with_the_mismatch(tmp_path: Path) -> None:
    small = build_model(ModelConfig(base_channels=TINY))
    claimed = ModelConfig(base_channels=2 * TINY)
    tensors = {k: v.contiguous() for k, v in small.state_dict().items()}
    header = {KEY_FORMAT: WEIGHTS_FORMAT_VERSION, KEY_CONFIG: json.dumps(claimed.to_dict())}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=header)
    with pytest.raises(ValueError, match=r"subnets\.0\.encoder\.0\.0\.0\.weight: file \(4, 7, 3, 3\) vs config \(8, 7"):
        load_model(tmp_path / "bad.safetensors")


def test_missing_tensors_are_named(tmp_path: Path) -> None:
    model = build_model(ModelConfig(arch="unet", base_channels=TINY))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "net.head.weight"}
    header = {KEY_FORMAT: WEIGHTS_FORMAT_VERSION, KEY_CONFIG: json.dumps(model.config.to_dict())}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=header)
    with pytest.raises(ValueError, match=r"missing net\.head\.weight"):
        load_model(tmp_path / "bad.safetensors")


def test_file_without_rcmweb_header_is_refused(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an rcmweb weights file"):
        load_model(tmp_path / "other.safetensors")


def test_non_json_metadata_is_refused(tmp_path: Path) -> None:
    model = build_model(ModelConfig(arch="unet", base_channels=TINY))
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_model(tmp_path / "m.safetensors", model, metadata={"when": object()})
