"""One round of fine-tuning from expert labels: its defaults and data choices, without Django.

The app's training job (``inference.services.training.finetune_run``) and the loop benchmark (``bench/loop.py``)
build their round from these, so the benchmark's figures speak for the app's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from inference.ml.train import TrainConfig

# Defaults sized for a 2-core machine and measured by bench/loop.py (simulated experts correcting the most
# uncertain 10 % of shifted mosaics): a round of about a minute or two there.
# One pass over the corrections: in the bench's trials every further epoch lowered the held-out Dice again (the
# validation mosaics' Dice fell with it), most likely as the round learns the corrections' class mix, skewed
# towards what the model hesitated on, instead of the new domain.
DEFAULT_EPOCHS = 1
DEFAULT_LR = 1e-4  # a tenth of the from-scratch rate: fine-tuning nudges, it does not relearn
DEFAULT_STEPS_PER_EPOCH = 40  # cap on batches per epoch: a large set of corrections still makes a round of minutes
# Cross-entropy added to the selective Dice loss (``TrainConfig.ce_weight``). In the bench's trials the Dice loss
# alone made the held-out Dice worse after the round (shifted background turned into artifact); with this term
# the same round recovered most of the Dice lost to the shift.
DEFAULT_CE_WEIGHT = 1.0
# Training patches: the paper's 256 px, smaller (a multiple of 16, MUNet's stride product) only for mosaics
# smaller than that; below 64 px a patch holds too little context to learn patterns from.
DEFAULT_PATCH = 256
PATCH_MULTIPLE = 16
MIN_PATCH = 64
# Share of the training mosaics kept aside to pick the best epoch (never the held-out ones).
VALIDATION_SHARE = 0.2


def validation_count(mosaics: int) -> int:
    """How many of ``mosaics`` training mosaics are kept for validation (the first ones; none below two)."""
    return int(mosaics * VALIDATION_SHARE) if mosaics >= 2 else 0


def finetune_patch(shapes: Iterable[tuple[int, ...]]) -> int:
    """Training patch for mosaics of these ``(H, W)`` shapes: ``DEFAULT_PATCH``, or the smallest side rounded down
    to ``PATCH_MULTIPLE``. Raises ``ValueError`` when that is under ``MIN_PATCH``."""
    smallest = min(min(shape) for shape in shapes)
    patch = min(DEFAULT_PATCH, smallest // PATCH_MULTIPLE * PATCH_MULTIPLE)
    if patch < MIN_PATCH:
        raise ValueError(f"A training mosaic is only {smallest} working pixels wide; at least {MIN_PATCH} are needed.")
    return patch


def finetune_config(*, epochs: int = DEFAULT_EPOCHS, lr: float = DEFAULT_LR,
                    steps_per_epoch: int = DEFAULT_STEPS_PER_EPOCH, ce_weight: float = DEFAULT_CE_WEIGHT, seed: int = 0,
                    patch: int = DEFAULT_PATCH, checkpoint_dir: Path | None = None, device: str = "auto") -> TrainConfig:
    """The trainer's configuration for one round (everything not named here is ``TrainConfig``'s default)."""
    return TrainConfig(epochs=epochs, lr=lr, seed=seed, patch=patch, max_steps_per_epoch=steps_per_epoch,
                       ce_weight=ce_weight, checkpoint_dir=checkpoint_dir, device=device)


__all__ = ["DEFAULT_CE_WEIGHT", "DEFAULT_EPOCHS", "DEFAULT_LR", "DEFAULT_PATCH", "DEFAULT_STEPS_PER_EPOCH", "MIN_PATCH", "PATCH_MULTIPLE",
           "VALIDATION_SHARE", "finetune_config", "finetune_patch", "validation_count"]
