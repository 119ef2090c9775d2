"""The training loop of the paper (section 4): Adam on the multi-level selective Dice loss over grid patches.

Every epoch goes over the grid patches of the training mosaics (``PatchDataset``, 50 % overlap, fresh augmentation
each epoch) in a shuffled order, then validates on the grid patches of the validation mosaics (no augmentation, no
overlap beyond what covers the borders): validation loss and the Table-1 figures of ``inference.ml.metrics``
(finest level, labelled pixels only). Class weights ``alpha`` come from the training labels (``class_weights``).

Repeatable: the model is initialised after ``torch.manual_seed(seed)``; the shuffle order of epoch ``e`` comes from
a generator seeded with ``(seed, e)``, the augmentation draws depend on ``(seed, e, patch)``, and the global torch
RNG is re-seeded at the start of every epoch, so nothing depends on the RNG state of earlier epochs and a resumed run
gives the same weights as an uninterrupted one (on the same device and thread count).

Checkpoints (when ``checkpoint_dir`` is set), written at the end of every epoch, each file replaced atomically:

* ``last.safetensors``: the weights with their model config and metadata (epoch, train config, class weights,
  betas, validation metrics, history) via ``inference.ml.weights.save_model``;
* ``best.safetensors``: a copy of ``last.safetensors`` from the epoch with the best score (validation mean Dice;
  minus the training loss when there is no validation data);
* ``last_state.pt``, written last: the weights again, with the optimizer and scheduler state, epoch, best score and
  history: plain tensors, numbers, strings, lists and dicts only, read back with ``torch.load(weights_only=True)``.
  It is the one file a resume reads, so a process killed between two of these writes resumes from a consistent
  epoch (the previous one when this file was not yet replaced).

``train(..., resume=True)`` continues from ``last_*`` when they were written with the same model config, training
config and data (else it raises and says why); ``resume=False`` starts afresh and overwrites them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from inference.ml.classes import UNLABELLED
from inference.ml.losses import DEFAULT_BETAS, MultiLevelDiceLoss, class_weights, downsample_labels
from inference.ml.metrics import SegmentationReport, confusion_matrix
from inference.ml.models import ModelConfig, build_model
from inference.ml.models.base import SegmentationModel
from inference.ml.sampling import DEFAULT_OVERLAP, DEFAULT_PATCH, PatchDataset
from inference.ml.weights import load_model, read_header, save_model

Pair = tuple[np.ndarray, np.ndarray]  # (image (H, W) uint8, labels (H, W) uint8 with 255 = unlabelled)
ProgressFn = Callable[[float, str, dict[str, Any]], None]
Schedule = Literal["cosine", "plateau", "constant"]

CHECKPOINT_FORMAT = "rcmweb-checkpoint-1"
LAST_WEIGHTS = "last.safetensors"
LAST_STATE = "last_state.pt"
BEST_WEIGHTS = "best.safetensors"

MAX_EPOCHS = 10_000  # far beyond any useful run on these data sizes; a larger number is a typo
MAX_BATCH_SIZE = 256  # 256 patches of 256² already need ~40 GB of activations for MUNet
MIN_PATCH = 16  # the smallest input multiple of the models (MUNet's 2**depth); the model checks its own multiple
MAX_PATCH = 1024  # 4x the paper's window; beyond it a batch no longer fits a CPU's memory
MAX_LR = 1.0  # Adam with a step this large only diverges
PLATEAU_FACTOR = 0.5  # reduce-on-plateau halves the learning rate...
PLATEAU_PATIENCE = 3  # ...after 3 epochs without improvement of the validation loss: ~10 % of a typical run
MAX_CE_WEIGHT = 10.0  # beyond 10x the Dice term the loss is cross-entropy with a Dice garnish
VAL_OVERLAP = 0.0  # validation patches tile the mosaic (each pixel once, except where the last row/column is flush)
# Keys of TrainConfig that do not change the result: a run may resume with different values.
RESUMABLE_DIFFERENCES = ("device", "checkpoint_dir", "num_workers", "restore_best")


def default_betas(levels: int) -> tuple[float, ...]:
    """Level weights for ``levels`` output levels: the paper's ``(0.8, 0.16, 0.04)`` for 3 levels; for other counts,
    geometric weights with the paper's ratio 5 between neighbours (finest heaviest), summing to 1."""
    if levels == len(DEFAULT_BETAS):
        return DEFAULT_BETAS
    raw = [5.0 ** (-m) for m in range(levels)]
    return tuple(r / sum(raw) for r in raw)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return dev


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (JSON-safe via ``to_dict``)."""

    epochs: int = 30
    lr: float = 1e-3  # Adam's initial step (Keras' default, as the paper used Keras)
    batch_size: int = 8
    patch: int = DEFAULT_PATCH
    overlap: float = DEFAULT_OVERLAP
    seed: int = 0
    betas: tuple[float, ...] | None = None  # one per model level, finest first; None → default_betas(levels)
    schedule: Schedule = "cosine"  # cosine decay to min_lr over the epochs, reduce-on-plateau, or constant
    min_lr: float = 1e-5
    weight_decay: float = 0.0
    augment: bool = True
    max_steps_per_epoch: int | None = None  # cap on batches per epoch (a random subset of the patches), or all
    device: str = "auto"
    checkpoint_dir: Path | None = None
    num_workers: int = 0  # DataLoader worker processes (0: load patches in the training process)
    restore_best: bool = True  # the returned model holds the best epoch's weights (else the last epoch's)
    # Weight of an added cross-entropy term (0 = the paper's Dice loss alone). Cross-entropy gives every labelled
    # pixel a gradient from the first step, where the Dice gradient is weak; see ``DiceCrossEntropyLoss``.
    ce_weight: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            ("epochs", isinstance(self.epochs, int) and 1 <= self.epochs <= MAX_EPOCHS, f"an integer in [1, {MAX_EPOCHS}]"),
            ("lr", 0 < self.lr <= MAX_LR, f"in (0, {MAX_LR}]"),
            ("min_lr", 0 <= self.min_lr <= self.lr, "in [0, lr]"),
            ("batch_size", isinstance(self.batch_size, int) and 1 <= self.batch_size <= MAX_BATCH_SIZE,
             f"an integer in [1, {MAX_BATCH_SIZE}]"),
            ("patch", isinstance(self.patch, int) and MIN_PATCH <= self.patch <= MAX_PATCH,
             f"an integer in [{MIN_PATCH}, {MAX_PATCH}]"),
            ("overlap", 0 <= self.overlap < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("schedule", self.schedule in ("cosine", "plateau", "constant"), "'cosine', 'plateau' or 'constant'"),
            ("max_steps_per_epoch", self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
             "None or >= 1"),
            ("num_workers", self.num_workers >= 0, ">= 0"),
            ("ce_weight", 0 <= self.ce_weight <= MAX_CE_WEIGHT, f"in [0, {MAX_CE_WEIGHT}]"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name} must be {allowed}, got {getattr(self, name)!r}")
        if self.betas is not None:
            self.betas = tuple(float(b) for b in self.betas)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas) if self.betas is not None else None
        data["checkpoint_dir"] = str(self.checkpoint_dir) if self.checkpoint_dir is not None else None
        return data


@dataclass
class TrainResult:
    model: SegmentationModel  # best epoch's weights if restore_best and validation data, else the last; eval mode
    history: list[dict[str, Any]]  # per epoch: epoch, lr, train_loss, val_loss, val (metrics dict), seconds
    best_epoch: int
    last_checkpoint: Path | None  # last.safetensors (its state in last_state.pt beside it)
    best_checkpoint: Path | None  # best.safetensors
    class_weights: np.ndarray  # alpha [K] used by the loss
    betas: tuple[float, ...]
    config: TrainConfig
    model_config: ModelConfig


class CheckpointMismatch(ValueError):
    """The checkpoint in ``checkpoint_dir`` belongs to another run (model config, training config or data)."""


def data_fingerprint(pairs: Sequence[Pair]) -> str:
    """SHA-256 over the shapes and bytes of the (image, labels) pairs: identifies a training set for resuming."""
    digest = hashlib.sha256()
    for image, labels in pairs:
        for arr in (image, labels):
            a = np.ascontiguousarray(arr)
            digest.update(f"{a.shape}{a.dtype}".encode())
            digest.update(a.data)
    return digest.hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_save_model(path: Path, model: SegmentationModel, metadata: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_model(tmp, model, metadata=metadata)
    os.replace(tmp, path)


def _json_safe(value: Any) -> Any:
    """Round-trip through JSON so the history holds only plain types (no NaN: those become None upstream)."""
    return json.loads(json.dumps(value))


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.min_lr)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE, min_lr=config.min_lr
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=_constant_one)


def _constant_one(epoch: int) -> float:
    return 1.0


class DiceCrossEntropyLoss(nn.Module):
    """``MultiLevelDiceLoss + ce_weight * sum_m beta_m * CE_m``: the paper's loss plus a cross-entropy term.

    ``CE_m`` is the mean cross-entropy over the labelled pixels of level ``m`` (labels downsampled as for the Dice
    term, 255 ignored). With ``ce_weight = 0`` this is exactly ``MultiLevelDiceLoss``. Same inputs: logits per level
    ``[B, K, H/2**m, W/2**m]``, target ``[B, H, W]`` int64.
    """

    def __init__(self, alpha: np.ndarray, betas: Sequence[float], ce_weight: float = 0.0) -> None:
        super().__init__()
        self.dice = MultiLevelDiceLoss(alpha, betas)
        self.ce_weight = float(ce_weight)

    def forward(self, logits: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        loss = self.dice(logits, target)
        if self.ce_weight == 0.0:
            return loss
        k = int(self.dice.alpha.numel())
        ce = logits[0].new_zeros(())
        for m, (beta, level_logits) in enumerate(zip(self.dice.betas, logits, strict=True)):
            level_target = downsample_labels(target, 2**m, num_classes=k)
            if bool((level_target != UNLABELLED).any()):
                ce = ce + beta * F.cross_entropy(level_logits.float(), level_target, ignore_index=UNLABELLED)
        return loss + self.ce_weight * ce


def _validate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module, device: torch.device,
              num_classes: int) -> tuple[float, SegmentationReport]:
    """Mean loss over the validation batches and the report of the finest level's arg-max (labelled pixels)."""
    model.eval()
    losses: list[float] = []
    weights: list[int] = []
    confusion = np.zeros((num_classes, num_classes), np.int64)
    with torch.inference_mode():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            outputs = model(x)
            losses.append(float(loss_fn(outputs, y)))
            weights.append(int(x.shape[0]))
            pred = outputs[0].argmax(1).to(torch.uint8).cpu().numpy()
            confusion += confusion_matrix(y.to(torch.uint8).cpu().numpy(), pred, num_classes)
    return float(np.average(losses, weights=weights)), SegmentationReport.from_confusion(confusion)


