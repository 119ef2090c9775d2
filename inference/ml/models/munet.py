"""MUNet, the multiresolution nested U-Net of the paper (section 3.1).

Level ``m`` (0 = finest) sees the image average-pooled by ``2**m``. The coarsest U-Net (level ``M - 1``) takes that
image alone; every finer U-Net takes its image concatenated with the bilinearly upsampled softmax probabilities of the
level below, so it refines a prior segmentation. Each finer U-Net is one stride deeper than the coarser one, the finest
having ``extra['depth']`` strides (paper: 4), so with ``M = 3`` the depths are 2, 3, 4 from coarse to fine. ``M = 1``
is a plain U-Net.

Input multiple: level ``m`` runs on ``H / 2**m`` with ``depth - m`` strides, so it needs ``H`` divisible by
``2**m * 2**(depth - m) = 2**depth`` whatever ``m``: the whole model needs multiples of ``2**depth`` (16 by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.ml.models.base import SegmentationModel
from inference.ml.models.config import ModelConfig
from inference.ml.models.unet import UNetCore


class MUNet(SegmentationModel):
    """``[B, C_in, H, W] -> [logits_0 [B, K, H, W], logits_1 [B, K, H/2, W/2], ..., logits_{M-1}]``."""

    def __init__(self, config: ModelConfig) -> None:
        depth = int(config.extra["depth"])
        assert config.levels is not None and config.base_channels is not None
        levels = config.levels
        super().__init__(config, required_multiple=2**depth, num_levels=levels)
        self.depths = tuple(depth - m for m in range(levels))  # finest first
        subnets = []
        for m in range(levels):
            coarsest = m == levels - 1
            in_ch = config.in_channels + (0 if coarsest else config.num_classes)
            subnets.append(UNetCore(in_ch, config.num_classes, depth=depth - m, base_channels=config.base_channels))
        self.subnets = nn.ModuleList(subnets)  # index m = level m, finest first

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        images = [x]
        for _ in range(1, self.num_levels):
            images.append(F.avg_pool2d(images[-1], 2))
        coarse_to_fine: list[torch.Tensor] = []
        prior: torch.Tensor | None = None
        for m in reversed(range(self.num_levels)):
            inp = images[m] if prior is None else torch.cat([images[m], prior], dim=1)
            out = self.subnets[m](inp)
            coarse_to_fine.append(out)
            if m > 0:
                prior = F.interpolate(torch.softmax(out, dim=1), scale_factor=2, mode="bilinear", align_corners=False)
        return coarse_to_fine[::-1]
