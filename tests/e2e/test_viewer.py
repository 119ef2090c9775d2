"""The viewer in a real browser: tiles load and draw, 1:1 zoom, the scale bar, shortcuts and help."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

# Pixel statistics of the drawn canvas. The test image is a sine pattern of amplitude 60 grey levels plus
# noise; a blank, black or single-colour canvas has a standard deviation near 0.
MIN_DRAWN_STD = 15.0
# At least this share of the canvas must be covered by the drawn image (the mosaic fills most of the window).
MIN_DRAWN_FRACTION = 0.3

CANVAS_STATS = """() => {
  const canvas = window.rcmweb.viewer.viewer.drawer.canvas;
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let n = 0, sum = 0, sumSq = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) continue;
    const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    n += 1; sum += y; sumSq += y * y;
  }
  const mean = n ? sum / n : 0;
  return {drawn: n, total: data.length / 4, mean, std: n ? Math.sqrt(sumSq / n - mean * mean) : 0};
}"""


def open_viewer(page, login, mosaic) -> list:
    """Log in as the expert, open the viewer from the list; returns the tile responses seen."""
    tiles: list = []
    page.on("response", lambda response: tiles.append(response) if "/image_files/" in response.url else None)
    login("erin")
    row = page.locator("tr.mosaic-row", has_text=mosaic.name)
    row.locator("a.mosaic-name").click()
    page.wait_for_url(f"**/mosaics/{mosaic.pk}/")
    page.wait_for_function("() => window.rcmweb?.viewer?.baseImage?.getFullyLoaded()")
    return tiles


def test_viewer_draws_the_mosaic_from_its_tiles(page, login, ready_mosaic, expert_user, artifacts) -> None:
    tiles = open_viewer(page, login, ready_mosaic)
    assert tiles, "no tile was requested"
    assert all(response.status == 200 for response in tiles), [(r.url, r.status) for r in tiles]
    stats = page.evaluate(CANVAS_STATS)
    assert stats["drawn"] >= MIN_DRAWN_FRACTION * stats["total"], stats
    assert stats["std"] > MIN_DRAWN_STD, stats
    assert page.locator("#viewer-shell").get_attribute("data-state") == "open"
    page.screenshot(path=artifacts / "viewer-home.png")
    assert page.js_errors == []


def test_one_to_one_zoom_shows_image_pixels_and_a_round_scale_bar(page, login, ready_mosaic, expert_user,
                                                                   artifacts) -> None:
    open_viewer(page, login, ready_mosaic)
    page.keyboard.press("1")
    page.wait_for_function("() => Math.abs(window.rcmweb.viewer.imageZoom() - 1) < 1e-6")  # animation over
    assert page.text_content("#zoom-readout") == "100 %"
    # 0.5 µm/px at 1:1 → 0.5 µm per screen pixel; the longest round length within 160 px is 50 µm = 100 px.
    label = page.locator("#scalebar .scalebar-label")
    assert label.text_content() == "50 µm"
    width = page.evaluate("() => document.querySelector('#scalebar .scalebar-bar').getBoundingClientRect().width")
    assert width == pytest.approx(100, abs=1)
    page.wait_for_function("() => window.rcmweb.viewer.baseImage.getFullyLoaded()")
    page.screenshot(path=artifacts / "viewer-1to1.png")
    assert page.js_errors == []


def test_scale_bar_follows_the_zoom(page, login, ready_mosaic, expert_user) -> None:
    open_viewer(page, login, ready_mosaic)
    page.keyboard.press("1")
    page.wait_for_function("() => Math.abs(window.rcmweb.viewer.imageZoom() - 1) < 1e-6")
    page.click("[data-tool=zoom-out]")
    # One step of 1.5 out: 0.5 × 1.5 = 0.75 µm per screen pixel → 160 px hold 120 µm → a 100 µm bar of 133 px.
    page.wait_for_function("() => Math.abs(window.rcmweb.viewer.imageZoom() - 1 / 1.5) < 1e-6")
    assert page.text_content("#scalebar .scalebar-label") == "100 µm"
    width = page.evaluate("() => document.querySelector('#scalebar .scalebar-bar').getBoundingClientRect().width")
    assert width == pytest.approx(100 / 0.75, abs=1)
    assert page.text_content("#zoom-readout") == "67 %"


def test_home_fits_the_whole_mosaic(page, login, ready_mosaic, expert_user) -> None:
    open_viewer(page, login, ready_mosaic)
    page.keyboard.press("1")
    page.wait_for_function("() => Math.abs(window.rcmweb.viewer.imageZoom() - 1) < 1e-6")
    page.keyboard.press("0")
    page.wait_for_function("""() => {
      const vp = window.rcmweb.viewer.viewer.viewport;
      return Math.abs(vp.getZoom(true) - vp.getHomeZoom()) < 1e-6;
    }""")
    view, image = page.evaluate("""() => {
      const app = window.rcmweb.viewer;
      const box = (r) => [r.x, r.y, r.x + r.width, r.y + r.height];
      return [box(app.viewer.viewport.getBounds(true)), box(app.baseImage.getBounds(true))];
    }""")
    tolerance = 1e-6 * (image[2] - image[0])
    assert view[0] <= image[0] + tolerance and view[1] <= image[1] + tolerance, (view, image)
    assert view[2] >= image[2] - tolerance and view[3] >= image[3] - tolerance, (view, image)


def test_help_overlay_lists_the_shortcuts(page, login, ready_mosaic, expert_user, artifacts) -> None:
    open_viewer(page, login, ready_mosaic)
    page.keyboard.press("?")
    dialog = page.locator("#help-dialog")
    assert dialog.is_visible()
    for text in ("Zoom in", "Zoom out", "Fit the whole mosaic", "Zoom to 1:1", "Fullscreen", "This help"):
        assert text in dialog.inner_text()
    page.screenshot(path=artifacts / "viewer-help.png")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()


def test_side_panel_shows_mosaic_info_and_toggles(page, login, ready_mosaic, expert_user) -> None:
    open_viewer(page, login, ready_mosaic)
    panel = page.locator("#side-panel")
    info = panel.locator("#panel-info").inner_text()
    assert "Synthetic lesion" in info
    assert "1,200 × 900 px" in info
    assert "0.60 × 0.45 mm" in info
    assert "0.500 µm/px" in info
    assert panel.locator(".layer", has_text="RCM image").is_visible()
    page.keyboard.press("p")
    assert not panel.is_visible()
    assert page.get_attribute("[data-tool=panel]", "aria-pressed") == "false"
    page.click("[data-tool=panel]")
    assert panel.is_visible()


def test_shortcuts_are_ignored_while_typing(page, login, ready_mosaic, expert_user) -> None:
    open_viewer(page, login, ready_mosaic)
    page.evaluate("""() => {
      const input = document.createElement('input');
      input.id = 'probe';
      document.getElementById('side-panel').append(input);
    }""")
    before = page.evaluate("() => window.rcmweb.viewer.viewer.viewport.getZoom()")
    page.fill("#probe", "")
    page.keyboard.type("1+p")
    after = page.evaluate("() => window.rcmweb.viewer.viewer.viewport.getZoom()")
    assert after == before
    assert page.locator("#side-panel").is_visible()
    assert page.input_value("#probe") == "1+p"


def test_viewer_of_an_ingesting_mosaic_opens_when_ready(page, login, media_root, admin_user, expert_user,
                                                         artifacts) -> None:
    """Not ready: the status and the ingest progress show; once ingest is done the image opens by itself."""
    from inference.models import Job
    from tests.e2e.conftest import ingest_now, upload_png

    mosaic = upload_png(admin_user, name="Arrives later", width=400, height=300, seed=5)
    job = Job.objects.get(mosaic=mosaic)
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, progress=0.3,
                                         message="Building the Deep Zoom pyramid")
    type(mosaic).objects.filter(pk=mosaic.pk).update(status="ingesting")

    login("erin")
    page.goto(f"/mosaics/{mosaic.pk}/")
    status = page.locator("#viewer-status")
    status.locator(".job[data-state=running]").wait_for()
    assert "This mosaic is being prepared" in status.inner_text()
    assert status.locator(".bar").get_attribute("aria-valuenow") == "30"
    page.screenshot(path=artifacts / "viewer-ingesting.png")

    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)  # as a worker finds it
    ingest_now(mosaic)
    page.wait_for_function("() => window.rcmweb?.viewer?.baseImage?.getFullyLoaded()")
    assert not status.is_visible()
    assert page.js_errors == []


def test_fullscreen_button_puts_the_viewer_and_its_panels_in_fullscreen(page, login, ready_mosaic,
                                                                         expert_user) -> None:
    open_viewer(page, login, ready_mosaic)
    page.click("[data-tool=fullscreen]")
    page.wait_for_function("() => document.fullscreenElement?.id === 'viewer-shell'")
    assert page.get_attribute("[data-tool=fullscreen]", "aria-pressed") == "true"
    assert page.get_attribute("[data-tool=fullscreen]", "aria-label") == "Leave fullscreen"
    page.keyboard.press("f")
    page.wait_for_function("() => document.fullscreenElement === null")
    assert page.get_attribute("[data-tool=fullscreen]", "aria-pressed") == "false"


def test_arrow_keys_pan_the_view(page, login, ready_mosaic, expert_user) -> None:
    open_viewer(page, login, ready_mosaic)
    page.keyboard.press("1")
    page.wait_for_function("() => Math.abs(window.rcmweb.viewer.imageZoom() - 1) < 1e-6")
    centre = "() => window.rcmweb.viewer.viewer.viewport.getCenter(false)"
    before = page.evaluate(centre)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowUp")
    after = page.evaluate(centre)
    assert after["x"] < before["x"] and after["y"] < before["y"]


def test_extension_point_adds_a_tiled_layer_with_visibility_and_opacity(page, login, ready_mosaic,
                                                                       expert_user) -> None:
    """Later overlays (prediction, labels) go through app.addTiledLayer and the layers panel."""
    open_viewer(page, login, ready_mosaic)
    page.evaluate("""async () => {
      const {app} = await import('/static/frontend/js/viewer.js');
      await app.ready;
      await app.addTiledLayer({id: 'probe', title: 'Probe overlay', tileSource: app.mosaic.dzi_url, opacity: 0.4});
    }""")
    opacity = "() => window.rcmweb.viewer.viewer.world.getItemAt(1).getOpacity()"
    assert page.evaluate("() => window.rcmweb.viewer.viewer.world.getItemCount()") == 2
    assert page.evaluate(opacity) == pytest.approx(0.4)
    row = page.locator(".layer[data-layer=probe]")
    assert row.locator(".opacity-value").inner_text() == "40 %"
    row.get_by_role("checkbox").uncheck()
    assert page.evaluate(opacity) == 0
    assert row.locator("input[type=range]").is_disabled()
    row.get_by_role("checkbox").check()
    row.locator("input[type=range]").fill("75")
    assert page.evaluate(opacity) == pytest.approx(0.75)
    assert row.locator(".opacity-value").inner_text() == "75 %"


def test_a_missing_pyramid_is_reported_in_the_page(page, login, ready_mosaic, expert_user) -> None:
    import shutil

    shutil.rmtree(ready_mosaic.folder / "dzi")
    login("erin")
    page.goto(f"/mosaics/{ready_mosaic.pk}/")
    status = page.locator("#viewer-status")
    status.get_by_text("The image could not be opened").wait_for()
    assert page.get_attribute("#viewer-shell", "data-state") == "open-failed"