def _check_pairs(name: str, pairs: Sequence[Pair]) -> None:
    for n, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"{name}[{n}] must be an (image, labels) pair")


def train(
    model_config: ModelConfig | None,
    train_pairs: Sequence[Pair],
    val_pairs: Sequence[Pair],
    config: TrainConfig,
    *,
    progress: ProgressFn | None = None,
    resume: bool = True,
    base_weights: Path | None = None,
) -> TrainResult:
    """Train a model on ``train_pairs`` and validate every epoch on ``val_pairs`` (may be empty).

    model_config: what to build; ``None`` takes the config of ``base_weights``. base_weights: a weights file
    (``inference.ml.weights``) to start from (fine-tuning) instead of a fresh initialisation; its config must equal
    ``model_config`` when both are given. progress: ``progress(fraction, message, info)`` after every step
    (``info``: ``event="step"``, epoch, epochs, step, steps, loss, lr) and every epoch (``event="epoch"``, plus
    train_loss, val_loss, val_mean_dice, val_accuracy, best_epoch); an exception raised by it stops training (the
    last completed epoch stays checkpointed). Returns a :class:`TrainResult`.
    """
    _check_pairs("train_pairs", train_pairs)
    _check_pairs("val_pairs", val_pairs)
    if not train_pairs:
        raise ValueError("train_pairs is empty: at least one (image, labels) pair is needed")
    if base_weights is not None:
        base_config, _ = read_header(Path(base_weights))
        if model_config is None:
            model_config = base_config
        elif model_config.to_dict() != base_config.to_dict():
            raise ValueError(
                f"model_config {model_config.to_dict()} differs from the config of base_weights {base_config.to_dict()}"
            )
    if model_config is None:
        raise ValueError("model_config is required when base_weights is not given")
    device = resolve_device(config.device)

    torch.manual_seed(config.seed)
    if base_weights is not None:
        model = load_model(Path(base_weights)).model
    else:
        model = build_model(model_config)
    model.to(device)
    levels = int(model.num_levels)
    betas = config.betas if config.betas is not None else default_betas(levels)
    if len(betas) != levels:
        raise ValueError(f"TrainConfig.betas has {len(betas)} weights but the model has {levels} output levels")
    num_classes = int(model_config.num_classes)
    alpha = class_weights((labels for _, labels in train_pairs), num_classes=num_classes)
    loss_fn = DiceCrossEntropyLoss(alpha, betas, config.ce_weight).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _make_scheduler(optimizer, config)

    train_set = PatchDataset(train_pairs, patch=config.patch, overlap=config.overlap, augment=config.augment,
                             seed=config.seed)
    if len(train_set) == 0:
        raise ValueError("no training patch has a labelled pixel: nothing to learn from")
    val_set = PatchDataset(val_pairs, patch=config.patch, overlap=VAL_OVERLAP, augment=False) if val_pairs else None
    val_loader = (DataLoader(val_set, batch_size=config.batch_size, shuffle=False, num_workers=config.num_workers)
                  if val_set is not None and len(val_set) else None)
    batches = math.ceil(len(train_set) / config.batch_size)
    steps = batches if config.max_steps_per_epoch is None else min(batches, config.max_steps_per_epoch)

    identity = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model_config.to_dict(),
        "train_config": {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_DIFFERENCES},
        "train_data": data_fingerprint(train_pairs),
        "val_data": data_fingerprint(val_pairs),
        "base_weights": _file_digest(Path(base_weights)) if base_weights is not None else None,
    }
    history: list[dict[str, Any]] = []
    best_score = -math.inf
    best_epoch = 0
    best_state: dict[str, torch.Tensor] | None = None  # weights of the best epoch (CPU copy), for restore_best
    start_epoch = 1
    ckpt = config.checkpoint_dir
    last_path = best_path = None
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
        last_path, best_path = ckpt / LAST_WEIGHTS, ckpt / BEST_WEIGHTS
        if resume and (ckpt / LAST_STATE).exists():
            state = torch.load(ckpt / LAST_STATE, weights_only=True, map_location="cpu")
            saved = json.loads(state["identity"])
            if saved != identity:
                diff = sorted(k for k in identity if saved.get(k) != identity[k] and k != "train_config")
                saved_cfg = saved.get("train_config") or {}
                diff += sorted(f"train_config.{k}" for k, v in identity["train_config"].items() if saved_cfg.get(k) != v)
                raise CheckpointMismatch(
                    f"checkpoint in {ckpt} was written by another run (differs in {', '.join(diff)}); "
                    "use another checkpoint_dir or resume=False to start afresh"
                )
            if "model" in state:  # the weights of the state's own epoch
                model.load_state_dict(state["model"])
            else:  # a checkpoint from before the state held the weights: last.safetensors must be the same epoch
                loaded = load_model(last_path, device=device)
                if loaded.metadata.get("epoch") != state["epoch"]:
                    raise CheckpointMismatch(
                        f"{last_path} is from epoch {loaded.metadata.get('epoch')} but {LAST_STATE} from epoch "
                        f"{state['epoch']} (interrupted while writing); use resume=False to start afresh"
                    )
                model.load_state_dict(loaded.model.state_dict())
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history = json.loads(state["history"])
            best_score, best_epoch = float(state["best_score"]), int(state["best_epoch"])
            start_epoch = int(state["epoch"]) + 1
            if best_path.exists():
                best_state = _cpu_state(load_model(best_path).model)

    total_steps = steps * config.epochs
    bar = tqdm(total=total_steps, initial=steps * (start_epoch - 1), desc="train", unit="step",
               disable=None, file=sys.stderr, dynamic_ncols=True)
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            started = time.perf_counter()
            torch.manual_seed(config.seed * MAX_EPOCHS + epoch)
            train_set.set_epoch(epoch)
            generator = torch.Generator().manual_seed(config.seed * MAX_EPOCHS + epoch)
            loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=generator,
                                num_workers=config.num_workers)
            lr = float(optimizer.param_groups[0]["lr"])
            model.train()
            loss_sum, seen = 0.0, 0
            for step, (x, y) in enumerate(loader, start=1):
                if step > steps:
                    break
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                value = float(loss.detach())
                loss_sum += value * x.shape[0]
                seen += int(x.shape[0])
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{value:.4f}")
                if progress is not None:
                    done = (epoch - 1) * steps + step
                    progress(done / total_steps, f"epoch {epoch}/{config.epochs} step {step}/{steps} loss {value:.4f}",
                             {"event": "step", "epoch": epoch, "epochs": config.epochs, "step": step, "steps": steps,
                              "loss": value, "lr": lr})
            train_loss = loss_sum / max(seen, 1)
            record: dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_loss": None, "val": None}
            if val_loader is not None:
                val_loss, report = _validate(model, val_loader, loss_fn, device, num_classes)
                record["val_loss"] = val_loss
                record["val"] = {k: v for k, v in report.to_dict().items() if k != "confusion"}
                score = report.mean_dice if not math.isnan(report.mean_dice) else -math.inf
            else:
                val_loss = train_loss
                score = -train_loss
            if config.schedule == "plateau":
                scheduler.step(val_loss)
            else:
                scheduler.step()
            record["seconds"] = time.perf_counter() - started
            history.append(_json_safe(record))
            improved = score > best_score
            if improved:
                best_score, best_epoch = score, epoch
                if config.restore_best and val_loader is not None:
                    best_state = _cpu_state(model)
            if ckpt is not None and last_path is not None and best_path is not None:
                metadata = {
                    "kind": CHECKPOINT_FORMAT,
                    "epoch": epoch,
                    "train_config": config.to_dict(),
                    "class_weights": alpha.tolist(),
                    "betas": list(betas),
                    "metrics": record["val"],
                    "train_loss": train_loss,
                    "val_loss": record["val_loss"],
                    "history": history,
                }
                _atomic_save_model(last_path, model, metadata)
                if improved:
                    tmp = best_path.with_name(best_path.name + ".tmp")
                    shutil.copyfile(last_path, tmp)
                    os.replace(tmp, best_path)
                # Last: the file a resume reads. Until it is replaced, a resume starts from the previous epoch.
                _atomic_torch_save({
                    "identity": json.dumps(identity),
                    "epoch": epoch,
                    "model": _cpu_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": json.dumps(history),
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                }, ckpt / LAST_STATE)
            if progress is not None:
                progress(epoch * steps / total_steps, f"epoch {epoch}/{config.epochs} done, loss {train_loss:.4f}", {
                    "event": "epoch", "epoch": epoch, "epochs": config.epochs, "step": steps, "steps": steps,
                    "loss": train_loss, "lr": lr, "train_loss": train_loss, "val_loss": record["val_loss"],
                    "val_mean_dice": (record["val"] or {}).get("mean_dice"),
                    "val_accuracy": (record["val"] or {}).get("accuracy"), "best_epoch": best_epoch,
                })
    finally:
        bar.close()

    if config.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        last_checkpoint=last_path,
        best_checkpoint=best_path,
        class_weights=alpha,
        betas=tuple(betas),
        config=config,
        model_config=model_config,
    )


__all__ = ["CheckpointMismatch", "DiceCrossEntropyLoss", "TrainConfig", "TrainResult", "data_fingerprint", "default_betas", "train"]
