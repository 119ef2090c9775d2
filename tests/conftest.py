"""Shared fixtures: users per role, API clients, tiny image files."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from PIL import Image
from rest_framework.test import APIClient

from rcmweb.access import Role

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(username: str, role: Role | None) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD, is_staff=role == Role.ADMIN)
        if role is not None:
            user.groups.add(Group.objects.get_or_create(name=role.value)[0])
        return user

    return make


@pytest.fixture
def admin_user(make_user) -> User:
    return make_user("ada", Role.ADMIN)


@pytest.fixture
def expert_user(make_user) -> User:
    return make_user("erin", Role.EXPERT)


@pytest.fixture
def trainee_user(make_user) -> User:
    return make_user("tom", Role.TRAINEE)


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def admin_api(admin_user) -> APIClient:
    return client_for(admin_user)


@pytest.fixture
def expert_api(expert_user) -> APIClient:
    return client_for(expert_user)


def gray_image(width: int = 300, height: int = 200, seed: int = 0) -> np.ndarray:
    """A textured uint8 test image (not constant, so JPEG tiles are not blank)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0)
    return np.clip(base + rng.normal(0, 10, (height, width)), 0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray, **save_kwargs: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save_kwargs)
    return buffer.getvalue()


@pytest.fixture
def media_root(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def eager_celery(settings):
    """Run tasks in the test process (the real broker and worker are tested in tests/test_worker.py)."""
    from rcmweb.celery import app

    assert app.conf.task_always_eager is False  # reading it loads the configuration before we override it
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


# --- A real Celery worker process on the configured broker ------------------------------------------------

# A worker needs a few seconds to import Django and PyTorch and connect; anything slower is a failure.
WORKER_START_TIMEOUT_S = 60


def _database_url_of_test_db() -> str:
    from django.db import connection

    conf = connection.settings_dict
    if conf["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or ""
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"postgres://{auth}{conf.get('HOST') or '127.0.0.1'}{port}/{conf['NAME']}"


class WorkerProcess:
    """``celery worker`` in a child process, sharing this test run's database, media folder and broker."""

    def __init__(self, settings, queues: str = "default,inference,training",
                 extra_env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys

        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="rcmweb.settings.test",
            RCMWEB_TEST_DATA_DIR=str(settings.DATA_DIR),
            RCMWEB_TEST_MEDIA_ROOT=str(settings.MEDIA_ROOT),
            DATABASE_URL=_database_url_of_test_db(),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env or {})
        self.log_path = Path(settings.DATA_DIR) / f"worker-{os.getpid()}-{id(self)}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "rcmweb", "worker", "--queues", queues, "--concurrency", "1",
             "--pool", "prefork", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash or OOM kill would."""
        import os
        import signal

        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        import os
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except Exception:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@pytest.fixture
def purge_broker():
    """Empty the queues before a worker test so messages of other tests cannot interfere."""
    from rcmweb.celery import app, ensure_broker_folders

    ensure_broker_folders()
    with app.connection_for_write() as conn:
        for queue in ("default", "inference", "training"):
            conn.default_channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            conn.default_channel.queue_purge(queue)
    yield


@pytest.fixture
def celery_worker_process(settings, transactional_db, purge_broker):
    worker = WorkerProcess(settings)
    yield worker
    worker.stop()


def wait_for(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.2,
             describe: Callable[[], str] = lambda: "") -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s. {describe()}")


# --- Tiny models and ready mosaics ------------------------------------------------------------------------


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny MUNet (seeded, untrained) as a safetensors file; returns its path."""

    def make(seed: int = 0, name: str = "tiny") -> Path:
        import torch

        from inference.ml.models import ModelConfig, build_model
        from inference.ml.weights import save_model

        torch.manual_seed(seed)
        model = build_model(ModelConfig(arch="munet", levels=2, base_channels=4))
        path = tmp_path / f"{name}-{seed}.safetensors"
        save_model(path, model, metadata={"metrics": {"mean_dice": 0.5 + seed / 100}, "training": {"seed": seed}})
        return path

    return make


@pytest.fixture
def ready_mosaic(admin_user, media_root, eager_celery) -> Callable[..., object]:
    """Upload and ingest (eagerly) a small textured mosaic; returns the Mosaic."""
    import io

    from annotations import services
    from annotations.models import Mosaic

    def make(width: int = 512, height: int = 384, seed: int = 0) -> Mosaic:
        mosaic, _ = services.mosaic_upload(source=io.BytesIO(png_bytes(gray_image(width, height, seed=seed))),
                                           filename=f"m{seed}.png", user=admin_user, um_per_px=1.0)
        mosaic.refresh_from_db()
        assert mosaic.status == Mosaic.Status.READY, mosaic.failure_reason
        return mosaic

    return make
