"""Celery tasks of the annotations app: thin wrappers that claim a Job and call one service."""

from __future__ import annotations

import pyvips
from celery import shared_task

from inference.services import run_job

from .imaging import ImageRejected
from .services import mosaic_ingest


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=3)
def ingest_mosaic(job_id: int) -> None:
    run_job(job_id, lambda job, progress: mosaic_ingest(mosaic_id=job.mosaic_id, progress=progress),
            permanent_errors=(ImageRejected, pyvips.Error))
