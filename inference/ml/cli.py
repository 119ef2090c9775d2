"""Command line of the ML core: ``python -m inference.ml <subcommand> ...``.

Subcommands live in the ``inference.ml.commands`` package, one module each, and are found there automatically:
to add one, create ``inference/ml/commands/<name>.py`` exposing

    def add_parser(subparsers: argparse._SubParsersAction) -> None:
        parser = subparsers.add_parser("<name>", help="...")
        parser.add_argument(...)
        parser.set_defaults(func=run)

    def run(args: argparse.Namespace) -> int:  # exit status
        ...

Import heavy modules (torch, models) inside ``run`` so that ``--help`` and the other subcommands stay quick.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Sequence

from inference.ml import commands


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per module of ``inference.ml.commands``."""
    parser = argparse.ArgumentParser(
        prog="python -m inference.ml", description="rcmweb ML core: data, training, inference."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<subcommand>")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the chosen subcommand and return its exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
