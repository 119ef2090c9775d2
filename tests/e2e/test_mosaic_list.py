"""The mosaic list in a real browser: rows, and job progress that moves without reloading the page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def ingesting_mosaic(name: str = "Lesion in progress"):
    """A mosaic row being ingested, with its running job (no files: the list does not need them)."""
    from annotations.models import Mosaic
    from inference.models import Job

    mosaic = Mosaic.objects.create(
        name=name, original_filename="lesion.tif", checksum="c0ffee" * 10 + "abcd", file_size=10,
        width=12000, height=12000, um_per_px=1.0, um_per_px_source="default", working_um_per_px=4.0,
        working_width=3000, working_height=3000, status=Mosaic.Status.INGESTING,
    )
    job = Job.objects.create(kind=Job.Kind.INGEST, mosaic=mosaic, state=Job.State.RUNNING, progress=0.2,
                             message="Building the Deep Zoom pyramid")
    return mosaic, job


def test_list_shows_the_mosaic_and_opens_the_viewer(page, login, ready_mosaic, expert_user, artifacts) -> None:
    login("erin")
    row = page.locator("tr.mosaic-row", has_text="Synthetic lesion")
    row.wait_for()
    text = row.inner_text()
    for expected in ("Synthetic lesion", "synthetic-lesion.png", "1,200 × 900 px", "0.600 × 0.450 mm",
                     "0.500 µm/px", "set at upload", "Ready", "by ada"):
        assert expected in text
    page.wait_for_function("() => [...document.querySelectorAll('.thumb img')].every((img) => img.naturalWidth > 0)")
    assert page.text_content("#mosaic-count") == "1 mosaic"
    assert page.get_attribute("#mosaic-list", "data-live") == "off"  # nothing runs: no polling
    page.screenshot(path=artifacts / "mosaic-list.png")
    row.locator("td.col-size").click()  # anywhere on the row
    page.wait_for_url(f"**/mosaics/{ready_mosaic.pk}/")
    assert page.js_errors == []


def test_job_progress_moves_live_without_reload(page, login, transactional_db, expert_user, artifacts) -> None:
    from annotations.models import Mosaic
    from inference.models import Job

    mosaic, job = ingesting_mosaic()
    login("erin")
    row = page.locator(f"tr.mosaic-row[data-mosaic-id='{mosaic.pk}']")
    bar = row.locator(".job .bar")
    bar.wait_for()
    assert bar.get_attribute("aria-valuenow") == "20"
    assert "Building the Deep Zoom pyramid" in row.inner_text()
    assert page.get_attribute("#mosaic-list", "data-live") == "on"
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

    Job.objects.filter(pk=job.pk).update(progress=0.65, message="Writing the working-resolution copy")
    page.wait_for_function(
        f"() => document.querySelector(\"tr[data-mosaic-id='{mosaic.pk}'] .bar\")?.getAttribute('aria-valuenow') === '65'")
    assert "Writing the working-resolution copy" in row.inner_text()
    assert row.locator(".job-percent").inner_text() == "65 %"
    page.screenshot(path=artifacts / "mosaic-list-progress.png")

    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED, message="Failed", error="truncated file")
    Mosaic.objects.filter(pk=mosaic.pk).update(status=Mosaic.Status.FAILED,
                                               failure_reason="The TIFF is truncated: 12 of 40 strips are missing.")
    page.wait_for_function("() => document.getElementById('mosaic-list').dataset.live === 'off'")
    assert row.locator(".status").inner_text() == "Failed"
    assert "The TIFF is truncated: 12 of 40 strips are missing." in row.inner_text()
    assert row.locator(".job").count() == 0
    assert page.evaluate("() => window.__sameDocument") is True
    assert page.js_errors == []


def test_queued_job_shows_an_indeterminate_bar(page, login, transactional_db, expert_user) -> None:
    from inference.models import Job

    mosaic, job = ingesting_mosaic()
    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED, progress=0.0, message="")
    login("erin")
    bar = page.locator(f"tr[data-mosaic-id='{mosaic.pk}'] .job .bar")
    bar.wait_for()
    assert "bar-indeterminate" in bar.get_attribute("class")
    assert bar.get_attribute("aria-valuenow") is None
    assert "Waiting for a worker" in page.locator(f"tr[data-mosaic-id='{mosaic.pk}']").inner_text()


def test_empty_list_tells_admins_to_upload(page, login, transactional_db, admin_user, artifacts) -> None:
    login("ada")
    empty = page.locator("#mosaic-empty")
    empty.wait_for()
    assert "Upload an RCM mosaic to start" in empty.inner_text()
    assert not page.locator("#mosaic-list table").is_visible()
    page.screenshot(path=artifacts / "mosaic-list-empty-admin.png")
    empty.get_by_role("link", name="Upload mosaics").click()
    page.wait_for_url("**/mosaics/upload/")


def test_login_page_refuses_a_wrong_password(page, transactional_db, expert_user, artifacts) -> None:
    page.goto("/")
    page.wait_for_url("**/accounts/login/?next=/")
    page.fill("#id_username", "erin")
    page.fill("#id_password", "not the password")
    page.click("button[type=submit]")
    assert "enter a correct username and password" in page.locator(".alert-error").inner_text()
    page.screenshot(path=artifacts / "login-error.png")


def test_logout_button_ends_the_session(page, login, transactional_db, expert_user) -> None:
    login("erin")
    page.click(".logout-form button")
    page.wait_for_url("**/accounts/login/")
    page.goto("/")
    page.wait_for_url("**/accounts/login/?next=/")
