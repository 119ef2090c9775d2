"""SegNet-basic (Badrinarayanan et al., 2017): encoder-decoder that upsamples with the encoder's max-pool indices.

Encoder stage: ``k x k`` conv + BN + ReLU, then 2x2 max-pool remembering the argmax indices. Decoder stage: max-unpool
with those indices (sparse upsampling), ``k x k`` conv + BN (no ReLU, as in SegNet-basic). Constant width
``base_channels`` (64 in the paper); a 1x1 convolution gives the logits. The local response normalisation of the
original is left out (BatchNorm makes it redundant).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.ml.models.base import SegmentationModel
from inference.ml.models.config import ModelConfig


class SegNetBasic(SegmentationModel):
    """``[B, C_in, H, W] -> [logits [B, K, H, W]]``; H, W multiples of ``2**extra['depth']``."""

    def __init__(self, config: ModelConfig) -> None:
        depth, k = int(config.extra["depth"]), int(config.extra["kernel_size"])
        super().__init__(config, required_multiple=2**depth, num_levels=1)
        assert config.base_channels is not None
        c = config.base_channels
        self.encoder = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(config.in_channels if i == 0 else c, c, k, padding=k // 2, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            )
            for i in range(depth)
        )
        self.decoder = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c)) for _ in range(depth)
        )
        self.head = nn.Conv2d(c, config.num_classes, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        indices: list[torch.Tensor] = []
        for block in self.encoder:
            x, idx = F.max_pool2d(block(x), 2, return_indices=True)
            indices.append(idx)
        for block in self.decoder:
            x = block(F.max_unpool2d(x, indices.pop(), 2))
        return [self.head(x)]
