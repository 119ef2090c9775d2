"""A worker killed with SIGKILL in the middle of a prediction: the job runs again in a new worker and
completes, with one result (real worker processes on the configured broker)."""

from __future__ import annotations

import io

import pytest

from annotations import services
from inference.models import Job, Prediction
from inference.services.models import model_version_register
from tests.conftest import WorkerProcess, gray_image, png_bytes, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Paper mode over 1536² working pixels: ~530 windows, seconds even for a tiny model, so the kill lands
# mid-prediction; the new worker treats a heartbeat older than 3 s as a dead worker and checks every second.
WORKER_ENV = {"RCMWEB_PREDICT_MODE": "paper", "RCMWEB_JOB_STALE_AFTER_S": "3", "RCMWEB_JOB_REAPER_INTERVAL_S": "1"}


def test_prediction_survives_a_killed_worker(settings, admin_user, tiny_weights, purge_broker) -> None:
    settings.RCMWEB_JOB_STALE_AFTER_S = 3
    version, _ = model_version_register(weights_file=tiny_weights(), name="tiny", user=admin_user, activate=True)
    first = WorkerProcess(settings, extra_env=WORKER_ENV)
    second = None
    try:
        mosaic, _ = services.mosaic_upload(source=io.BytesIO(png_bytes(gray_image(1536, 1536, seed=3))),
                                           filename="kill.png", user=admin_user, um_per_px=4.0)

        def predict_job() -> Job | None:
            return Job.objects.filter(kind="predict", mosaic=mosaic).first()

        wait_for(lambda: (job := predict_job()) is not None and job.state == "running" and job.progress > 0.05,
                 timeout=120, describe=lambda: f"{predict_job() and predict_job().__dict__}\n{first.log()[-3000:]}")
        first.kill()
        job = predict_job()
        assert job.state == "running" and job.progress < 0.95 and not Prediction.objects.exists()

        second = WorkerProcess(settings, extra_env=WORKER_ENV)
        wait_for(lambda: predict_job().state == "succeeded", timeout=600,
                 describe=lambda: f"{predict_job().__dict__}\n{second.log()[-3000:]}")
    finally:
        first.stop()
        if second is not None:
            second.stop()
    job = predict_job()
    assert job.attempts == 2
    assert Prediction.objects.filter(mosaic=mosaic, model_version=version).count() == 1
    assert (Prediction.objects.get().level_path(0)).exists()
