"""``evaluate``: Table-1 figures of a weights file on a folder of labelled mosaics."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from inference.ml.commands._mosaics import WORKING_UM_PER_PX, load_pairs


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a weights file on labelled mosaics (sensitivity, specificity, Dice, precision)",
        description="Predict every <name>.tif of a folder (tiled inference) and compare with <name>_<labels>.png "
        "(255 = unlabelled, ignored); print the paper's Table-1 figures pooled over the mosaics.",
    )
    parser.add_argument("--weights", type=Path, required=True, help="weights file (.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="folder of mosaics with label PNGs")
    parser.add_argument("--labels", default="truth", help="label PNG suffix (default 'truth')")
    parser.add_argument("--mode", choices=("paper", "fast"), default="paper")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the pooled report as JSON")
    parser.add_argument("--um-per-px", type=float, default=WORKING_UM_PER_PX)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inference.ml.infer import evaluate_model, optimise_for_cpu
    from inference.ml.weights import load_model

    loaded = load_model(args.weights, device=args.device)
    model = loaded.model if args.device != "cpu" else optimise_for_cpu(loaded.model)
    pairs = load_pairs(args.data, args.labels, um_per_px=args.um_per_px)
    start = time.perf_counter()
    with tqdm(total=1.0, desc="evaluate", bar_format="{l_bar}{bar}| {elapsed}<{remaining}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.n = round(fraction, 4)
            bar.set_postfix_str(message.split(":")[0])

        pooled, per_mosaic = evaluate_model(model, pairs, progress=progress, mode=args.mode,
                                            batch_size=args.batch_size, device=args.device)
    print(f"{len(pairs)} mosaic(s) in {time.perf_counter() - start:.1f} s, mode {args.mode}")
    print(pooled.to_markdown())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"pooled": pooled.to_dict(), "per_mosaic": [r.to_dict() for r in per_mosaic],
                  "weights": str(args.weights), "mode": args.mode}
        args.json.write_text(json.dumps(report, indent=1))
    return 0
