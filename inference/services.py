"""Writes for background jobs. Tasks are thin: they claim a ``Job`` row, call one service, report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import Job

logger = logging.getLogger(__name__)

# Progress writes are throttled: a job reports often, the database is written at most this often (s),
# which keeps SQLite free for the web server while the UI still moves every poll.
PROGRESS_WRITE_INTERVAL_S = 0.5

ProgressFn = Callable[..., None]


class JobCancelled(Exception):
    """Raised inside a running job when an admin cancelled it."""


def job_create(*, kind: str, mosaic: Any = None, user: Any = None, params: dict[str, Any] | None = None,
               max_attempts: int = 3) -> Job:
    return Job.objects.create(
        kind=kind, mosaic=mosaic, created_by=user if user is not None and user.is_authenticated else None,
        params=params or {}, max_attempts=max_attempts,
    )


@transaction.atomic
def job_claim(*, job_id: int) -> Job | None:
    """Take a job for running. Returns None when there is nothing to do (done, cancelled, gone,
    or out of attempts, in which case it is marked failed)."""
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.state in (Job.State.SUCCEEDED, Job.State.CANCELLED, Job.State.FAILED):
        return None
    if job.attempts >= job.max_attempts:
        job.state = Job.State.FAILED
        job.error = job.error or f"Gave up after {job.attempts} attempts."
        job.finished_at = timezone.now()
        job.save(update_fields=["state", "error", "finished_at"])
        return None
    job.state = Job.State.RUNNING
    job.attempts = F("attempts") + 1
    now = timezone.now()
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    job.save(update_fields=["state", "attempts", "started_at", "heartbeat_at"])
    job.refresh_from_db()
    return job


class ProgressReporter:
    """Callable handed to services: ``progress(fraction, message, info=None)``; throttled DB writes."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._last_write = 0.0

    def __call__(self, fraction: float, message: str = "", info: dict[str, Any] | None = None,
                 *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_WRITE_INTERVAL_S and fraction < 1.0:
            return
        self._last_write = now
        fields: dict[str, Any] = {
            "progress": max(0.0, min(1.0, float(fraction))),
            "message": message[:255],
            "heartbeat_at": timezone.now(),
        }
        if info is not None:
            fields["info"] = info
        Job.objects.filter(pk=self.job_id).update(**fields)
        state = Job.objects.filter(pk=self.job_id).values_list("state", flat=True).first()
        if state == Job.State.CANCELLED:
            raise JobCancelled(f"Job {self.job_id} was cancelled.")


def job_succeed(*, job_id: int, message: str = "Done") -> None:
    Job.objects.filter(pk=job_id).update(
        state=Job.State.SUCCEEDED, progress=1.0, message=message[:255], error="", finished_at=timezone.now(),
    )


def job_fail(*, job_id: int, error: str) -> None:
    Job.objects.filter(pk=job_id).update(
        state=Job.State.FAILED, error=error, message="Failed", finished_at=timezone.now(),
    )


def job_requeue_after_error(*, job_id: int, error: str) -> bool:
    """After a transient error: back to queued if attempts remain (True), else failed (False)."""
    job = Job.objects.get(pk=job_id)
    if job.attempts < job.max_attempts:
        Job.objects.filter(pk=job_id).update(state=Job.State.QUEUED, error=error, message="Retrying")
        return True
    job_fail(job_id=job_id, error=error)
    return False


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    if job.is_active:
        job.state = Job.State.CANCELLED
        job.finished_at = timezone.now()
        job.message = "Cancelled"
        job.save(update_fields=["state", "finished_at", "message"])
    return job


def run_job(job_id: int, work: Callable[[Job, ProgressReporter], str | None],
            *, permanent_errors: tuple[type[BaseException], ...] = ()) -> None:
    """Claim ``job_id``, run ``work(job, progress)``, record success or failure.

    ``permanent_errors`` fail the job at once with the exception's message (bad input); any other
    exception is re-raised for Celery to retry while attempts remain.
    """
    job = job_claim(job_id=job_id)
    if job is None:
        logger.info("job %s: nothing to do", job_id)
        return
    progress = ProgressReporter(job_id)
    try:
        message = work(job, progress)
    except JobCancelled:
        logger.info("job %s cancelled", job_id)
        return
    except permanent_errors as exc:
        job_fail(job_id=job_id, error=str(exc))
        return
    except Exception as exc:
        logger.exception("job %s failed (attempt %s/%s)", job_id, job.attempts, job.max_attempts)
        if job_requeue_after_error(job_id=job_id, error=f"{exc.__class__.__name__}: {exc}"):
            raise
        return
    job_succeed(job_id=job_id, message=message or "Done")
