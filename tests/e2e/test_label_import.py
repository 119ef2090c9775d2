"""Importing expert labels into an open mosaic from the viewer, as an admin, in a real browser: refusals (wrong size,
values outside the mapping) are shown as the server words them and change nothing; an accepted map appears as a
shown layer with its class areas in the legend, without a page reload. The shared mapping parser on its own."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

# The mosaic: 1200 × 800 px at 1 µm/px, so its 4 µm/px working copy is 300 × 200 and the label map another tool
# wrote at full resolution (tests/annotations/files.other_tool_labels, 16 × its 75 × 50 layout) reduces to 4 × 4
# blocks of that layout.
IMAGE_W, IMAGE_H, UM_PER_PX = 1200, 800, 1.0
TOOL_SCALE = 16
WORKING_SCALE = 4
MAPPING = "0=255, 10=2, 20=4"
MESHWORK, NESTED = 2, 4
# mm² of one 4 µm working pixel.
WORKING_PIXEL_MM2 = (4 / 1000) ** 2
STATES = """() => {
  const form = document.getElementById('label-import');
  window.importStates = [];
  new MutationObserver(() => window.importStates.push(form.dataset.state))
    .observe(form, {attributes: true, attributeFilter: ['data-state']});
}"""


@pytest.fixture
def mosaic(transactional_db, media_root, admin_user):
    from annotations.models import Mosaic
    from tests.e2e.conftest import ingest_now, upload_png

    mosaic = upload_png(admin_user, name="Skin", width=IMAGE_W, height=IMAGE_H, seed=7, um_per_px=UM_PER_PX)
    ingest_now(mosaic)
    assert mosaic.status == Mosaic.Status.READY, mosaic.failure_reason
    assert (mosaic.working_width, mosaic.working_height) == (IMAGE_W // 4, IMAGE_H // 4)
    return mosaic


def label_file(name: str, labels: np.ndarray) -> dict:
    from tests.conftest import png_bytes

    return {"name": name, "mimeType": "image/png", "buffer": png_bytes(labels)}


def import_once(page, file: dict, mapping: str, name: str = "") -> None:
    """Choose the file (through the picker button), fill the fields and press Import."""
    with page.expect_file_chooser() as chooser:
        page.click("#label-import-choose")
    chooser.value.set_files(file)
    page.fill("#label-import-mapping", mapping)
    page.fill("#label-import-name", name)
    page.click("#label-import-submit")


def test_admin_imports_labels_in_the_viewer_and_refusals_change_nothing(page, login, mosaic, artifacts) -> None:
    from annotations.models import AuditEvent, LabelLayer
    from annotations.rasters import read_raster
    from tests.annotations.files import expected_working, other_tool_labels

    login("ada")
    page.goto(f"/mosaics/{mosaic.pk}/")
    page.wait_for_function("() => document.getElementById('viewer-shell').dataset.overlays === 'ready'")
    page.evaluate("() => { window.notReloaded = true; }")
    toggle = page.get_by_role("button", name="Import labels…")
    toggle.click()
    assert page.locator("#label-import").is_visible()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert "1,200 × 800 px (full resolution) or 300 × 200 px" in page.inner_text(".label-import-intro")
    tool_labels = other_tool_labels(scale=TOOL_SCALE)
    assert tool_labels.shape == (IMAGE_H, IMAGE_W)
    audits = AuditEvent.objects.count()

    # One pixel too narrow: refused with the server's reason, nothing stored, no layer listed.
    import_once(page, label_file("narrow.png", tool_labels[:, :-1]), MAPPING)
    page.wait_for_function("() => document.getElementById('label-import').dataset.state === 'refused'")
    error = page.locator(".label-import-error")
    assert error.is_visible()
    assert error.inner_text() == ("Not imported: The label map is 1199 × 800 px; it must match the mosaic at full "
                                  "resolution (1200 × 800) or at working resolution (300 × 200).")
    page.screenshot(path=artifacts / "viewer-label-import-refused.png")
    # Values the mapping does not cover (20): refused alike.
    import_once(page, label_file("consensus.png", tool_labels), "0=255, 10=2")
    page.locator(".label-import-error", has_text="values [20] that the value mapping does not cover").wait_for()
    assert page.get_attribute("#label-import", "data-state") == "refused"
    assert LabelLayer.objects.count() == 0 and AuditEvent.objects.count() == audits
    assert page.locator("#layer-list .layer[data-kind='labels']").count() == 0

    # The same map with the whole mapping and a name: imported, listed, shown, its areas in the legend.
    page.evaluate(STATES)
    import_once(page, label_file("consensus.png", tool_labels), MAPPING, name="Consensus K")
    page.wait_for_function("() => document.getElementById('label-import').dataset.state === 'done'")
    layer = LabelLayer.objects.get()
    assert (layer.mosaic_id, layer.source, layer.name) == (mosaic.pk, LabelLayer.Source.IMPORT, "Consensus K")
    expected = np.kron(expected_working(), np.ones((WORKING_SCALE, WORKING_SCALE), np.uint8))
    np.testing.assert_array_equal(read_raster(layer.raster_path), expected)
    states = page.evaluate("() => window.importStates")
    # A new file clears the refusal; the bytes go out (with their progress), the server checks, the layer is added.
    assert states[:2] == ["idle", "uploading"] and states[-3:] == ["checking", "checking", "done"], states
    assert set(states[1:-3]) == {"uploading"}, states
    assert page.get_attribute(".label-import-progress .bar", "aria-valuenow") == "100"
    assert page.locator(".label-import-error").is_hidden()
    assert "Added the layer “Imported: Consensus K”" in page.inner_text(".label-import-state")

    key = f"layer:{layer.pk}"
    row = page.locator(f"#layer-list .layer[data-layer='{key}']")
    row.wait_for()
    assert "Imported: Consensus K" in row.inner_text()
    assert row.locator("input[type=checkbox]").is_checked()
    page.wait_for_function("(key) => window.rcmweb.viewer.overlays.entries.get(key)?.overlay", arg=key)
    assert page.locator("#panel-classes select.legend-layer").input_value() == key
    for value, class_key in ((MESHWORK, "meshwork"), (NESTED, "nested")):
        cell = page.locator(f"#panel-classes .class-row[data-key='{class_key}'] .class-area")
        area = float(cell.inner_text())
        assert area == pytest.approx(int((expected == value).sum()) * WORKING_PIXEL_MM2, rel=5e-3), class_key
    assert page.evaluate("() => window.notReloaded") is True
    assert page.locator("#label-import-submit").is_disabled()  # the file was cleared; another one may follow
    frames = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    page.evaluate(frames)
    page.screenshot(path=artifacts / "viewer-label-import-done.png")
    page.click("#label-import-close")
    assert page.locator("#label-import").is_hidden() and toggle.get_attribute("aria-expanded") == "false"
    page.locator("#panel-classes").scroll_into_view_if_needed()
    page.evaluate(frames)
    page.screenshot(path=artifacts / "viewer-label-import.png")
    assert [error for error in page.js_errors if "status of 400" not in error] == []


def test_mapping_parser_shared_by_upload_and_viewer(page) -> None:
    page.goto("/accounts/login/")
    result = page.evaluate("""async () => {
      const {parseValueMapping} = await import('/static/frontend/js/labelmaps.js');
      return ['', '1=2, 2=3, 0=255', '1:2; 3:4', '{"7": 5}', '0 = 255', '1=9'].map((text) => parseValueMapping(text));
    }""")
    assert [item["mapping"] for item in result] == [None, {"0": 255, "1": 2, "2": 3}, {"1": 2, "3": 4}, {"7": 5},
                                                    None, None]
    assert [bool(item["message"]) for item in result] == [False, False, False, False, True, True]
    assert "cannot be read" in result[4]["message"]
    assert "sends values to 9" in result[5]["message"]
