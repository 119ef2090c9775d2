"""Subcommands of ``python -m inference.ml``: one module per subcommand, each with ``add_parser(subparsers)``
(see ``inference.ml.cli``)."""
