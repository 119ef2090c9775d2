"""Prediction jobs: after ingest with an active model, on demand, idempotent, stored layers."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.rasters import read_raster
from inference.models import Job, Prediction
from inference.services import run_job
from inference.services.models import model_version_register
from inference.services.predictions import prediction_request, prediction_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def active_version(tiny_weights, admin_user, media_root):
    version, _ = model_version_register(weights_file=tiny_weights(), name="tiny", user=admin_user, activate=True)
    return version


def test_ingest_with_active_model_predicts(active_version, ready_mosaic) -> None:
    mosaic = ready_mosaic()
    prediction = Prediction.objects.get(mosaic=mosaic)
    assert prediction.model_version == active_version
    labels = read_raster(prediction.level_path(0))
    assert labels.shape == (mosaic.working_height, mosaic.working_width)
    assert set(np.unique(labels)) <= set(range(6))
    uncertainty = read_raster(prediction.uncertainty_path)
    assert uncertainty.shape == labels.shape
    level1 = read_raster(prediction.level_path(1))
    assert level1.shape == ((mosaic.working_height + 1) // 2, (mosaic.working_width + 1) // 2)
    assert sum(prediction.class_pixels.values()) == labels.size
    job = Job.objects.get(kind="predict", mosaic=mosaic)
    assert (job.state, job.progress) == ("succeeded", 1.0)


def test_same_mosaic_and_version_twice_gives_one_prediction(active_version, ready_mosaic) -> None:
    mosaic = ready_mosaic()
    assert prediction_request(mosaic=mosaic) is None  # already predicted at ingest
    job = prediction_request(mosaic=mosaic, force=True)
    assert job is not None and Job.objects.get(pk=job.pk).state == "succeeded"
    # running the same job's work again (a redelivered message) leaves one row
    job.refresh_from_db()
    prediction_run(job=job, progress=lambda *a, **k: None)
    assert Prediction.objects.filter(mosaic=mosaic, model_version=active_version).count() == 1


def test_failing_job_ends_failed_with_reason_after_capped_attempts(active_version, ready_mosaic) -> None:
    mosaic = ready_mosaic()
    (mosaic.folder / "working.png").unlink()
    job = Job.objects.create(kind="predict", mosaic=mosaic, model_version=active_version, max_attempts=2,
                             params={"force": True})
    for _ in range(3):  # the broker would redeliver; attempts are capped
        try:
            run_job(job.pk, lambda j, p: prediction_run(job=j, progress=p))
        except Exception:
            pass
    job.refresh_from_db()
    assert job.state == "failed" and job.attempts == 2
    assert "working.png" in job.error


def test_on_demand_predict_is_admin_only(active_version, ready_mosaic, admin_api, expert_api) -> None:
    mosaic = ready_mosaic()
    assert expert_api.post(f"/api/mosaics/{mosaic.pk}/predict/").status_code == 403
    response = admin_api.post(f"/api/mosaics/{mosaic.pk}/predict/")
    assert response.status_code == 202 and response.json()["kind"] == "predict"


def test_predict_without_active_model_is_409(ready_mosaic, admin_api) -> None:
    mosaic = ready_mosaic()
    assert admin_api.post(f"/api/mosaics/{mosaic.pk}/predict/").status_code == 409


@pytest.fixture
def fresh_prepared_models():
    """Prepared models are cached per worker process; start and end each test without them."""
    from inference.services import predictions

    predictions._prepared.clear()
    yield predictions
    predictions._prepared.clear()


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_prediction_runs_in_the_configured_precision(precision, settings, fresh_prepared_models, active_version,
                                                     ready_mosaic) -> None:
    settings.RCMWEB_PREDICT_PRECISION = precision
    mosaic = ready_mosaic()
    job = Job.objects.get(kind="predict", mosaic=mosaic)
    assert job.state == "succeeded" and job.message.endswith(f"fast mode, {precision})")
    labels = read_raster(Prediction.objects.get(mosaic=mosaic).level_path(0))
    assert labels.shape == (mosaic.working_height, mosaic.working_width)


def test_auto_precision_follows_the_cpu(settings, monkeypatch, fresh_prepared_models) -> None:
    predictions = fresh_prepared_models
    settings.RCMWEB_PREDICT_PRECISION = "auto"
    monkeypatch.setattr(predictions, "cpu_has_native_bfloat16", lambda: False)
    assert predictions.predict_precision() == "float32"
    monkeypatch.setattr(predictions, "cpu_has_native_bfloat16", lambda: True)
    assert predictions.predict_precision() == "bfloat16"
    settings.RCMWEB_PREDICT_PRECISION = "int8"
    assert predictions.predict_precision() == "int8"


def test_unknown_precision_is_a_configuration_error(settings) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from inference.services.predictions import predict_precision

    settings.RCMWEB_PREDICT_PRECISION = "float16"
    with pytest.raises(ImproperlyConfigured, match="one of auto, float32, bfloat16, int8"):
        predict_precision()


def test_int8_that_cannot_be_built_falls_back_to_float32_once(settings, monkeypatch, caplog, fresh_prepared_models,
                                                               active_version, ready_mosaic) -> None:
    calls = []

    def no_compiler(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr("inference.ml.quantize.quantize_for_cpu", no_compiler)
    settings.RCMWEB_PREDICT_PRECISION = "int8"
    first, second = ready_mosaic(seed=1), ready_mosaic(seed=2)
    for mosaic in (first, second):
        job = Job.objects.get(kind="predict", mosaic=mosaic)
        assert job.state == "succeeded" and job.message.endswith("fast mode, float32)")
    assert len(calls) == 1  # the failure is remembered: the next job does not try again
    assert "could not be built (RuntimeError: no C++ compiler); predicting in float32" in caplog.text


@pytest.mark.slow
def test_int8_prediction_is_quantized_once_and_close_to_float32(settings, fresh_prepared_models, active_version,
                                                                ready_mosaic) -> None:
    pytest.importorskip("torchao")
    settings.RCMWEB_PREDICT_PRECISION = "float32"
    mosaic = ready_mosaic()
    reference = read_raster(Prediction.objects.get(mosaic=mosaic).level_path(0))
    settings.RCMWEB_PREDICT_PRECISION = "int8"
    job = prediction_request(mosaic=mosaic, force=True)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.message.endswith("fast mode, int8)")
    labels = read_raster(Prediction.objects.get(mosaic=mosaic).level_path(0))
    assert (labels == reference).mean() >= 0.95
    assert [key[2:] for key in fresh_prepared_models._prepared] == [("float32", 0), ("int8", 512)]
