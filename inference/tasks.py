"""Celery tasks of the inference app: thin wrappers that claim a Job and call one service."""

from __future__ import annotations

from celery import shared_task

from .ml.train import CheckpointMismatch
from .models import Job
from .services import run_job
from .services.predictions import prediction_run
from .services.training import TrainingRejected, finetune_abandon, finetune_run


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=3)
def predict_mosaic(job_id: int) -> None:
    run_job(job_id, lambda job, progress: prediction_run(job=job, progress=progress),
            permanent_errors=(FileNotFoundError,))


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=10, max_retries=3)
def train_model(job_id: int) -> None:
    try:
        run_job(job_id, lambda job, progress: finetune_run(job=job, progress=progress),
                permanent_errors=(TrainingRejected, CheckpointMismatch))
    finally:
        job = Job.objects.filter(pk=job_id).first()
        if job is not None and job.state in (Job.State.CANCELLED, Job.State.FAILED):
            finetune_abandon(job=job)
