"""A real Celery worker process on the configured broker (Redis in CI, kombu's filesystem transport locally)
runs the ingest task of an upload made through the API."""

from __future__ import annotations

import pytest
from django.conf import settings

from annotations.models import Mosaic
from inference.models import Job
from tests.conftest import client_for, gray_image, png_bytes, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_upload_is_ingested_by_a_real_worker(admin_user, celery_worker_process) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    api = client_for(admin_user)
    upload = SimpleUploadedFile("worker.png", png_bytes(gray_image(640, 480, seed=5)))
    response = api.post("/api/mosaics/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    job = Job.objects.get(mosaic_id=response.json()["id"])

    wait_for(lambda: Job.objects.get(pk=job.pk).state == Job.State.SUCCEEDED, timeout=90,
             describe=lambda: f"job={Job.objects.get(pk=job.pk).__dict__} broker={settings.CELERY_BROKER_URL}\n"
                              f"{celery_worker_process.log()[-3000:]}")
    mosaic = Mosaic.objects.get(pk=response.json()["id"])
    assert mosaic.status == Mosaic.Status.READY
    assert (mosaic.folder / "dzi" / "image.dzi").exists()
    assert "annotations.tasks.ingest_mosaic" in celery_worker_process.log()
