"""Settings shared by every environment. Secrets and services come from the environment."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Where uploads, pyramids, label rasters, weights and the embedded broker live.
DATA_DIR = Path(os.environ.get("RCMWEB_DATA_DIR", BASE_DIR / "var"))
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "annotations",
    "inference",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "rcmweb.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "rcmweb.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server and worker write the same file: wait for the lock instead of failing; WAL lets readers go on
    # while one writes, and synchronous=NORMAL (safe with WAL) halves an edit's commit time.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
# OpenSeadragon comes from npm (package.json) and is served from node_modules, never copied.
STATICFILES_DIRS = [("vendor/openseadragon", BASE_DIR / "node_modules" / "openseadragon" / "build" / "openseadragon")]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "rcmweb API",
    "DESCRIPTION": "Review and correct MUNet annotations of reflectance confocal microscopy mosaics.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI is served from the sidecar package: no CDN needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The tile views are plain Django views (no DRF cost per tile); rcmweb.schema documents them.
    "ENUM_NAME_OVERRIDES": {
        "MosaicStatusEnum": "annotations.models.Mosaic.Status",
        "ModelVersionStatusEnum": "inference.models.ModelVersion.Status",
    },
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "rcmweb.schema.add_tile_paths"],
}

# --- Celery -------------------------------------------------------------------------------
# Default: kombu's filesystem transport, a broker that needs no server.
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")


def filesystem_broker_options(folder: Path) -> dict[str, object]:
    """kombu's filesystem transport keeps messages, processed files and control exchanges under ``folder``."""
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(BROKER_DIR)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for the next one
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long jobs: take one at a time
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "annotations.tasks.*": {"queue": "inference"},
    "inference.tasks.predict*": {"queue": "inference"},
    "inference.tasks.train*": {"queue": "training"},
    "inference.tasks.evaluate*": {"queue": "training"},
}

# --- Domain limits --------------------------------------------------------------------------
# Working resolution of labels, predictions and edits (paper: 1/4 of ~1 µm/px).
WORKING_UM_PER_PX = float(os.environ.get("RCMWEB_WORKING_UM_PER_PX", "4.0"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("RCMWEB_LOG_LEVEL", "INFO")},
    # libvips reports every resampling decision at INFO; keep its warnings and errors only.
    "loggers": {"pyvips": {"level": "WARNING"}},
}
# Largest upload accepted. 2 GiB admits a 20000 × 20000 px RGB 8-bit (1.2 GB) or 16-bit gray (0.8 GB)
# uncompressed TIFF with room for tags and padding; larger files are refused while streaming.
RCMWEB_MAX_UPLOAD_BYTES = int(os.environ.get("RCMWEB_MAX_UPLOAD_BYTES", str(2 * 1024**3)))
# Uploads above this size are streamed to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
# Tiled-inference mode of prediction jobs: "fast" (documented in inference/ml/infer.py; ≥ 99 % of pixels as in
# paper mode at a fraction of the time) or "paper" (256 px windows, 75 % overlap, as in the MUNet paper).
RCMWEB_PREDICT_MODE = os.environ.get("RCMWEB_PREDICT_MODE", "fast")
# Number format of prediction jobs on CPU (inference/services/predictions.py): "auto" (bfloat16 where the CPU has
# native bfloat16 convolutions, else float32), "float32", "bfloat16", or "int8" (torchao static quantization compiled
# by inductor: fastest in paper mode, no faster than bfloat16 in fast mode; needs a C++ compiler and costs a warm-up
# per worker process and window size; falls back to the float path if it cannot be built).
RCMWEB_PREDICT_PRECISION = os.environ.get("RCMWEB_PREDICT_PRECISION", "auto")
# A running job whose heartbeat is older than this (s) lost its worker and is queued again.
RCMWEB_JOB_STALE_AFTER_S = float(os.environ.get("RCMWEB_JOB_STALE_AFTER_S", "60"))
# How often a worker looks for such jobs (s).
RCMWEB_JOB_REAPER_INTERVAL_S = float(os.environ.get("RCMWEB_JOB_REAPER_INTERVAL_S", "15"))
