"""DeepLab v3-style model (Chen et al., 2017) without CRF: dilated ResNet encoder, ASPP, bilinear upsampling.

Encoder: 3x3 stride-2 stem and 4 stages of basic blocks (``extra['blocks']``, default 2 each, widths ``c, 2c, 4c, 8c``).
Stages 1 and 2 stride by 2 (1/8 of the input); with ``output_stride`` 8 stages 3 and 4 keep that resolution with
dilation 2 and 4, with ``output_stride`` 16 stage 3 strides and stage 4 uses dilation 2.
ASPP on the last stage: a 1x1 branch, one 3x3 branch per atrous rate (default 6, 12, 18), and image pooling (global
average, 1x1 conv, broadcast back); concatenated, projected by 1x1 conv + BN + ReLU, then a 3x3 BConv and a 1x1
classifier. Logits are bilinearly upsampled to the input size. The image-pooling branch has no BatchNorm: on a 1x1 map
BN fails for a batch of one and adds nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.ml.models.base import SegmentationModel
from inference.ml.models.config import ModelConfig
from inference.ml.models.layers import BConv, resnet_stage, strided_stem

ASPP_WIDTH_FACTOR = 4  # ASPP branches have 4 * base_channels channels (128 for the default 32), half the encoder's last


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling. ``[B, in, h, w] -> [B, out, h, w]``."""

    def __init__(self, in_channels: int, out_channels: int, rates: list[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                           nn.ReLU(inplace=True))]
            + [BConv(in_channels, out_channels, dilation=r) for r in rates]
        )
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True)
        )
        n = len(rates) + 2
        self.project = nn.Sequential(
            nn.Conv2d(n * out_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.image_pool(x).expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3(SegmentationModel):
    """``[B, C_in, H, W] -> [logits [B, K, H, W]]``; H, W multiples of ``extra['output_stride']``."""

    def __init__(self, config: ModelConfig) -> None:
        os_ = int(config.extra["output_stride"])
        super().__init__(config, required_multiple=os_, num_levels=1)
        assert config.base_channels is not None
        c, blocks, rates = config.base_channels, [int(b) for b in config.extra["blocks"]], config.extra["rates"]
        s3, d3, d4 = (1, 2, 4) if os_ == 8 else (2, 1, 2)
        self.stem = strided_stem(config.in_channels, c)
        self.stage1 = resnet_stage(c, c, blocks[0], stride=2)
        self.stage2 = resnet_stage(c, 2 * c, blocks[1], stride=2)
        self.stage3 = resnet_stage(2 * c, 4 * c, blocks[2], stride=s3, dilation=d3)
        self.stage4 = resnet_stage(4 * c, 8 * c, blocks[3], dilation=d4)
        width = ASPP_WIDTH_FACTOR * c
        self.aspp = ASPP(8 * c, width, [int(r) for r in rates])
        self.head = nn.Sequential(BConv(width, width), nn.Conv2d(width, config.num_classes, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        size = x.shape[-2:]
        f = self.stage4(self.stage3(self.stage2(self.stage1(self.stem(x)))))
        logits = self.head(self.aspp(f))
        return [F.interpolate(logits, size=size, mode="bilinear", align_corners=False)]

