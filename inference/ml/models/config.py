"""Architecture configuration shared by every segmentation model, stored with the weights.

``ModelConfig`` is a plain, JSON-safe description: ``to_dict()`` gives only ``str``/``int``/``list``/``dict`` values
so it can be written into a safetensors header or a database row and read back with ``from_dict()``.

Defaults depend on the architecture: ``base_channels`` and ``levels`` left as ``None`` take the architecture's
default (``DEFAULT_BASE_CHANNELS``, ``DEFAULT_LEVELS``), and missing ``extra`` options take ``EXTRA_DEFAULTS``; after
construction every field holds its resolved value, so a saved config records exactly what was built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.ml.classes import NUM_CLASSES

ARCHITECTURES: tuple[str, ...] = ("munet", "unet", "segnet", "fcn", "deeplab")

# Strides of the finest U-Net of MUNet and of the plain U-Net: the paper uses at most 4 (section 3), which keeps a
# 256 px window at 16 px in the bottleneck; 5 would leave 8 px and a 32 px input multiple.
MUNET_MAX_DEPTH = 4
UNET_MAX_DEPTH = 5
# SegNet-basic has 4 encoder stages; 5 is the most that a 256 px window still supports (8 px at the bottom).
SEGNET_MAX_DEPTH = 5
# FCN's ResNet-32 encoder has 5 basic blocks per stage (6n + 2 = 32 with n = 5); 9 (ResNet-56) is a generous cap.
FCN_MAX_BLOCKS_PER_STAGE = 9
# DeepLab's atrous rates are in feature-map pixels; beyond 36 (the paper's largest, for output stride 8) a 3x3 kernel
# on a 256 px window's feature map only sees padding.
DEEPLAB_MAX_RATE = 36
DEEPLAB_OUTPUT_STRIDES: tuple[int, ...] = (8, 16)
# Channel widths: below 4 BatchNorm statistics are meaningless; above 256 the first stage alone of any of these
# models exceeds what a CPU trains in reasonable time, and the parameter budget ("a few M") is blown.
MIN_BASE_CHANNELS = 4
MAX_BASE_CHANNELS = 256
MAX_IN_CHANNELS = 16  # grayscale RCM is 1; 16 leaves room for stacked channels without accepting nonsense

# base_channels = 24 puts the default 3-level MUNet at ~5.7 M parameters (the paper: ~6 M); SegNet-basic uses 64
# everywhere as in its paper; FCN's ResNet-32 starts at 16; DeepLab's small ResNet starts at 32.
DEFAULT_BASE_CHANNELS: dict[str, int] = {"munet": 24, "unet": 24, "segnet": 64, "fcn": 16, "deeplab": 32}
DEFAULT_LEVELS: dict[str, int] = {"munet": 3, "unet": 1, "segnet": 1, "fcn": 1, "deeplab": 1}

EXTRA_DEFAULTS: dict[str, dict[str, Any]] = {
    # depth: strides of the finest U-Net; level m has depth - m strides
    "munet": {"depth": MUNET_MAX_DEPTH},
    "unet": {"depth": 4},
    "segnet": {"depth": 4, "kernel_size": 7},
    "fcn": {"blocks_per_stage": 5},
    "deeplab": {"output_stride": 8, "rates": [6, 12, 18], "blocks": [2, 2, 2, 2]},
}


def _require_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


@dataclass
class ModelConfig:
    """What to build: architecture name, input channels, classes, output levels, width and arch-specific options.

    ``extra`` keys per architecture (defaults in ``EXTRA_DEFAULTS``):
    munet ``depth`` (strides of the finest U-Net, 1..4; needs ``levels <= depth``), unet ``depth`` (1..5),
    segnet ``depth`` (1..5) and ``kernel_size`` (odd, 3..7), fcn ``blocks_per_stage`` (1..9),
    deeplab ``output_stride`` (8 or 16), ``rates`` (1 to 4 atrous rates, each 1..36) and ``blocks`` (4 stage sizes, 1..4).
    """

    arch: str = "munet"
    in_channels: int = 1
    num_classes: int = NUM_CLASSES
    levels: int | None = None
    base_channels: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; allowed: {', '.join(ARCHITECTURES)}")
        _require_int("in_channels", self.in_channels, 1, MAX_IN_CHANNELS)
        _require_int("num_classes", self.num_classes, 2, 255)  # 255 is the unlabelled value
        if self.base_channels is None:
            self.base_channels = DEFAULT_BASE_CHANNELS[self.arch]
        _require_int("base_channels", self.base_channels, MIN_BASE_CHANNELS, MAX_BASE_CHANNELS)
        if self.levels is None:
            self.levels = DEFAULT_LEVELS[self.arch]
        if not isinstance(self.extra, Mapping):
            raise ValueError(f"extra must be a dict, got {type(self.extra).__name__}")
        allowed = EXTRA_DEFAULTS[self.arch]
        unknown = sorted(set(self.extra) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown extra option(s) {unknown} for arch {self.arch!r}; allowed: {', '.join(sorted(allowed))}"
            )
        # Copy defaults in, turning tuples into lists so the dict survives a JSON round trip unchanged.
        merged = {**allowed, **self.extra}
        self.extra = {k: list(v) if isinstance(v, tuple | list) else v for k, v in merged.items()}
        self._validate_arch_options()

    def _validate_arch_options(self) -> None:
        x = self.extra
        assert self.levels is not None
        if self.arch == "munet":
            depth = _require_int("extra['depth'] (munet)", x["depth"], 1, MUNET_MAX_DEPTH)
            _require_int("levels (munet, at most extra['depth'] so the coarsest U-Net keeps 1 stride)",
                         self.levels, 1, depth)
            return
        if self.levels != 1:
            raise ValueError(f"arch {self.arch!r} has a single output level: levels must be 1, got {self.levels!r}")
        if self.arch == "unet":
            _require_int("extra['depth'] (unet)", x["depth"], 1, UNET_MAX_DEPTH)
        elif self.arch == "segnet":
            _require_int("extra['depth'] (segnet)", x["depth"], 1, SEGNET_MAX_DEPTH)
            k = _require_int("extra['kernel_size'] (segnet)", x["kernel_size"], 3, 7)
            if k % 2 == 0:
                raise ValueError(f"extra['kernel_size'] (segnet) must be odd (3, 5 or 7), got {k}")
        elif self.arch == "fcn":
            _require_int("extra['blocks_per_stage'] (fcn)", x["blocks_per_stage"], 1, FCN_MAX_BLOCKS_PER_STAGE)
        elif self.arch == "deeplab":
            if x["output_stride"] not in DEEPLAB_OUTPUT_STRIDES:
                raise ValueError(
                    f"extra['output_stride'] (deeplab) must be one of {DEEPLAB_OUTPUT_STRIDES}, got {x['output_stride']!r}"
                )
            rates = x["rates"]
            if not isinstance(rates, list) or not 1 <= len(rates) <= 4:
                raise ValueError(f"extra['rates'] (deeplab) must be a list of 1 to 4 integers, got {rates!r}")
            for r in rates:
                _require_int("each of extra['rates'] (deeplab)", r, 1, DEEPLAB_MAX_RATE)
            blocks = x["blocks"]
            if not isinstance(blocks, list) or len(blocks) != 4:
                raise ValueError(f"extra['blocks'] (deeplab) must be a list of 4 integers, got {blocks!r}")
            for b in blocks:
                _require_int("each of extra['blocks'] (deeplab)", b, 1, 4)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (``extra`` with defaults filled in)."""
        return {
            "arch": self.arch,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "levels": self.levels,
            "base_channels": self.base_channels,
            "extra": json.loads(json.dumps(self.extra)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of ``to_dict``; unknown keys are an error (they would be silently ignored otherwise)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"model config must be a dict, got {type(data).__name__}")
        allowed = ("arch", "in_channels", "num_classes", "levels", "base_channels", "extra")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"unknown model config key(s) {unknown}; allowed: {', '.join(allowed)}")
        return cls(**{k: (dict(v) if k == "extra" else v) for k, v in data.items()})
