"""A worker killed with SIGKILL in the middle of fine-tuning: a new worker resumes from the last epoch's
checkpoint (real worker processes on the configured broker)."""

from __future__ import annotations

import pytest

from inference.models import Job, ModelVersion
from inference.services.models import model_version_register
from inference.services.training import FinetuneParams, finetune_launch
from tests.conftest import WorkerProcess, wait_for
from tests.inference.test_training import labelled_mosaic

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {"RCMWEB_JOB_STALE_AFTER_S": "3", "RCMWEB_JOB_REAPER_INTERVAL_S": "1"}


def test_training_resumes_from_checkpoint_after_kill(settings, admin_user, tiny_weights, purge_broker,
                                                     ready_mosaic) -> None:
    from rcmweb.celery import app

    settings.RCMWEB_JOB_STALE_AFTER_S = 3
    labelled_mosaic(ready_mosaic, admin_user, seed=1)  # ingested eagerly in this process
    labelled_mosaic(ready_mosaic, admin_user, seed=2)
    base, _ = model_version_register(weights_file=tiny_weights(), name="base", user=admin_user)
    app.conf.task_always_eager = False  # from here on, the real worker runs the jobs
    first = WorkerProcess(settings, extra_env=WORKER_ENV)
    second = None
    try:
        job, _ = finetune_launch(params=FinetuneParams(base_version=base.pk, epochs=4, steps_per_epoch=25,
                                                       lr=1e-3), user=admin_user)

        def current() -> Job:
            return Job.objects.get(pk=job.pk)

        wait_for(lambda: len(current().info.get("history", [])) >= 1 and current().state == "running", timeout=240,
                 describe=lambda: f"{current().__dict__}\n{first.log()[-3000:]}")
        first.kill()
        assert current().state == "running" and len(current().info["history"]) < 4
        second = WorkerProcess(settings, extra_env=WORKER_ENV)
        wait_for(lambda: current().state == "succeeded", timeout=400,
                 describe=lambda: f"{current().__dict__}\n{second.log()[-3000:]}")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        app.conf.task_always_eager = True
    finished = current()
    epochs = [row["epoch"] for row in finished.info["history"]]
    assert epochs == [1, 2, 3, 4]  # resumed: no epoch trained twice to completion, none skipped
    assert finished.attempts == 2
    assert ModelVersion.objects.get(pk=finished.model_version_id).status == "candidate"
