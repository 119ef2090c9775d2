"""``generate``: write synthetic RCM mosaics (TIFF image + truth and partial label PNGs)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

from inference.ml.synthetic import generate_mosaic, write_mosaic

MAX_COUNT = 10_000  # more mosaics than this in one call is surely a typo (each is up to hundreds of MB)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write synthetic RCM mosaics with full and partial labels",
        description="Write N synthetic mosaics (seeds S..S+N-1) as <prefix>_<seed>.tif with <prefix>_<seed>_truth.png "
        "and <prefix>_<seed>_partial.png.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--count", type=int, default=1, help="number of mosaics (default 1)")
    parser.add_argument("--height", type=int, default=3000, help="height in px (default 3000)")
    parser.add_argument("--width", type=int, default=None, help="width in px (default: the height)")
    parser.add_argument("--um-per-px", type=float, default=4.0, help="µm per pixel (default 4: working resolution)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first mosaic (default 0)")
    parser.add_argument("--shift", type=float, default=0.0, help="domain shift in [0, 1] (default 0)")
    parser.add_argument("--prefix", default="synthetic", help="file name prefix (default 'synthetic')")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.count <= MAX_COUNT:
        raise SystemExit(f"--count must be in 1..{MAX_COUNT}, got {args.count}")
    width = args.width if args.width is not None else args.height
    start = time.perf_counter()
    for seed in tqdm(range(args.seed, args.seed + args.count), desc="mosaics", unit="mosaic"):
        mosaic = generate_mosaic(height=args.height, width=width, um_per_px=args.um_per_px, seed=seed, shift=args.shift)
        write_mosaic(mosaic, args.out, f"{args.prefix}_{seed}")
    print(
        f"wrote {args.count} mosaic(s) of {args.height} x {width} px to {args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0
