"""The Celery application: configuration from Django settings (``CELERY_*``), tasks from apps."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rcmweb.settings.local")

app = Celery("rcmweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
