"""Settings for a developer's machine and for ``make run``: debug on, embedded defaults."""

from __future__ import annotations

import os

from .base import *  # noqa: F403

DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "local-development-only-not-secret")
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", *os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")]

# Serve static files (and OpenSeadragon from node_modules) straight from the finders: no collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

DATA_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405 - SQLite and media need the folder on a fresh clone
