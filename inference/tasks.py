"""Celery tasks of the inference app: thin wrappers that claim a Job and call one service."""

from __future__ import annotations

from celery import shared_task

from .services import run_job
from .services.predictions import prediction_run


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=3)
def predict_mosaic(job_id: int) -> None:
    run_job(job_id, lambda job, progress: prediction_run(job=job, progress=progress),
            permanent_errors=(FileNotFoundError,))
