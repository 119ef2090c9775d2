"""``python -m inference.ml <subcommand>``: see ``inference.ml.cli``."""

from inference.ml.cli import main

raise SystemExit(main())
