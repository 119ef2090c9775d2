"""``gallery``: write a PNG showing each class's synthetic texture next to its label colour."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference.ml.synthetic import make_gallery


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gallery", help="write a PNG of the synthetic textures of every class")
    parser.add_argument("--out", type=Path, required=True, help="PNG path to write")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(make_gallery(args.out, seed=args.seed))
    return 0
