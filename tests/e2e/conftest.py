"""Browser tests: Playwright (sync API) driving the system's Chromium against pytest-django's live_server.

live_server serves static files through Django's staticfiles finders, so OpenSeadragon (node_modules) and the
pages' modules load as in development. Screenshots go to artifacts/e2e/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from such a thread unless told.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"
# Chromium switches for a headless run on a CI box or container: no sandbox (root in a container), no GPU,
# and nothing that calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
# The window the screenshots are taken at: a common laptop screen.
VIEWPORT = {"width": 1440, "height": 900}
# Longest wait for anything in the page (ingest and tiles of tiny test images take well under a second).
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    return os.environ.get("RCMWEB_E2E_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium, or set RCMWEB_E2E_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -r requirements.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server) -> Iterator[object]:
    """A fresh browser context per test (no cookies shared), its errors collected in ``page.js_errors``."""
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.on("console", lambda message: page.js_errors.append(message.text) if message.type == "error" else None)
    yield page
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def login(page) -> Callable[[str], None]:
    """Log in through the login page like a person would."""
    from tests.conftest import PASSWORD

    def do(username: str) -> None:
        page.goto("/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

    return do


def ingest_now(mosaic) -> None:
    """Run the mosaic's ingest task here and now, as a worker would (idempotent: a job already done is left)."""
    from annotations.tasks import ingest_mosaic
    from inference.models import Job

    for job in Job.objects.filter(mosaic=mosaic, kind=Job.Kind.INGEST):
        ingest_mosaic(job.pk)
    mosaic.refresh_from_db()


def upload_png(user, *, name: str, width: int, height: int, seed: int, um_per_px: float | None = None):
    """Upload a textured synthetic PNG through the upload service (no worker runs: its ingest job stays queued)."""
    from annotations.services import mosaic_upload
    from tests.conftest import gray_image, png_bytes

    data = png_bytes(gray_image(width=width, height=height, seed=seed))
    mosaic, created = mosaic_upload(source=io.BytesIO(data), filename=f"{name.lower().replace(' ', '-')}.png",
                                    user=user, name=name, um_per_px=um_per_px)
    assert created
    return mosaic


@pytest.fixture
def ready_mosaic(transactional_db, media_root, admin_user):
    """A small textured mosaic (1200 × 900 px at 0.5 µm/px) uploaded and ingested into a pyramid."""
    from annotations.models import Mosaic

    mosaic = upload_png(admin_user, name="Synthetic lesion", width=1200, height=900, seed=3, um_per_px=0.5)
    ingest_now(mosaic)
    assert mosaic.status == Mosaic.Status.READY, mosaic.failure_reason
    return mosaic
