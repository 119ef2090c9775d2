"""U-Net (Ronneberger et al., 2015) with BConv blocks: the sub-network of MUNet and the plain U-Net baseline."""

from __future__ import annotations

import torch
from torch import nn

from inference.ml.models.base import SegmentationModel
from inference.ml.models.config import ModelConfig
from inference.ml.models.layers import DoubleBConv


class UNetCore(nn.Module):
    """U-Net with ``depth`` 2x2 max-pool strides; stage ``j`` has ``base_channels * 2**j`` channels.

    Encoder: ``depth + 1`` double-BConv blocks (the last is the bottleneck); decoder: ``depth`` times a 2x2 transposed
    convolution (stride 2), concatenation with the encoder skip, a double-BConv block; a 1x1 convolution gives logits.
    That is ``5 * depth + 3`` convolution layers. ``[B, in, H, W] -> [B, K, H, W]`` with H, W multiples of
    ``2**depth``.
    """

    def __init__(self, in_channels: int, num_classes: int, *, depth: int, base_channels: int) -> None:
        super().__init__()
        widths = [base_channels * 2**j for j in range(depth + 1)]
        self.encoder = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoder.append(DoubleBConv(prev, w))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for j in reversed(range(depth)):
            self.up.append(nn.ConvTranspose2d(widths[j + 1], widths[j], 2, stride=2))
            self.decoder.append(DoubleBConv(2 * widths[j], widths[j]))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.up, self.decoder, strict=True):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)


class UNet(SegmentationModel):
    """Plain U-Net baseline (``extra['depth']`` strides, default 4). Returns ``[logits [B, K, H, W]]``."""

    def __init__(self, config: ModelConfig) -> None:
        depth = int(config.extra["depth"])
        super().__init__(config, required_multiple=2**depth, num_levels=1)
        assert config.base_channels is not None
        self.net = UNetCore(config.in_channels, config.num_classes, depth=depth, base_channels=config.base_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        return [self.net(x)]
