"""Segmentation models: MUNet (the paper's) and the baselines it is compared with (U-Net, SegNet, FCN, DeepLab).

Every model follows the contract of ``SegmentationModel``: ``model(x)`` with ``x`` float32 ``[B, C_in, H, W]``
returns a list of logits, finest first, level ``m`` being ``[B, K, H / 2**m, W / 2**m]``.
"""

from __future__ import annotations

import torch
from torch import nn

from inference.ml.models.base import SegmentationModel
from inference.ml.models.config import ARCHITECTURES, ModelConfig
from inference.ml.models.deeplab import DeepLabV3
from inference.ml.models.fcn import FCN
from inference.ml.models.munet import MUNet
from inference.ml.models.segnet import SegNetBasic
from inference.ml.models.unet import UNet

_BUILDERS: dict[str, type[SegmentationModel]] = {
    "munet": MUNet,
    "unet": UNet,
    "segnet": SegNetBasic,
    "fcn": FCN,
    "deeplab": DeepLabV3,
}
assert tuple(_BUILDERS) == ARCHITECTURES

__all__ = [
    "ARCHITECTURES",
    "ModelConfig",
    "SegmentationModel",
    "MUNet",
    "UNet",
    "SegNetBasic",
    "FCN",
    "DeepLabV3",
    "build_model",
    "count_parameters",
    "count_conv_layers",
    "predict_proba",
]


def build_model(config: ModelConfig) -> SegmentationModel:
    """A freshly initialised model for ``config`` (weights from PyTorch's default initialisation)."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"build_model expects a ModelConfig, got {type(config).__name__}")
    return _BUILDERS[config.arch](config)


def count_parameters(model: nn.Module) -> int:
    """Number of learnable parameters (BatchNorm running statistics are buffers and not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_conv_layers(model: nn.Module) -> int:
    """Number of 2-D convolution layers, transposed ones included (the paper's "layers" of Fig. 2)."""
    return sum(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())


def predict_proba(model: SegmentationModel, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities of the finest level: ``[B, C_in, H, W] -> [B, K, H, W]`` (softmax over K).

    Runs in eval mode (BatchNorm running statistics) under ``torch.inference_mode()``; the model's previous
    train/eval mode is restored afterwards. ``x`` must be on the model's device.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return torch.softmax(model(x)[0].float(), dim=1)
    finally:
        model.train(was_training)
