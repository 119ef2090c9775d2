"""The Celery application: configuration from Django settings (``CELERY_*``), tasks from apps."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rcmweb.settings.local")
# Idle OpenMP threads of PyTorch sleep instead of spinning: on a shared 2-core machine (web server, worker, a
# browser) spinning threads starve each other; measured here, a MUNet training step went from ~8 s to ~2.3 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = Celery("rcmweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def ensure_broker_folders() -> None:
    """kombu's filesystem transport needs its folders to exist before the first publish or consume."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@app.on_after_configure.connect
def _after_configure(sender: Celery, **kwargs: object) -> None:
    ensure_broker_folders()


def job_reaper_interval_s() -> float:
    """How often (s) a worker looks for jobs whose worker died: a dead job waits at most this plus the stale
    time. Default 15 s: a cheap indexed query, a quarter of the default stale time."""
    from django.conf import settings

    return float(getattr(settings, "RCMWEB_JOB_REAPER_INTERVAL_S", 15.0))


@signals.worker_ready.connect
def _recover_jobs_on_start(sender: object = None, **kwargs: object) -> None:
    """At start, queue again what a dead worker left behind, then keep watching in a daemon thread."""
    import threading

    from django.db import close_old_connections

    from inference.services import jobs_recover_stale

    def watch() -> None:
        first = True
        while True:
            try:
                close_old_connections()
                jobs_recover_stale(include_queued=first)
                first = False
            except Exception:  # keep watching: a database hiccup must not stop recovery for good
                logging.getLogger(__name__).exception("job recovery failed")
            time.sleep(job_reaper_interval_s())

    threading.Thread(target=watch, name="job-recovery", daemon=True).start()
