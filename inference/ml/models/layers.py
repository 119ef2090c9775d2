"""Building blocks shared by the models: BConv (conv3x3 + BN + ReLU) and the ResNet basic block."""

from __future__ import annotations

import torch
from torch import nn


class BConv(nn.Sequential):
    """The paper's basic layer (Fig. 2): 3x3 convolution (no bias, BN follows), BatchNorm, ReLU.

    ``[B, in, H, W] -> [B, out, H, W]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleBConv(nn.Sequential):
    """Two BConv layers, the block of every U-Net stage. ``[B, in, H, W] -> [B, out, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(BConv(in_channels, out_channels), BConv(out_channels, out_channels))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN, identity (or 1x1 conv + BN projection) shortcut, ReLU after the sum.

    ``[B, in, H, W] -> [B, out, H / stride, W / stride]``; ``dilation`` widens the 3x3 kernels (DeepLab).
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def resnet_stage(in_channels: int, out_channels: int, blocks: int, *, stride: int = 1, dilation: int = 1
                 ) -> nn.Sequential:
    """``blocks`` basic blocks; the first one changes width and applies ``stride``."""
    layers = [BasicBlock(in_channels, out_channels, stride=stride, dilation=dilation)]
    layers += [BasicBlock(out_channels, out_channels, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def strided_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 stride-2 conv + BN + ReLU. ``[B, in, H, W] -> [B, out, H/2, W/2]``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
