"""``predict``: segment mosaics with a weights file (tiled inference of the paper, section 3)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from inference.ml.commands._mosaics import WORKING_UM_PER_PX, read_image

UNCERTAINTY_LEVELS = 255  # the uncertainty PNG maps [0, 1] onto 0..255


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment mosaic TIFFs with a weights file",
        description="Write <name>_labels.png (classes 0..5), <name>_uncertainty.png (1 - (p1 - p2) scaled to "
        "0..255), <name>_level<m>.png for the coarser MUNet levels and, with --probabilities, <name>_probs.npy "
        "(float16 [K, H, W]).",
    )
    parser.add_argument("images", type=Path, nargs="+", help="mosaic TIFF(s) at the working resolution")
    parser.add_argument("--weights", type=Path, required=True, help="weights file (.safetensors)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--mode", choices=("paper", "fast"), default="paper",
                        help="paper: 256 px windows, 75 %% overlap; fast: 512 px, 50 %% (default paper)")
    parser.add_argument("--window", type=int, default=None, help="window size (default: the mode's)")
    parser.add_argument("--overlap", type=float, default=None, help="window overlap (default: the mode's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-optimise", action="store_true", help="skip optimise_for_cpu (BatchNorm folding)")
    parser.add_argument("--probabilities", action="store_true", help="also write the probabilities (.npy)")
    parser.add_argument("--um-per-px", type=float, default=WORKING_UM_PER_PX)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inference.ml.infer import optimise_for_cpu, predict_mosaic
    from inference.ml.weights import load_model

    loaded = load_model(args.weights, device=args.device)
    model = loaded.model if args.no_optimise or args.device != "cpu" else optimise_for_cpu(loaded.model)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.images:
        image = read_image(path, um_per_px=args.um_per_px)
        start = time.perf_counter()
        with tqdm(total=1.0, desc=path.name, unit="mosaic", bar_format="{l_bar}{bar}| {elapsed}<{remaining}") as bar:
            def progress(fraction: float, message: str, bar: tqdm = bar) -> None:
                bar.n = round(fraction, 4)
                bar.refresh()

            pred = predict_mosaic(model, image, mode=args.mode, window=args.window, overlap=args.overlap,
                                  batch_size=args.batch_size, device=args.device, progress=progress,
                                  keep_probabilities=args.probabilities)
        stem = path.stem
        Image.fromarray(pred.labels).save(args.out / f"{stem}_labels.png")
        scaled = np.rint(pred.uncertainty * UNCERTAINTY_LEVELS).astype(np.uint8)
        Image.fromarray(scaled).save(args.out / f"{stem}_uncertainty.png")
        for m, level in enumerate(pred.levels[1:], start=1):
            Image.fromarray(level).save(args.out / f"{stem}_level{m}.png")
        if pred.probabilities is not None:
            np.save(args.out / f"{stem}_probs.npy", pred.probabilities)
        counts = np.bincount(pred.labels.ravel(), minlength=pred.num_classes) / pred.labels.size
        shares = ", ".join(f"{c}: {100 * s:.1f} %" for c, s in enumerate(counts))
        print(f"{path.name}: {image.shape[0]} x {image.shape[1]} px, {pred.windows} windows of {pred.window} px, "
              f"{time.perf_counter() - start:.1f} s; class shares {shares}")
    return 0
