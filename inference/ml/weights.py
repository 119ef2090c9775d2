"""Saving and loading models as safetensors files that carry their architecture config and metadata.

The safetensors header's ``__metadata__`` (string to string) holds:
``rcmweb.format`` (``WEIGHTS_FORMAT_VERSION``), ``rcmweb.config`` (``ModelConfig.to_dict()`` as JSON),
``rcmweb.metadata`` (the caller's dict as JSON: class weights, metrics, training summary...) and ``rcmweb.dtype``
(``float32`` or ``float16``). Tensors are the model's ``state_dict`` (BatchNorm statistics included). Loading never
unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from inference.ml.models import build_model
from inference.ml.models.base import SegmentationModel
from inference.ml.models.config import ModelConfig

WEIGHTS_FORMAT_VERSION = "1"
KEY_FORMAT = "rcmweb.format"
KEY_CONFIG = "rcmweb.config"
KEY_METADATA = "rcmweb.metadata"
KEY_DTYPE = "rcmweb.dtype"
MAX_LISTED_MISMATCHES = 10  # enough to diagnose a wrong config without a screen-long error message


@dataclass(frozen=True)
class LoadedModel:
    model: SegmentationModel  # in eval mode, on the requested device, float32
    config: ModelConfig
    metadata: dict[str, Any]


def _json_default(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON-serialisable")


def save_model(path: Path, model: SegmentationModel, *, metadata: dict[str, Any], half: bool = False) -> None:
    """Write ``model``'s weights and config, plus ``metadata`` (JSON-serialisable; NumPy arrays and tensors become
    lists), to the safetensors file ``path``. ``half=True`` stores floating tensors as float16 (half the size;
    loading converts back to float32)."""
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise ValueError("model has no ModelConfig in .config: build it with build_model()")
    try:
        metadata_json = json.dumps(metadata, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable (finite numbers, str keys): {exc}") from exc
    dtype = torch.float16 if half else torch.float32
    tensors = {
        name: (t.detach().to(dtype) if t.is_floating_point() else t.detach()).cpu().contiguous()
        for name, t in model.state_dict().items()
    }
    header = {
        KEY_FORMAT: WEIGHTS_FORMAT_VERSION,
        KEY_CONFIG: json.dumps(config.to_dict()),
        KEY_METADATA: metadata_json,
        KEY_DTYPE: "float16" if half else "float32",
    }
    save_file(tensors, str(path), metadata=header)


def read_header(path: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Config and metadata of a weights file, without loading tensors."""
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    return _parse_header(path, header)


def _parse_header(path: Path, header: dict[str, str]) -> tuple[ModelConfig, dict[str, Any]]:
    if header.get(KEY_FORMAT) != WEIGHTS_FORMAT_VERSION or KEY_CONFIG not in header:
        raise ValueError(
            f"{path}: not an rcmweb weights file (header {KEY_FORMAT}={header.get(KEY_FORMAT)!r}, expected "
            f"{WEIGHTS_FORMAT_VERSION!r}, and a {KEY_CONFIG} entry)"
        )
    try:
        config = ModelConfig.from_dict(json.loads(header[KEY_CONFIG]))
        metadata = json.loads(header.get(KEY_METADATA, "{}"))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable config or metadata in header: {exc}") from exc
    return config, metadata


def load_model(path: Path, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model described in the header of ``path`` and load its weights (as float32, eval mode).

    Raises ``ValueError`` naming the tensors that are missing, unexpected or of the wrong shape when the file's
    tensors do not match its config.
    """
    with safe_open(str(path), framework="pt") as f:
        config, metadata = _parse_header(path, f.metadata() or {})
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    model = build_model(config)
    expected = model.state_dict()
    problems = [f"missing {name}" for name in expected if name not in tensors]
    problems += [f"unexpected {name}" for name in tensors if name not in expected]
    problems += [
        f"{name}: file {tuple(tensors[name].shape)} vs config {tuple(t.shape)}"
        for name, t in expected.items()  # model order, so the first layer that differs is listed first
        if name in tensors and tensors[name].shape != t.shape
    ]
    if problems:
        shown = "; ".join(problems[:MAX_LISTED_MISMATCHES])
        more = f" (and {len(problems) - MAX_LISTED_MISMATCHES} more)" if len(problems) > MAX_LISTED_MISMATCHES else ""
        raise ValueError(f"{path}: tensors do not match config {config.to_dict()}: {shown}{more}")
    state = {
        name: t.to(expected[name].dtype) if t.is_floating_point() else t for name, t in tensors.items()
    }
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return LoadedModel(model=model, config=config, metadata=metadata)
