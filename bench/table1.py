"""The paper's Table 1 on synthetic data: MUNet and the four baselines trained alike, scored on held-out mosaics.

Usage: ``python bench/table1.py [--threads 2] [--models munet,unet,segnet,fcn,deeplab] [--epochs 15 --steps 50 --batch-size 8]
[--width-scale 0.5] [--ce-weight 1.0]``

Every model (the architectures of ``inference.ml.models`` with their default configs, except that the widths,
``base_channels``, are scaled by ``--width-scale``: 0.5 by default, ~1/4 of the FLOPs, so that the five trainings fit
the one-hour budget on 2 CPU cores) gets the same data and the same budget: the same ``TrainConfig`` (epochs × steps
per epoch × batch of patches, Adam, cosine schedule, seed, loss), trained on the *partial*
labels of ``--train-count`` synthetic mosaics of ``--size``² px at 4 µm/px (seeds 0, 1, ...), the best epoch chosen
on one validation mosaic (seed 500). Test: ``--test-count`` mosaics (seeds 9001, ...: never used for training or
selection), predicted whole with ``predict_mosaic`` (paper mode: 256 px windows, 75 % overlap) and scored against
their *full* truth. Also per model: parameters, GFLOP per 256² window (``FlopCounterMode``, a multiply-add = 2 FLOP)
and windows/s at 256² with ``optimise_for_cpu`` (batch 8, best of 2 rounds).

Writes ``bench/out/table1.md``, ``bench/out/table1.json`` and the bar chart ``bench/out/table1.png``. Trained
weights and checkpoints go to ``bench/out/table1/<arch>/``; a rerun resumes (or reuses) them.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from inference.ml.classes import CLASSES  # noqa: E402
from inference.ml.infer import evaluate_model, optimise_for_cpu  # noqa: E402
from inference.ml.models import ModelConfig, build_model, count_parameters  # noqa: E402
from inference.ml.models.config import DEFAULT_BASE_CHANNELS, MIN_BASE_CHANNELS  # noqa: E402
from inference.ml.synthetic import generate_mosaic  # noqa: E402
from inference.ml.train import TrainConfig, train  # noqa: E402
from inference.ml.weights import save_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
ARCHS = ("munet", "unet", "segnet", "fcn", "deeplab")
NAMES = {"munet": "MUNet", "unet": "U-Net", "segnet": "SegNet-basic", "fcn": "FCN (ResNet-32)", "deeplab": "DeepLab v3"}
VAL_SEED = 500
TEST_SEED = 9001
UM_PER_PX = 4.0
SPEED_WINDOWS = 8  # one batch of 256² windows per timed round


def gflop_per_window(config: ModelConfig) -> float:
    with torch.device("meta"):
        model = build_model(config).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 1, 256, 256))
    return counter.get_total_flops() / 1e9


def windows_per_second(model: torch.nn.Module) -> float:
    fast = optimise_for_cpu(model)
    x = torch.rand(SPEED_WINDOWS, 1, 256, 256).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        fast(x[:1])
        for _ in range(2):
            start = time.perf_counter()
            fast(x)
            best = min(best, time.perf_counter() - start)
    return SPEED_WINDOWS / best


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [c.name.split(" (")[0] for c in CLASSES] + ["mean"]
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        values = [v if v is not None else 0.0 for v in row["dice"]] + [row["mean_dice"]]
        ax.bar(np.arange(len(labels)) + (i - (len(rows) - 1) / 2) * width, values, width, label=row["name"])
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set_ylabel("Dice (held-out, full truth)")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncols=len(rows), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(rows: list[dict], setup: str) -> str:
    keys = [c.key for c in CLASSES]
    lines = [setup, "", "| model | base channels | params (M) | GFLOP / 256² | windows/s | accuracy | mean Dice | kappa | "
             + " | ".join(f"Dice {k}" for k in keys) + " |", "|---" + "|---:" * (7 + len(keys)) + "|"]
    for r in rows:
        dice = " | ".join("n/a" if d is None else f"{100 * d:.1f}" for d in r["dice"])
        lines.append(f"| {r['name']} | {r['base_channels']} | {r['params'] / 1e6:.2f} | {r['gflop']:.2f} | {r['windows_per_s']:.2f} | "
                     f"{100 * r['accuracy']:.1f} | {100 * r['mean_dice']:.1f} | {r['kappa']:.3f} | {dice} |")
    for figure in ("sensitivity", "specificity", "dice", "precision"):
        lines += ["", f"{figure.capitalize()} (%)", "", "| class | " + " | ".join(r["name"] for r in rows) + " |",
                  "|---" + "|---:" * len(rows) + "|"]
        for key in keys:
            cells = " | ".join("n/a" if r["report"][figure][key] is None else f"{100 * r['report'][figure][key]:.2f}"
                               for r in rows)
            lines.append(f"| {key} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default bench/out)")
    parser.add_argument("--models", default=",".join(ARCHS))
    parser.add_argument("--train-count", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--val-size", type=int, default=512)
    parser.add_argument("--test-count", type=int, default=2)
    parser.add_argument("--test-size", type=int, default=768)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--steps", type=int, default=50, help="steps per epoch")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width-scale", type=float, default=0.5, help="base_channels = default x this (min 4)")
    parser.add_argument("--ce-weight", type=float, default=1.0,
                        help="cross-entropy term added to the Dice loss, for every model (0: Dice alone)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    archs = [a for a in args.models.split(",") if a]
    t0 = time.perf_counter()
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}", flush=True)

    def mosaic(seed: int, size: int):  # noqa: ANN202
        return generate_mosaic(height=size, width=size, um_per_px=UM_PER_PX, seed=seed)

    train_pairs = [(m.image, m.partial) for m in (mosaic(s, args.size) for s in range(args.train_count))]
    val = mosaic(VAL_SEED, args.val_size)
    test_pairs = [(m.image, m.truth) for m in (mosaic(TEST_SEED + i, args.test_size) for i in range(args.test_count))]
    print(f"generated data in {time.perf_counter() - t0:.0f} s", flush=True)
    setup = (
        f"Synthetic data at {UM_PER_PX:g} µm/px. Training: {args.train_count} mosaics of {args.size}² px (partial "
        f"labels), {args.epochs} epochs × {args.steps} steps × {args.batch_size} patches of {args.patch}² px, Adam "
        f"lr {args.lr:g} cosine, loss multi-level Dice + {args.ce_weight:g} × cross-entropy, same seed for every "
        f"model; widths (base_channels) {args.width_scale:g} × each architecture's default; best epoch on 1 "
        f"validation mosaic of {args.val_size}² px. "
        f"Test: {args.test_count} held-out mosaics of {args.test_size}² px (seeds {TEST_SEED}..), paper-mode tiled "
        f"inference, scored against the full truth. windows/s: 256² windows, batch 8, optimise_for_cpu, "
        f"{args.threads} threads."
    )
    rows = []
    for arch in archs:
        width = max(MIN_BASE_CHANNELS, round(DEFAULT_BASE_CHANNELS[arch] * args.width_scale))
        config = ModelConfig(arch=arch, base_channels=width)
        folder = args.out / "table1" / arch
        tc = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, patch=args.patch, seed=0,
                         max_steps_per_epoch=args.steps, device="cpu", checkpoint_dir=folder,
                         ce_weight=args.ce_weight)
        start = time.perf_counter()

        def progress(fraction: float, message: str, info: dict, arch: str = arch, start: float = start) -> None:
            if info["event"] == "epoch":
                print(f"  {arch} epoch {info['epoch']:2d} loss {info['train_loss']:.4f} val mean Dice "
                      f"{info['val_mean_dice']:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)

        result = train(config, train_pairs, [(val.image, val.truth)], tc, progress=progress)
        train_s = time.perf_counter() - start
        save_model(folder / "best.weights.safetensors", result.model, metadata={"best_epoch": result.best_epoch})
        start = time.perf_counter()
        pooled, _ = evaluate_model(optimise_for_cpu(result.model), test_pairs, mode="paper")
        eval_s = time.perf_counter() - start
        report = pooled.to_dict()
        row = {
            "arch": arch, "name": NAMES[arch], "base_channels": width, "params": count_parameters(result.model),
            "gflop": gflop_per_window(config), "windows_per_s": windows_per_second(result.model),
            "accuracy": pooled.accuracy, "mean_dice": pooled.mean_dice, "kappa": pooled.kappa,
            "dice": [report["dice"][c.key] for c in CLASSES], "report": report, "best_epoch": result.best_epoch,
            "train_seconds": train_s, "eval_seconds": eval_s,
        }
        rows.append(row)
        print(f"{NAMES[arch]}: mean Dice {pooled.mean_dice:.4f}, accuracy {pooled.accuracy:.4f}, best epoch "
              f"{result.best_epoch}, train {train_s:.0f} s, eval {eval_s:.0f} s, {row['windows_per_s']:.2f} windows/s",
              flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, setup + f" Whole bench: {time.perf_counter() - t0:.0f} s.")
    (args.out / "table1.md").write_text(text)
    (args.out / "table1.json").write_text(json.dumps({"setup": setup, "rows": rows}, indent=1))
    chart(rows, args.out / "table1.png")
    print(text)


if __name__ == "__main__":
    main()
