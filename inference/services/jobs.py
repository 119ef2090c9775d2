"""Writes for background jobs. Tasks are thin: they claim a ``Job`` row, call one service, report."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..models import Job

logger = logging.getLogger(__name__)

# Progress writes are throttled: a job reports often, the database is written at most this often (s),
# which keeps SQLite free for the web server while the UI still moves every poll.
PROGRESS_WRITE_INTERVAL_S = 0.5
# A running job's worker stamps ``heartbeat_at`` this often (s), even inside a long step without progress.
JOB_HEARTBEAT_S = 5.0


def job_stale_after_s() -> float:
    """A running job whose heartbeat is older than this (s) lost its worker; it is queued again.
    Default 60 s: twelve missed heartbeats, far above any database hiccup, well below a person's patience."""
    return float(getattr(settings, "RCMWEB_JOB_STALE_AFTER_S", 60.0))

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
    """Take a job for running. Returns None when there is nothing to do: done, cancelled, gone, running
    in a live worker (fresh heartbeat: a duplicate message), or out of attempts (then marked failed)."""
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.state in (Job.State.SUCCEEDED, Job.State.CANCELLED, Job.State.FAILED):
        return None
    if job.state == Job.State.RUNNING and job.heartbeat_at is not None and (
            timezone.now() - job.heartbeat_at).total_seconds() < job_stale_after_s():
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


class _Heartbeat(threading.Thread):
    """Stamps the job's heartbeat while its work runs, so a dead worker is told from a slow step."""

    def __init__(self, job_id: int) -> None:
        super().__init__(name=f"job-{job_id}-heartbeat", daemon=True)
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            # beat at least three times per stale period, so one late beat never looks like a dead worker
            while not self.stopped.wait(min(JOB_HEARTBEAT_S, job_stale_after_s() / 3)):
                Job.objects.filter(pk=self.job_id, state=Job.State.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=JOB_HEARTBEAT_S * 2)


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
    # Inside a caller's transaction (tests, eager runs) a second connection could not see or would wait on the row.
    heartbeat = None if connection.in_atomic_block else _Heartbeat(job_id)
    if heartbeat is not None:
        heartbeat.start()
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
    finally:
        if heartbeat is not None:
            heartbeat.stop()
    job_succeed(job_id=job_id, message=message or "Done")


# Each kind of job is run by one Celery task (by name, so this module imports no task module).
TASK_BY_KIND: dict[str, str] = {
    Job.Kind.INGEST: "annotations.tasks.ingest_mosaic",
    Job.Kind.PREDICT: "inference.tasks.predict_mosaic",
    Job.Kind.TRAIN: "inference.tasks.train_model",
    Job.Kind.EVALUATE: "inference.tasks.evaluate_model",
}


def job_enqueue(*, job: Job) -> None:
    """Send the job's task once the current transaction commits (a rollback sends nothing)."""
    from rcmweb.celery import app

    name = TASK_BY_KIND[job.kind]

    def send() -> None:
        importlib.import_module(name.rsplit(".", 1)[0])  # registers the task (routing, eager mode in tests)
        app.tasks[name].apply_async(args=[job.pk])

    transaction.on_commit(send)


def jobs_recover_stale(*, include_queued: bool = False) -> list[int]:
    """Queue again the jobs whose worker died (running with a stale heartbeat) and, with ``include_queued``
    (at worker start), the queued ones older than the stale time whose message may have been lost with a
    broker. Duplicate messages are harmless: :func:`job_claim` runs a job once. Returns the job ids."""
    cutoff = timezone.now() - timezone.timedelta(seconds=job_stale_after_s())
    recovered = []
    candidates = list(Job.objects.filter(state=Job.State.RUNNING, heartbeat_at__lt=cutoff))
    if include_queued:
        candidates += list(Job.objects.filter(state=Job.State.QUEUED, created_at__lt=cutoff))
    for job in candidates:
        with transaction.atomic():
            if job.state == Job.State.RUNNING:
                updated = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, heartbeat_at__lt=cutoff).update(
                    state=Job.State.QUEUED, message="Worker lost; queued again", heartbeat_at=timezone.now())
                if not updated:
                    continue
            job_enqueue(job=job)
        recovered.append(job.pk)
    if recovered:
        logger.warning("re-queued stale jobs %s", recovered)
    return recovered
