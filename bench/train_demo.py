"""Train the default MUNet on synthetic mosaics and write the demo weights with their held-out scores.

Usage: ``python bench/train_demo.py [--threads 2] [--out inference/weights/demo_munet.safetensors]``

Data (all at the working resolution, 4 µm/px): ``--train-count`` mosaics of ``--size``² px (seeds 0, 1, ...) with
their *partial* labels (the app trains on partial expert labels), one validation mosaic (seed 500, full truth) for
choosing the best epoch, and ``--test-count`` held-out mosaics (seeds 9001, ...; never used for training or model
selection) scored against their *full* truth through ``predict_mosaic`` in paper mode. Training patches are
``--patch`` px (default 128: at equal compute, 4x more Adam steps than 256 px patches; the models are fully
convolutional and infer on 256 px windows). The run checkpoints every epoch under ``bench/out/demo_ckpt`` and resumes
from there if interrupted. The weights are stored as float16 (half the size; the held-out scores are those of the
stored weights).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine a spinning thread burns the CPU its
# sibling (or another process) needs; measured here, a MUNet training step went from ~8 s to ~2.3 s wall.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from inference.ml.infer import evaluate_model, optimise_for_cpu  # noqa: E402
from inference.ml.models import ModelConfig, count_parameters  # noqa: E402
from inference.ml.synthetic import generate_mosaic  # noqa: E402
from inference.ml.train import TrainConfig, train  # noqa: E402
from inference.ml.weights import load_model, save_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VAL_SEED = 500
TEST_SEED = 9001  # held-out seeds start here; training seeds are 0..train_count-1
UM_PER_PX = 4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "inference" / "weights" / "demo_munet.safetensors")
    parser.add_argument("--checkpoint-dir", type=Path, default=ROOT / "bench" / "out" / "demo_ckpt")
    parser.add_argument("--train-count", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--val-size", type=int, default=768)
    parser.add_argument("--test-count", type=int, default=2)
    parser.add_argument("--test-size", type=int, default=1024)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=75, help="steps per epoch (a random subset of the patches)")
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}", flush=True)

    def mosaic(seed: int, size: int):  # noqa: ANN202
        return generate_mosaic(height=size, width=size, um_per_px=UM_PER_PX, seed=seed)

    train_m = [mosaic(s, args.size) for s in range(args.train_count)]
    val_m = mosaic(VAL_SEED, args.val_size)
    test_m = [mosaic(TEST_SEED + i, args.test_size) for i in range(args.test_count)]
    print(f"generated data in {time.perf_counter() - t0:.0f} s", flush=True)

    config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, patch=args.patch, seed=0,
                         max_steps_per_epoch=args.steps, device="cpu", checkpoint_dir=args.checkpoint_dir)

    def progress(fraction: float, message: str, info: dict) -> None:
        if info["event"] == "epoch":
            print(f"{time.perf_counter() - t0:7.0f} s  epoch {info['epoch']:2d}  loss {info['train_loss']:.4f}  "
                  f"val loss {info['val_loss']:.4f}  val mean Dice {info['val_mean_dice']:.4f}  "
                  f"val accuracy {info['val_accuracy']:.4f}", flush=True)

    result = train(ModelConfig(), [(m.image, m.partial) for m in train_m], [(val_m.image, val_m.truth)], config,
                   progress=progress)
    train_seconds = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "trained_by": "bench/train_demo.py",
        "data": {"kind": "synthetic", "um_per_px": UM_PER_PX, "train_seeds": list(range(args.train_count)),
                 "train_size": args.size, "train_labels": "partial", "val_seed": VAL_SEED,
                 "test_seeds": [TEST_SEED + i for i in range(args.test_count)], "test_size": args.test_size},
        "train_config": {k: v for k, v in config.to_dict().items() if k != "checkpoint_dir"},
        "class_weights": result.class_weights.tolist(),
        "betas": list(result.betas),
        "best_epoch": result.best_epoch,
        "history": result.history,
        "train_seconds": round(train_seconds),
    }
    save_model(args.out, result.model, metadata=metadata, half=True)
    stored = load_model(args.out).model
    start = time.perf_counter()
    pooled, per_mosaic = evaluate_model(optimise_for_cpu(stored), [(m.image, m.truth) for m in test_m], mode="paper")
    metadata["heldout"] = {"mode": "paper", "labels": "full truth", **pooled.to_dict(),
                           "per_mosaic_mean_dice": [r.mean_dice for r in per_mosaic]}
    save_model(args.out, stored, metadata=metadata, half=True)
    print(f"held-out evaluation ({args.test_count} mosaics, paper mode) in {time.perf_counter() - start:.0f} s")
    print(pooled.to_markdown())
    print(json.dumps({"parameters": count_parameters(stored), "file_mb": round(args.out.stat().st_size / 2**20, 2),
                      "best_epoch": result.best_epoch, "train_seconds": round(train_seconds),
                      "heldout_mean_dice": pooled.mean_dice, "heldout_accuracy": pooled.accuracy}))


if __name__ == "__main__":
    main()
