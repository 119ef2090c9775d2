"""FCN (Long et al., 2015) on a ResNet-32-style encoder, with FCN-8s-style skip fusion.

Encoder: a 3x3 stride-2 stem, then 3 stages of ``extra['blocks_per_stage']`` basic blocks (5 as in ResNet-32: 6n + 2
= 32) with widths ``c, 2c, 4c`` (``c = base_channels``, 16 in ResNet-32), each stage starting with a stride of 2, so the
stages end at 1/4, 1/8 and 1/16 of the input. The stride-2 stem and first stage (ResNet-32 keeps CIFAR's 32 px at full
resolution) give the coarsest scores enough context on a 256 px window.

Decoder (FCN-8s pattern, shifted to strides 16/8/4): 1x1 score layers on each stage; the coarsest score is upsampled
2x by a transposed convolution initialised to bilinear interpolation and summed with the next score, twice; the fused
1/4 score is bilinearly upsampled to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.ml.models.base import SegmentationModel
from inference.ml.models.config import ModelConfig
from inference.ml.models.layers import resnet_stage, strided_stem

FCN_OUTPUT_STRIDE = 16  # stem + 3 strided stages


def bilinear_upsampling_kernel(channels: int, factor: int) -> torch.Tensor:
    """``[channels, channels, 2 * factor, 2 * factor]`` weights that make ``ConvTranspose2d(stride=factor,
    padding=factor // 2)`` a per-channel bilinear upsampling (channel i maps only to channel i)."""
    size = 2 * factor
    centre = (size - 1) / 2
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    kernel2d = ramp[:, None] * ramp[None, :]
    weight = torch.zeros(channels, channels, size, size)
    for i in range(channels):
        weight[i, i] = kernel2d
    return weight


class FCN(SegmentationModel):
    """``[B, C_in, H, W] -> [logits [B, K, H, W]]``; H, W multiples of 16."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, required_multiple=FCN_OUTPUT_STRIDE, num_levels=1)
        assert config.base_channels is not None
        c, n, k = config.base_channels, int(config.extra["blocks_per_stage"]), config.num_classes
        self.stem = strided_stem(config.in_channels, c)
        self.stage1 = resnet_stage(c, c, n, stride=2)
        self.stage2 = resnet_stage(c, 2 * c, n, stride=2)
        self.stage3 = resnet_stage(2 * c, 4 * c, n, stride=2)
        self.score1 = nn.Conv2d(c, k, 1)
        self.score2 = nn.Conv2d(2 * c, k, 1)
        self.score3 = nn.Conv2d(4 * c, k, 1)
        self.up3 = nn.ConvTranspose2d(k, k, 4, stride=2, padding=1, bias=False)
        self.up2 = nn.ConvTranspose2d(k, k, 4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            self.up3.weight.copy_(bilinear_upsampling_kernel(k, 2))
            self.up2.weight.copy_(bilinear_upsampling_kernel(k, 2))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        size = x.shape[-2:]
        f1 = self.stage1(self.stem(x))  # 1/4
        f2 = self.stage2(f1)  # 1/8
        f3 = self.stage3(f2)  # 1/16
        s = self.up3(self.score3(f3)) + self.score2(f2)
        s = self.up2(s) + self.score1(f1)
        return [F.interpolate(s, size=size, mode="bilinear", align_corners=False)]
