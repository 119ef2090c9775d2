"""Uploading through the page as an admin: byte progress, server messages, ingest progress, ready; expert labels
sent with a mosaic."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.e2e


def png_file(name: str, width: int, height: int, seed: int) -> dict:
    from tests.conftest import gray_image, png_bytes

    return {"name": name, "mimeType": "image/png", "buffer": png_bytes(gray_image(width, height, seed=seed))}


def item_row(page, filename: str):
    return page.locator("tr.item", has_text=filename)


def test_upload_follows_ingest_until_ready(page, login, media_root, admin_user, artifacts) -> None:
    from annotations.models import Mosaic
    from inference.models import Job
    from tests.e2e.conftest import ingest_now

    login("ada")
    page.goto("/mosaics/upload/")
    page.set_input_files("#file-input", files=[png_file("dermis-01.png", 500, 400, seed=11),
                                               png_file("tiny.png", 40, 40, seed=12),
                                               {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    # Refused before sending: the type is not an image type.
    assert "File type .txt is not accepted" in item_row(page, "notes.txt").inner_text()
    item_row(page, "dermis-01.png").locator("input[type=text]").fill("Dermis 01")
    page.fill("#um-input", "0.8")
    assert page.inner_text("#upload-button") == "Upload 2 files"
    page.click("#upload-button")

    # Refused by the server with its reason.
    item_row(page, "tiny.png").locator(".item-state", has_text="Not accepted").wait_for()
    assert "each side must be at least 64 px" in item_row(page, "tiny.png").inner_text()

    # Accepted: no worker runs in this test, so the ingest job waits; then it runs and the page follows it.
    row = item_row(page, "dermis-01.png")
    row.locator(".item-state", has_text="Queued").wait_for()
    mosaic = Mosaic.objects.get(name="Dermis 01")
    assert mosaic.um_per_px == pytest.approx(0.8)
    job = Job.objects.get(mosaic=mosaic)
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, progress=0.4,
                                         message="Building the Deep Zoom pyramid")
    page.wait_for_function("() => document.querySelector('tr.item .bar')?.getAttribute('aria-valuenow') === '40'")
    page.screenshot(path=artifacts / "upload-progress.png")
    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)
    ingest_now(mosaic)
    link = row.get_by_role("link", name="Open in viewer")
    link.wait_for()
    assert "500 × 400 px" in row.inner_text()
    assert "2 problems" not in page.inner_text("#queue-summary")
    page.screenshot(path=artifacts / "upload-done.png")
    link.click()
    page.wait_for_url(f"**/mosaics/{mosaic.pk}/")
    page.wait_for_function("() => window.rcmweb?.viewer?.baseImage?.getFullyLoaded()")
    # The browser logs the refused upload's 400 answer as a failed resource load; anything else is a bug.
    assert [error for error in page.js_errors if "status of 400" not in error] == []


def test_same_file_again_points_to_the_existing_mosaic(page, login, ready_mosaic, admin_user) -> None:
    from annotations.services import original_path

    login("ada")
    page.goto("/mosaics/upload/")
    page.set_input_files("#file-input", files=[{"name": "again.png", "mimeType": "image/png",
                                                "buffer": original_path(ready_mosaic).read_bytes()}])
    page.click("#upload-button")
    row = item_row(page, "again.png")
    row.locator(".item-state", has_text="Already uploaded").wait_for()
    assert "Already uploaded as “Synthetic lesion”" in row.inner_text()
    assert row.get_by_role("link", name="Open it").get_attribute("href") == f"/mosaics/{ready_mosaic.pk}/"


def test_pixel_size_out_of_range_is_refused_in_the_page(page, login, transactional_db, admin_user) -> None:
    login("ada")
    page.goto("/mosaics/upload/")
    page.set_input_files("#file-input", files=[png_file("a.png", 100, 100, seed=1)])
    page.fill("#um-input", "500")
    page.click("#upload-button")
    assert page.locator("#um-error").is_visible()
    assert "between 0.05 and 50" in page.inner_text("#um-error")
    assert "Ready to upload" in item_row(page, "a.png").inner_text()  # nothing was sent


# Upload bandwidth the browser is throttled to in the byte-progress test (bytes/s): a ~0.6 MB file then takes
# about a second, long enough for several progress events.
THROTTLED_UPLOAD_BYTES_PER_S = 512 * 1024


def test_upload_bar_follows_the_bytes_sent(page, login, media_root, admin_user, artifacts) -> None:
    login("ada")
    page.goto("/mosaics/upload/")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                   "uploadThroughput": THROTTLED_UPLOAD_BYTES_PER_S})
    page.set_input_files("#file-input", files=[png_file("large.png", 1000, 800, seed=21)])
    page.click("#upload-button")
    page.wait_for_function("""() => {
      const row = document.querySelector('tr.item');
      const value = Number(row.querySelector('.bar').getAttribute('aria-valuenow'));
      return row.dataset.phase === 'uploading' && value > 0 && value < 100;
    }""")
    state = item_row(page, "large.png").locator(".item-state").inner_text()
    assert state.startswith("Uploading · ") and " of " in state
    page.screenshot(path=artifacts / "upload-sending.png")
    item_row(page, "large.png").locator(".item-state", has_text="Queued").wait_for()


def test_expert_labels_go_with_their_mosaic_and_a_bad_map_refuses_the_upload(page, login, media_root, admin_user,
                                                                            artifacts) -> None:
    from annotations.models import LabelLayer, Mosaic
    from annotations.rasters import read_raster
    from tests.annotations.files import expected_working, other_tool_labels
    from tests.conftest import png_bytes
    from tests.e2e.conftest import ingest_now

    login("ada")
    page.goto("/mosaics/upload/")
    # Dropped together, the map is paired with its mosaic by name (skin.png + skin_labels.png).
    page.set_input_files("#file-input", files=[
        png_file("skin.png", 300, 200, seed=31), png_file("other.png", 300, 200, seed=32),
        {"name": "skin_labels.png", "mimeType": "image/png", "buffer": png_bytes(other_tool_labels())},
        {"name": "lost_labels.png", "mimeType": "image/png", "buffer": png_bytes(expected_working())}])
    assert item_row(page, "skin.png").locator(".col-labels").inner_text().strip() == "skin_labels.png"
    assert "no mosaic named lost.* is waiting" in item_row(page, "lost_labels.png").inner_text()
    # A map added on a row with the button: one pixel too narrow for this mosaic.
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Add labels to other.png").click()
    chooser.value.set_files({"name": "other_map.png", "mimeType": "image/png",
                             "buffer": png_bytes(other_tool_labels()[:, :-1])})
    item_row(page, "other.png").locator(".labels-name", has_text="other_map.png").wait_for()
    page.fill("#um-input", "1")
    page.fill("#mapping-input", "0 = 255")
    page.click("#upload-button")
    assert "cannot be read" in page.inner_text("#mapping-error")  # refused in the page; nothing was sent
    assert Mosaic.objects.count() == 0
    page.fill("#mapping-input", "0=255, 10=2, 20=4")
    page.click("#upload-button")

    refused = item_row(page, "other.png")
    refused.locator(".item-state", has_text="Not accepted").wait_for()
    assert ("label map other_map.png: The label map is 299 × 200 px; it must match the mosaic at full resolution "
            "(300 × 200) or at working resolution (75 × 50)") in refused.inner_text()
    row = item_row(page, "skin.png")
    row.locator(".item-state", has_text="Expert labels imported").wait_for()
    mosaic = Mosaic.objects.get()  # the refused upload left nothing
    layer = LabelLayer.objects.get()
    assert (mosaic.name, layer.mosaic_id, layer.source) == ("skin", mosaic.pk, LabelLayer.Source.IMPORT)
    np.testing.assert_array_equal(read_raster(layer.raster_path), expected_working())
    labelled = int((expected_working() != 255).sum())
    assert f"Expert labels imported ({labelled:,} px labelled)" in row.inner_text()
    page.screenshot(path=artifacts / "upload-labels.png")
    ingest_now(mosaic)
    row.get_by_role("link", name="Open in viewer").click()
    page.wait_for_url(f"**/mosaics/{mosaic.pk}/")
    page.locator(f"#layer-list .layer[data-layer='layer:{layer.pk}']", has_text="skin_labels.png").wait_for()
    assert [error for error in page.js_errors if "status of 400" not in error] == []
