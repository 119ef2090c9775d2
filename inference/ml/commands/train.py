"""``train``: train (or fine-tune) a segmentation model on mosaic folders and write its weights."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from inference.ml.commands._mosaics import WORKING_UM_PER_PX, load_pairs


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on mosaic folders (TIFF + label PNGs) and write a weights file",
        description="Train MUNet (or a baseline) with the paper's multi-level Dice loss on <name>.tif + "
        "<name>_<labels>.png pairs, checkpointing every epoch, and write the weights (safetensors) with the "
        "validation metrics in their metadata.",
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of training mosaics")
    parser.add_argument("--val", type=Path, default=None, help="folder of validation mosaics (optional)")
    parser.add_argument("--labels", default="partial", help="label PNG suffix for training (default 'partial')")
    parser.add_argument("--val-labels", default="truth", help="label PNG suffix for validation (default 'truth')")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    parser.add_argument("--arch", default="munet", help="munet (default), unet, segnet, fcn or deeplab")
    parser.add_argument("--base-channels", type=int, default=None, help="width (default: the architecture's)")
    parser.add_argument("--levels", type=int, default=None, help="MUNet output levels (default 3)")
    parser.add_argument("--base-weights", type=Path, default=None, help="fine-tune from this weights file")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--schedule", choices=("cosine", "plateau", "constant"), default="cosine")
    parser.add_argument("--max-steps-per-epoch", type=int, default=None)
    parser.add_argument("--ce-weight", type=float, default=0.0,
                        help="weight of an added cross-entropy term (default 0: the paper's Dice loss alone)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="where to checkpoint every epoch (default: <out>.ckpt/); a rerun resumes from it")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    parser.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")
    parser.add_argument("--um-per-px", type=float, default=WORKING_UM_PER_PX,
                        help=f"working resolution of the mosaics (default {WORKING_UM_PER_PX})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inference.ml.models import ModelConfig, count_parameters
    from inference.ml.train import TrainConfig, train
    from inference.ml.weights import save_model

    train_pairs = load_pairs(args.data, args.labels, um_per_px=args.um_per_px)
    val_pairs = load_pairs(args.val, args.val_labels, um_per_px=args.um_per_px) if args.val else []
    model_config = None
    if args.base_weights is None or args.base_channels is not None or args.levels is not None:
        model_config = ModelConfig(arch=args.arch, base_channels=args.base_channels, levels=args.levels)
    checkpoint_dir = args.checkpoint_dir or args.out.with_name(args.out.name + ".ckpt")
    config = TrainConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, patch=args.patch, seed=args.seed,
        schedule=args.schedule, max_steps_per_epoch=args.max_steps_per_epoch, device=args.device,
        ce_weight=args.ce_weight,
        checkpoint_dir=checkpoint_dir,
    )
    print(f"training on {len(train_pairs)} mosaic(s), validating on {len(val_pairs)}; checkpoints in {checkpoint_dir}")
    start = time.perf_counter()
    result = train(model_config, train_pairs, val_pairs, config, resume=not args.no_resume,
                   base_weights=args.base_weights)
    best = result.history[result.best_epoch - 1] if result.best_epoch else result.history[-1]
    metadata = {
        "trained_by": "python -m inference.ml train",
        "train_config": config.to_dict(),
        "class_weights": result.class_weights.tolist(),
        "betas": list(result.betas),
        "epoch": best["epoch"],
        "metrics": best["val"],
        "history": result.history,
        "train_mosaics": len(train_pairs),
        "val_mosaics": len(val_pairs),
        "base_weights": str(args.base_weights) if args.base_weights else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(args.out, result.model, metadata=metadata, half=args.half)
    print(f"wrote {args.out} ({count_parameters(result.model)} parameters, epoch {best['epoch']}) "
          f"in {time.perf_counter() - start:.1f} s")
    if best["val"]:
        print(json.dumps({k: best["val"][k] for k in ("accuracy", "mean_dice", "kappa")}))
    return 0
