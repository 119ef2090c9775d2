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
