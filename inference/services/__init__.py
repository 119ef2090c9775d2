"""Writes of the inference app, one module per entity: jobs, model versions, predictions."""

from .jobs import (
    JobCancelled,
    ProgressReporter,
    job_cancel,
    job_claim,
    job_create,
    job_enqueue,
    job_fail,
    job_succeed,
    jobs_recover_stale,
    run_job,
)

__all__ = [
    "JobCancelled", "ProgressReporter", "job_cancel", "job_claim", "job_create", "job_enqueue", "job_fail",
    "job_succeed", "jobs_recover_stale", "run_job",
]
