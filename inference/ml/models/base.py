"""Base class of every segmentation model: the input contract and the common attributes.

Contract: ``model(x)`` with ``x`` float32 ``[B, C_in, H, W]`` (grayscale in 0..1) returns a list of logits, one per
output level, finest first; level ``m`` is ``[B, K, H / 2**m, W / 2**m]``. ``H`` and ``W`` must be positive
multiples of ``required_multiple``.
"""

from __future__ import annotations

import torch
from torch import nn

from inference.ml.models.config import ModelConfig


class SegmentationModel(nn.Module):
    """Holds ``config``, ``required_multiple`` and ``num_levels``, and checks inputs against them."""

    def __init__(self, config: ModelConfig, *, required_multiple: int, num_levels: int) -> None:
        super().__init__()
        self.config = config
        self.required_multiple = required_multiple
        self.num_levels = num_levels

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a floating ``[B, C_in, H, W]`` tensor with H, W multiples of
        ``required_multiple``; the message says what is allowed."""
        c, r = self.config.in_channels, self.required_multiple
        allowed = f"allowed: float tensor [B, {c}, H, W] with H and W positive multiples of {r}"
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{self.config.arch}: input must be a torch.Tensor, got {type(x).__name__}; {allowed}")
        if x.ndim != 4:
            raise ValueError(f"{self.config.arch}: input must be 4-D, got shape {tuple(x.shape)}; {allowed}")
        if not x.is_floating_point():
            raise ValueError(f"{self.config.arch}: input dtype must be floating, got {x.dtype}; {allowed}")
        if x.shape[0] < 1:
            raise ValueError(f"{self.config.arch}: empty batch, shape {tuple(x.shape)}; {allowed}")
        if x.shape[1] != c:
            raise ValueError(
                f"{self.config.arch}: input has {x.shape[1]} channel(s), expected {c} (in_channels); {allowed}"
            )
        h, w = int(x.shape[2]), int(x.shape[3])
        if h < r or w < r or h % r or w % r:
            raise ValueError(f"{self.config.arch}: input size {h}x{w} is not a multiple of {r}; {allowed}")
