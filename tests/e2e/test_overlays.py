"""Overlays in the viewer, in a real browser: layers drawn over the image at the right place with crisp working
pixels, class toggles, opacity, layer switching, the class-area legend, live prediction progress, shortcuts, and
the time to draw the next field of view (measured and written to artifacts/e2e/fov-timing.json, not asserted).

Test data go through the services: a tiny MUNet is registered and activated, a mosaic uploaded and ingested, its
prediction job run here and now (as a worker would), and a known label map imported.
"""

from __future__ import annotations

import functools
import io
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

# Test mosaics: 2048 × 1536 px at 1 µm/px, so the 4 µm/px working copy is 512 × 384 and one working pixel is
# exactly 4 × 4 image pixels.
IMAGE_W, IMAGE_H = 2048, 1536
UM_PER_PX = 1.0
WORK_W, WORK_H = 512, 384
SCALE = IMAGE_W // WORK_W

# The known label map (working px): meshwork | nested above row 240, split at column 320; below, ring (with an
# artifact corner), background, and an unlabelled block.
BORDER_X, BORDER_Y = 320, 240
MESHWORK, NESTED, RING, ARTIFACT, BACKGROUND, UNLABELLED = 2, 4, 3, 1, 0, 255

# The flat test image of the alignment test: grey 40 with a bright (200) rectangle whose right edge is at
# image column BRIGHT_RIGHT (inside the zoomed view, away from the label borders).
DARK, BRIGHT = 40, 200
BRIGHT_BOX = (512, 256, 1344, 1280)  # x0, y0, x1, y1 in image px
BRIGHT_RIGHT = BRIGHT_BOX[2]

# Colour tolerances (0..255 per channel) of screenshots: the browser composites a canvas with CSS opacity in
# 8-bit, so a blend can be off by rounding (≤ 2); 4 leaves room for the JPEG tile being decoded once per draw.
BLEND_TOLERANCE = 4
# At 400 % zoom a working pixel spans 16 screen pixels. The brief's bound is one working pixel; nearest-neighbour
# drawing at the exact transform puts the border within one screen pixel of where OpenSeadragon maps it.
ZOOM_FOR_ALIGNMENT = 4.0
ALIGNMENT_SCREEN_TOLERANCE_PX = 1.5
# The image's own edge is a JPEG tile upsampled with smoothing: its 50 % crossing may move by ~2 screen px.
IMAGE_EDGE_TOLERANCE_PX = 3.0

WAIT_FRAMES = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
VIEWER = "window.rcmweb.viewer"


# ---- data ------------------------------------------------------------------------------------------------------
def known_labels() -> np.ndarray:
    """The known label map at working resolution, (WORK_H, WORK_W) uint8."""
    labels = np.full((WORK_H, WORK_W), UNLABELLED, np.uint8)
    labels[:BORDER_Y, :BORDER_X] = MESHWORK
    labels[:BORDER_Y, BORDER_X:] = NESTED
    labels[BORDER_Y:, :256] = RING
    labels[336:, :64] = ARTIFACT
    labels[BORDER_Y:, 256:384] = BACKGROUND
    return labels


def flat_image() -> np.ndarray:
    image = np.full((IMAGE_H, IMAGE_W), DARK, np.uint8)
    x0, y0, x1, y1 = BRIGHT_BOX
    image[y0:y1, x0:x1] = BRIGHT
    return image


@functools.cache
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    """A synthetic RCM mosaic and its partial expert labels sampled at working resolution."""
    from inference.ml.synthetic import generate_mosaic

    mosaic = generate_mosaic(height=IMAGE_H, width=IMAGE_W, um_per_px=UM_PER_PX, seed=0)
    return mosaic.image, np.ascontiguousarray(mosaic.partial[SCALE // 2::SCALE, SCALE // 2::SCALE])


def make_mosaic(user, image: np.ndarray, name: str):
    from annotations.models import Mosaic
    from annotations.services import mosaic_upload
    from tests.conftest import png_bytes
    from tests.e2e.conftest import ingest_now

    mosaic, _ = mosaic_upload(source=io.BytesIO(png_bytes(image)), filename=f"{name.lower().replace(' ', '-')}.png",
                              user=user, name=name, um_per_px=UM_PER_PX)
    ingest_now(mosaic)
    assert mosaic.status == Mosaic.Status.READY, mosaic.failure_reason
    assert (mosaic.working_width, mosaic.working_height) == (WORK_W, WORK_H)
    return mosaic


def import_labels(mosaic, user, labels: np.ndarray, name: str = "consensus"):
    from annotations.services import label_layer_import
    from tests.conftest import png_bytes

    return label_layer_import(mosaic=mosaic, source=io.BytesIO(png_bytes(labels)), filename=f"{name}.png",
                              user=user, name=name)


def register_model(tiny_weights, user, *, seed: int, name: str):
    from inference.services.models import model_version_register

    version, _ = model_version_register(weights_file=tiny_weights(seed=seed), name=name, user=user, activate=True)
    return version


def predict_now(mosaic) -> None:
    """Run the mosaic's queued prediction jobs here and now, as a worker would."""
    from inference.models import Job
    from inference.tasks import predict_mosaic

    for job in Job.objects.filter(mosaic=mosaic, kind=Job.Kind.PREDICT, state=Job.State.QUEUED):
        predict_mosaic(job.pk)


@pytest.fixture
def labelled_mosaic(transactional_db, media_root, admin_user):
    """The flat test image with the known label map imported; no model."""
    mosaic = make_mosaic(admin_user, flat_image(), "Alignment target")
    import_labels(mosaic, admin_user, known_labels())
    return mosaic


@pytest.fixture
def model(transactional_db, media_root, admin_user, tiny_weights):
    """One tiny MUNet, registered and active."""
    return register_model(tiny_weights, admin_user, seed=0, name="tiny-a")


@pytest.fixture
def one_prediction_mosaic(model, admin_user):
    """A synthetic mosaic with imported expert labels and the active model's prediction."""
    image, labels = synthetic()
    mosaic = make_mosaic(admin_user, image, "Synthetic lesion")
    import_labels(mosaic, admin_user, labels)
    predict_now(mosaic)
    return mosaic


@pytest.fixture
def predicted_mosaic(transactional_db, media_root, admin_user, tiny_weights):
    """A synthetic mosaic predicted by two tiny model versions (the second active) with imported expert labels."""
    from inference.models import Prediction

    register_model(tiny_weights, admin_user, seed=0, name="tiny-a")
    image, labels = synthetic()
    mosaic = make_mosaic(admin_user, image, "Synthetic lesion")
    import_labels(mosaic, admin_user, labels)
    predict_now(mosaic)
    register_model(tiny_weights, admin_user, seed=1, name="tiny-b")
    predict_now(mosaic)
    assert Prediction.objects.filter(mosaic=mosaic).count() == 2
    return mosaic


# ---- page helpers ----------------------------------------------------------------------------------------------
def open_viewer(page, login, mosaic, username: str = "erin") -> None:
    login(username)
    page.goto(f"/mosaics/{mosaic.pk}/")
    page.wait_for_function(f"() => {VIEWER}?.baseImage?.getFullyLoaded()")
    page.wait_for_function("() => document.getElementById('viewer-shell').dataset.overlays === 'ready'")


def wait_drawn(page, key: str | None = None) -> None:
    """Until the overlay of `key` is loaded, the image's tiles are in and two more frames were drawn."""
    if key is not None:
        page.wait_for_function(f"(key) => {VIEWER}.overlays.entries.get(key)?.overlay", arg=key)
    page.wait_for_function(f"() => {VIEWER}.viewer.world.getItemAt(0).getFullyLoaded()")
    page.evaluate(WAIT_FRAMES)


def screenshot(page, path: Path | None = None) -> np.ndarray:
    """The page as an (H, W, 3) int array (int so differences do not wrap)."""
    data = page.screenshot(path=path)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def image_to_page(page, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Image px → page (CSS) px through OpenSeadragon's own transform."""
    return [tuple(p) for p in page.evaluate(f"""(points) => {{
      const app = {VIEWER};
      const box = app.viewer.container.getBoundingClientRect();
      return points.map(([x, y]) => {{
        const p = app.baseImage.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
        return [p.x + box.left, p.y + box.top];
      }});
    }}""", [list(p) for p in points])]


def working_centres(page, cells: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Page pixel (integer) at the centre of each working pixel (col, row)."""
    points = image_to_page(page, [((c + 0.5) * SCALE, (r + 0.5) * SCALE) for c, r in cells])
    return [(int(x), int(y)) for x, y in points]


def in_clear_view(page, points: list[tuple[int, int]], margin: int = 10) -> list[bool]:
    """For each page point: inside the image stage and not under a floating control (toolbar, navigator,
    scale bar, readouts), which cover the image in screenshots."""
    boxes, stage = page.evaluate("""() => [
      [...document.querySelectorAll('.toolbar-group, .navigator, .statusstrip > :not([hidden])')]
        .map((el) => el.getBoundingClientRect()).filter((r) => r.width > 0)
        .map((r) => [r.left, r.top, r.right, r.bottom]),
      (() => { const r = document.querySelector('.viewer-stage').getBoundingClientRect();
               return [r.left, r.top, r.right, r.bottom]; })()]""")

    def clear(x: float, y: float) -> bool:
        inside = stage[0] + margin <= x <= stage[2] - margin and stage[1] + margin <= y <= stage[3] - margin
        return inside and not any(b[0] - margin <= x <= b[2] + margin and b[1] - margin <= y <= b[3] + margin
                                  for b in boxes)

    return [clear(x, y) for x, y in points]


def class_colours(page) -> dict[int, np.ndarray]:
    rows = page.evaluate("async () => (await (await fetch('/api/label-classes/')).json())")
    return {row["value"]: np.array([int(row["colour"][i:i + 2], 16) for i in (1, 3, 5)]) for row in rows}


def deep_inside(page, labels: np.ndarray, value: int, margin: int = 4) -> tuple[int, int]:
    """Page point at the centre of a working pixel of class `value` at least `margin` px from any other value,
    in clear view (the one farthest inside its region among those)."""
    from scipy.ndimage import distance_transform_edt

    distance = distance_transform_edt(np.pad(labels == value, 1))[1:-1, 1:-1]
    order = np.argsort(distance, axis=None)[::-1][:400:8]
    cells = [(int(i % labels.shape[1]), int(i // labels.shape[1])) for i in order
             if distance.flat[i] >= margin]
    points = working_centres(page, cells)
    clear = [point for point, ok in zip(points, in_clear_view(page, points), strict=True) if ok]
    assert clear, f"class {value} has no region {margin} px wide in clear view"
    return clear[0]


def row_of(page, key: str) -> object:
    return page.locator(f".layer[data-layer='{key}']")


def assert_blend(shot: np.ndarray, base: np.ndarray, point: tuple[int, int], colour: np.ndarray,
                 opacity: float, what: str) -> None:
    x, y = point
    expected = base[y, x] * (1 - opacity) + colour * opacity
    assert np.abs(shot[y, x] - expected).max() <= BLEND_TOLERANCE, (what, shot[y, x].tolist(), expected.tolist())


# ---- modules on their own (no mosaic) ----------------------------------------------------------------------------
def test_inferno_colour_map_follows_matplotlib(page) -> None:
    from matplotlib import colormaps

    page.goto("/accounts/login/")
    table = page.evaluate("async () => (await import('/static/frontend/js/colormap.js')).colormapTable('inferno')")
    reference = np.array([colormaps["inferno"](v / 255)[:3] for v in range(256)]) * 255
    assert np.abs(np.array(table) - reference).max() <= 5


def test_label_overlay_edits_in_place_and_gives_back_the_previous_values(page) -> None:
    page.goto("/accounts/login/")
    result = page.evaluate("""async () => {
      const {LabelOverlay} = await import('/static/frontend/js/overlay.js');
      const data = new Uint8Array(6 * 4).fill(255);
      const overlay = new LabelOverlay({width: 6, height: 4, data, pixelWidth: 4, pixelHeight: 4,
        classes: [{value: 2, colour: '#1f77b4'}, {value: 4, colour: '#d62728'}]});
      const region = {x: 1, y: 1, width: 3, height: 2};
      const before = overlay.setPixels(region, 2);
      const mask = new Uint8Array([1, 0, 1, 0, 1, 0]);
      overlay.setPixels(region, 4, mask);
      const painted = Array.from(overlay.getPixels(region));
      const pixel = (x, y) => Array.from(overlay.sourceContext.getImageData(x, y, 1, 1).data);
      const colours = [pixel(1, 1), pixel(2, 1), pixel(0, 0)];
      overlay.setClassVisible(4, false);
      const hidden = pixel(1, 1);
      overlay.setPixels(region, before);
      let error = '';
      try { overlay.setPixels(region, 9); } catch (e) { error = e.message; }
      return {before: Array.from(before), painted, colours, hidden, restored: Array.from(data), error,
              counts: overlay.classCounts()};
    }""")
    assert result["before"] == [255] * 6
    assert result["painted"] == [4, 2, 4, 2, 4, 2]
    assert result["colours"] == [[0xd6, 0x27, 0x28, 255], [0x1f, 0x77, 0xb4, 255], [0, 0, 0, 0]]
    assert result["hidden"] == [0, 0, 0, 0]
    assert result["restored"] == [255] * 24
    assert "not a class value" in result["error"]
    assert result["counts"] == {"2": 0, "4": 0}


# ---- alignment ---------------------------------------------------------------------------------------------------
def first_change(values: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
    """Index of the first pixel of a 1-D run of colours that is nearer to `b` than to `a`."""
    nearer_b = np.abs(values - b).sum(axis=1) < np.abs(values - a).sum(axis=1)
    assert not nearer_b[0] and nearer_b[-1], "the run does not go from the first colour to the second"
    return int(np.argmax(nearer_b))


def test_overlay_is_aligned_with_the_image_to_the_working_pixel(page, login, labelled_mosaic, expert_user,
                                                                artifacts) -> None:
    """At 400 % the border between two classes is where OpenSeadragon puts its working-pixel column and row, and
    it is crisp (nearest neighbour: only the two class colours, nothing blended in between)."""
    open_viewer(page, login, labelled_mosaic)
    key = page.evaluate(f"() => [...{VIEWER}.overlays.entries.keys()][0]")
    wait_drawn(page, key)
    row_of(page, key).locator("input[type=range]").fill("100")
    centre_x, centre_y = BORDER_X * SCALE, BORDER_Y * SCALE
    page.evaluate(f"""([x, y, zoom]) => {{
      const app = {VIEWER};
      const vp = app.viewer.viewport;
      vp.zoomTo(app.baseImage.imageToViewportZoom(zoom), null, true);
      vp.panTo(app.baseImage.imageToViewportCoordinates(x, y), true);
    }}""", [centre_x, centre_y, ZOOM_FOR_ALIGNMENT])
    wait_drawn(page)
    shot = screenshot(page, artifacts / "overlay-alignment.png")
    colours = class_colours(page)
    working_px_on_screen = ZOOM_FOR_ALIGNMENT * SCALE

    # Vertical border (meshwork | nested) along the image row 60 px above the horizontal border.
    probe_y = centre_y - 60
    (x_border, y_row), (x_left, _), (x_right, _) = image_to_page(page, [(centre_x, probe_y), (centre_x - 100, probe_y),
                                                                       (centre_x + 100, probe_y)])
    row = shot[int(y_row), int(x_left):int(x_right)]
    found_x = int(x_left) + first_change(row, colours[MESHWORK], colours[NESTED])
    # Horizontal border (meshwork above, background below) along the image column 60 px left of the vertical one.
    probe_x = centre_x - 60
    (x_col, y_border), (_, y_top), (_, y_bottom) = image_to_page(page, [(probe_x, centre_y), (probe_x, centre_y - 100),
                                                                       (probe_x, centre_y + 100)])
    column = shot[int(y_top):int(y_bottom), int(x_col)]
    found_y = int(y_top) + first_change(column, colours[MESHWORK], colours[BACKGROUND])
    # A pixel's left/top edge is at its index: the first pixel of the second class starts at the border.
    errors = {"x": found_x - x_border, "y": found_y - y_border}
    print(f"\noverlay border vs OpenSeadragon's transform at {ZOOM_FOR_ALIGNMENT:.0f}x: {errors} screen px "
          f"(one working px = {working_px_on_screen:.0f} screen px)")
    for axis, error in errors.items():
        assert abs(error) <= working_px_on_screen, (axis, error)
        assert abs(error) <= ALIGNMENT_SCREEN_TOLERANCE_PX, (axis, error)
    # Crisp: every pixel of the probed row is one of the two class colours.
    for run, pair in ((row, (MESHWORK, NESTED)), (column, (MESHWORK, BACKGROUND))):
        distance = np.minimum(*(np.abs(run - colours[v]).max(axis=1) for v in pair))
        assert distance.max() <= 1, f"blended pixels between classes {pair}: {distance.max()}"

    # The image itself: with the overlays off, the bright rectangle's right edge is where the same transform says.
    page.keyboard.press("o")
    wait_drawn(page)
    plain = screenshot(page, artifacts / "overlay-alignment-image.png")
    (edge_x, edge_row), (a, _), (b, _) = image_to_page(page, [(BRIGHT_RIGHT, probe_y), (BRIGHT_RIGHT - 40, probe_y),
                                                             (BRIGHT_RIGHT + 40, probe_y)])
    grey = plain[int(edge_row), int(a):int(b)].mean(axis=1)
    crossing = int(a) + int(np.argmax(grey < (DARK + BRIGHT) / 2))
    print(f"image edge vs transform: {crossing - edge_x:.2f} screen px")
    assert abs(crossing - edge_x) <= IMAGE_EDGE_TOLERANCE_PX
    assert page.js_errors == []


# ---- an expert's session -----------------------------------------------------------------------------------------
def layer_rows(page) -> list[dict]:
    return page.evaluate("""() => [...document.querySelectorAll('#layer-list .layer')].map((row) => ({
      key: row.dataset.layer, title: row.querySelector('.layer-name').textContent,
      visible: row.querySelector('input[type=checkbox]').checked,
      opacity: row.querySelector('.opacity-value')?.textContent || null}))""")


def test_expert_switches_layers_toggles_classes_and_changes_opacity(page, login, predicted_mosaic, expert_user,
                                                                   artifacts) -> None:
    from inference.models import Prediction

    mosaic = predicted_mosaic
    _, labels = synthetic()
    newest, older = Prediction.objects.filter(mosaic=mosaic).order_by("-model_version__activated_at")
    open_viewer(page, login, mosaic)
    active_key = f"prediction:{newest.pk}"
    wait_drawn(page, active_key)

    # The active model's prediction first and on at 45 %, then the older version, the imported labels, the
    # uncertainty and level 1 of the shown prediction, then the image; only the active prediction is on.
    rows = layer_rows(page)
    label_key = next(row["key"] for row in rows if row["key"].startswith("layer:"))
    assert [row["key"] for row in rows] == [active_key, f"prediction:{older.pk}", label_key, "uncertainty",
                                            "level:1", "image"]
    assert "active" in rows[0]["title"] and "tiny-b" in rows[0]["title"]
    assert [row["visible"] for row in rows] == [True, False, False, False, False, True]
    assert rows[0]["opacity"] == "45 %"

    colours = class_colours(page)
    page.keyboard.press("o")  # overlays off: the image alone, to blend against
    wait_drawn(page)
    base = screenshot(page, artifacts / "overlay-none.png")
    page.keyboard.press("o")
    wait_drawn(page)

    # The prediction: the colour of the stored label at the centre of working pixels all over the mosaic.
    from annotations.rasters import read_raster

    predicted = read_raster(newest.level_path(0))
    grid = [(c, r) for r in range(24, WORK_H, 48) for c in range(24, WORK_W, 48)]
    cells = [cell for cell, ok in zip(grid, in_clear_view(page, working_centres(page, grid)), strict=True) if ok]
    assert len(cells) >= len(grid) // 2
    shot = screenshot(page, artifacts / "overlay-prediction.png")
    for (c, r), point in zip(cells, working_centres(page, cells), strict=True):
        assert_blend(shot, base, point, colours[int(predicted[r, c])], 0.45, f"prediction at {(c, r)}")

    # The imported labels instead: every class present shows its colour at a place deep inside it.
    row_of(page, active_key).get_by_role("checkbox").uncheck()
    row_of(page, label_key).get_by_role("checkbox").check()
    wait_drawn(page, label_key)
    present = [int(v) for v in np.unique(labels) if v != UNLABELLED]
    spots = {v: deep_inside(page, labels, v) for v in present}
    unlabelled_spot = deep_inside(page, labels, UNLABELLED)
    shot = screenshot(page, artifacts / "overlay-labels.png")
    for value, point in spots.items():
        assert_blend(shot, base, point, colours[value], 0.45, f"class {value}")
    assert np.abs(shot[unlabelled_spot[1], unlabelled_spot[0]] - base[unlabelled_spot[1], unlabelled_spot[0]]).max() \
        <= BLEND_TOLERANCE

    # A class off: its colour leaves that place, the others stay; on again: back.
    hidden = max(present, key=lambda v: (labels == v).sum())
    other = next(v for v in present if v != hidden)
    page.locator(f".class-row[data-value='{hidden}'] input[type=checkbox]").uncheck()
    page.evaluate(WAIT_FRAMES)
    shot = screenshot(page, artifacts / "overlay-labels-class-off.png")
    x, y = spots[hidden]
    assert np.abs(shot[y, x] - base[y, x]).max() <= BLEND_TOLERANCE
    assert_blend(shot, base, spots[other], colours[other], 0.45, "another class while one is off")
    page.locator(f".class-row[data-value='{hidden}'] input[type=checkbox]").check()
    page.evaluate(WAIT_FRAMES)
    assert_blend(screenshot(page), base, spots[hidden], colours[hidden], 0.45, "class back on")

    # Opacity: 100 % shows the class colour itself, 20 % a faint tint.
    slider = row_of(page, label_key).locator("input[type=range]")
    for percent in (100, 20):
        slider.fill(str(percent))
        page.evaluate(WAIT_FRAMES)
        shot = screenshot(page, artifacts / f"overlay-labels-{percent}.png")
        for value, point in spots.items():
            assert_blend(shot, base, point, colours[value], percent / 100, f"class {value} at {percent} %")

    # The uncertainty heatmap of the shown prediction: the colour of the stored uncertainty, through the page's
    # colour map and alpha ramp, at 70 %.
    row_of(page, label_key).get_by_role("checkbox").uncheck()
    row_of(page, "uncertainty").get_by_role("checkbox").check()
    wait_drawn(page, "uncertainty")
    uncertainty = read_raster(newest.uncertainty_path)
    shot = screenshot(page, artifacts / "overlay-uncertainty.png")
    lut = page.evaluate(f"""() => {{
      const overlay = {VIEWER}.overlays.entries.get('uncertainty').overlay;
      return Array.from({{length: 256}}, (_, v) => {{
        const [r, g, b] = overlay.lut[v] === 0 ? [0, 0, 0] : [overlay.lut[v] & 255, (overlay.lut[v] >>> 8) & 255,
          (overlay.lut[v] >>> 16) & 255];
        return [r, g, b, overlay.alphaAt(v / 255)];
      }});
    }}""")
    for (c, r), (x, y) in zip(cells, working_centres(page, cells), strict=True):
        *rgb, alpha = lut[int(uncertainty[r, c])]
        expected = base[y, x] * (1 - 0.7 * alpha) + np.array(rgb) * 0.7 * alpha
        assert np.abs(shot[y, x] - expected).max() <= BLEND_TOLERANCE, ((c, r), shot[y, x], expected)

    # Showing the older version: the detail rows follow it.
    row_of(page, f"prediction:{older.pk}").get_by_role("checkbox").check()
    page.wait_for_function(f"""(url) => {VIEWER}.overlays.entries.get('uncertainty').url === url""",
                           arg=page.evaluate(f"() => {VIEWER}.overlays.entries.get('prediction:{older.pk}').info"
                                             ".uncertainty_url"))
    assert "tiny-a" in row_of(page, "uncertainty").locator(".layer-detail").inner_text()
    page.screenshot(path=artifacts / "overlay-older-prediction.png")
    assert page.js_errors == []


def test_trainee_sees_no_model_output_nor_expert_labels(page, login, one_prediction_mosaic, trainee_user) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    open_viewer(page, login, one_prediction_mosaic, username="tom")
    assert [row["key"] for row in layer_rows(page)] == ["image"]
    assert not page.locator("#panel-classes").is_visible()
    assert page.locator("#panel-prediction").count() == 0
    assert not page.locator("[data-tool=overlays]").is_visible()
    assert not any("/rasters/" in url for url in requests)
    assert page.js_errors == []


def test_layer_raster_is_decoded_exactly(page, login, labelled_mosaic, expert_user) -> None:
    """The browser's copy of the label layer is the imported map, value for value (no colour management)."""
    open_viewer(page, login, labelled_mosaic)
    key = page.evaluate(f"() => [...{VIEWER}.overlays.entries.keys()][0]")
    wait_drawn(page, key)
    data = page.evaluate(f"(key) => Array.from({VIEWER}.overlays.entries.get(key).overlay.data)", key)
    np.testing.assert_array_equal(np.array(data, np.uint8).reshape(WORK_H, WORK_W), known_labels())


# ---- legend ------------------------------------------------------------------------------------------------------
def test_legend_shows_the_class_areas_of_the_imported_map(page, login, labelled_mosaic, expert_user,
                                                          artifacts) -> None:
    """Known map at 4 µm/px (16 µm² per working pixel): areas in mm², shares of the lesion for the pattern classes
    and of the labelled area for background and artifact; CSV and chart links; the report shows the chart."""
    open_viewer(page, login, labelled_mosaic)
    legend = page.locator("#panel-classes")
    legend.locator(".class-row[data-key=meshwork] .class-area").filter(has_text="1.23").wait_for()
    labels = known_labels()
    pixels = {v: int((labels == v).sum()) for v in range(6)}
    lesion = sum(pixels[v] for v in (2, 3, 4, 5))
    labelled = sum(pixels.values())
    expected = {  # key: (area mm², share shown)
        "background": ("0.295", f"{100 * pixels[0] / labelled:.1f} %"),
        "artifact": ("0.0492", f"{100 * pixels[1] / labelled:.1f} %"),
        "meshwork": ("1.23", f"{100 * pixels[2] / lesion:.1f} %"),
        "ring": ("0.541", f"{100 * pixels[3] / lesion:.1f} %"),
        "nested": ("0.737", f"{100 * pixels[4] / lesion:.1f} %"),
        "aspecific": ("0", "0.0 %"),
    }
    assert pixels[2] * 16e-6 == pytest.approx(1.2288)
    shown = {key: (legend.locator(f".class-row[data-key={key}] .class-area").inner_text(),
                   legend.locator(f".class-row[data-key={key}] .class-share").inner_text()) for key in expected}
    assert shown == expected
    assert shown["meshwork"][1] == "49.0 %"
    assert legend.locator(".class-total").inner_text() == "Labelled 2.85 mm² · lesion 2.51 mm²"

    csv_link = legend.get_by_role("link", name="CSV")
    with page.expect_download() as download:
        csv_link.click()
    text = Path(download.value.path()).read_text()
    assert "Meshwork,76800,1.2288" in text
    assert "output=png" in legend.get_by_role("link", name="Chart").get_attribute("href")

    page.click("[data-action=report]")
    dialog = page.locator(".report-dialog")
    dialog.locator(".report-rows").wait_for()
    page.wait_for_function("() => document.querySelector('.report-chart').naturalWidth > 0")
    assert "Meshwork" in dialog.locator(".report-rows").inner_text()
    page.screenshot(path=artifacts / "overlay-report.png")
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.js_errors == []


# ---- prediction jobs ---------------------------------------------------------------------------------------------
def test_live_prediction_progress_shows_and_the_new_layer_arrives_without_reload(page, login, model, admin_user,
                                                                                expert_user, artifacts) -> None:
    from inference.models import Job, Prediction

    image, _ = synthetic()
    mosaic = make_mosaic(admin_user, image, "Arriving prediction")  # with an active model, ingest queues a prediction
    job = Job.objects.get(mosaic=mosaic, kind=Job.Kind.PREDICT)
    assert job.state == Job.State.QUEUED
    open_viewer(page, login, mosaic)
    page.evaluate("() => { window.sameDocument = true; }")
    panel = page.locator("#panel-prediction")
    panel.locator(".job[data-state=queued]").wait_for()
    assert "No prediction of this mosaic yet." in panel.inner_text()

    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, progress=0.4,
                                         message="Predicting (fast mode): window 3 of 8")
    panel.locator(".job[data-state=running]").wait_for()
    assert panel.locator(".bar").get_attribute("aria-valuenow") == "40"
    assert "window 3 of 8" in panel.locator(".job-message").inner_text()
    page.screenshot(path=artifacts / "overlay-prediction-running.png")

    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)  # as a worker finds it
    predict_now(mosaic)
    key = f"prediction:{Prediction.objects.get(mosaic=mosaic).pk}"
    wait_drawn(page, key)
    assert row_of(page, key).get_by_role("checkbox").is_checked()
    panel.locator(".job").wait_for(state="detached")
    assert "tiny-a" in panel.locator(".prediction-model").inner_text()
    assert page.evaluate("() => window.sameDocument") is True  # no reload
    page.screenshot(path=artifacts / "overlay-prediction-arrived.png")
    assert page.js_errors == []


def test_a_failed_prediction_is_reported_with_its_reason(page, login, model, admin_user, expert_user) -> None:
    from inference.models import Job

    image, _ = synthetic()
    mosaic = make_mosaic(admin_user, image, "Failing prediction")
    job = Job.objects.get(mosaic=mosaic, kind=Job.Kind.PREDICT)
    open_viewer(page, login, mosaic)
    panel = page.locator("#panel-prediction")
    panel.locator(".job[data-state=queued]").wait_for()
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED, error="FileNotFoundError: working.png is missing")
    error = panel.locator(".prediction-error")
    error.wait_for()
    assert error.inner_text() == "Prediction failed: FileNotFoundError: working.png is missing"
    assert panel.locator(".job").count() == 0
    assert page.js_errors == []


def test_admin_predict_again_shows_the_job_until_it_is_done(page, login, one_prediction_mosaic, admin_user,
                                                           artifacts) -> None:
    from inference.models import Job

    open_viewer(page, login, one_prediction_mosaic, username="ada")
    button = page.locator("[data-action=predict]")
    button.click()
    panel = page.locator("#panel-prediction")
    panel.locator(".job[data-state=queued]").wait_for()
    assert button.is_disabled()
    assert Job.objects.filter(mosaic=one_prediction_mosaic, kind=Job.Kind.PREDICT, state=Job.State.QUEUED).count() == 1
    page.screenshot(path=artifacts / "overlay-predict-again.png")
    predict_now(one_prediction_mosaic)
    panel.locator(".job").wait_for(state="detached")
    page.wait_for_function("() => !document.querySelector('[data-action=predict]').disabled")
    assert not panel.locator(".prediction-error").is_visible()
    assert page.js_errors == []


def test_admin_predict_again_without_an_active_model_says_why(page, login, labelled_mosaic, admin_user) -> None:
    open_viewer(page, login, labelled_mosaic, username="ada")
    page.click("[data-action=predict]")
    error = page.locator("#panel-prediction .prediction-error")
    error.wait_for()
    assert "No active model" in error.inner_text()
    assert page.locator("[data-action=predict]").is_enabled()
    page.js_errors.clear()  # the 409 answer is logged by the browser; the page handled it


def test_experts_have_no_predict_button(page, login, one_prediction_mosaic, expert_user) -> None:
    open_viewer(page, login, one_prediction_mosaic)
    assert page.locator("#panel-prediction").is_visible()
    assert page.locator("[data-action=predict]").count() == 0


# ---- keyboard ----------------------------------------------------------------------------------------------------
def visible_keys(page) -> list[str]:
    return [row["key"] for row in layer_rows(page) if row["visible"] and row["key"] != "image"]


def test_shortcuts_toggle_and_cycle_the_overlays_and_are_in_the_help(page, login, one_prediction_mosaic,
                                                                     expert_user) -> None:
    open_viewer(page, login, one_prediction_mosaic)
    keys = [row["key"] for row in layer_rows(page) if row["key"] != "image"]
    assert visible_keys(page) == keys[:1]
    page.keyboard.press("l")
    assert visible_keys(page) == [keys[1]]
    page.keyboard.press("l")
    assert visible_keys(page) == [keys[2]]
    page.keyboard.press("Shift+L")
    assert visible_keys(page) == [keys[1]]
    page.keyboard.press("o")
    assert visible_keys(page) == []
    assert page.get_attribute("[data-tool=overlays]", "aria-pressed") == "false"
    page.keyboard.press("o")
    assert visible_keys(page) == [keys[1]]
    assert page.get_attribute("[data-tool=overlays]", "aria-pressed") == "true"
    page.keyboard.press("]")
    assert row_of(page, keys[1]).locator(".opacity-value").inner_text() == "55 %"
    page.keyboard.press("[")
    page.keyboard.press("[")
    assert row_of(page, keys[1]).locator(".opacity-value").inner_text() == "35 %"
    page.keyboard.press("?")
    help_text = page.locator("#help-dialog").inner_text()
    for text in ("Overlays on / off", "Show the next layer alone", "Show the previous layer alone",
                 "More opaque overlays", "More transparent overlays"):
        assert text in help_text
    assert page.js_errors == []


# ---- speed (measured, not asserted) ------------------------------------------------------------------------------
# Zoom of the timed pans: 200 %, a screen of ~575 × 425 image px, so the 2048 × 1536 mosaic holds a 3 × 3 grid of
# distinct fields of view and every pan needs new tiles (none cached yet).
FOV_ZOOM = 2.0
# Snake through the grid: each step pans by one screen width or height.
FOV_STEPS = [(1, 0), (1, 0), (0, 1), (-1, 0), (-1, 0), (0, 1), (1, 0), (1, 0)]
# The first half of the pans jump (what the drawing costs), the second half animate as a person's pan does.
FOV_IMMEDIATE = 4

MEASURE_FOV = """async ([steps, immediate]) => {
  const app = window.rcmweb.viewer;
  const v = app.viewer;
  const image = app.baseImage;
  const stage = app.overlays.stage;
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  const results = [];
  for (const [i, [dx, dy]] of steps.entries()) {
    const bounds = v.viewport.getBounds();
    const jump = i < immediate;
    const t0 = performance.now();
    let firstFrame = null;
    const onUpdate = () => { if (firstFrame === null) firstFrame = performance.now() - t0; };
    v.addHandler('update-viewport', onUpdate);
    const finished = new Promise((r) => v.addOnceHandler('animation-finish', () => r(performance.now() - t0)));
    v.viewport.panBy(new OpenSeadragon.Point(dx * bounds.width, dy * bounds.height), jump);
    const animationFinish = await finished;
    await new Promise((r) => {
      const check = () => (image.getFullyLoaded() ? r() : image.addOnceHandler('fully-loaded-change', check));
      check();
    });
    const tilesLoaded = performance.now() - t0;
    await frame();
    const drawn = performance.now() - t0;
    v.removeHandler('update-viewport', onUpdate);
    results.push({mode: jump ? 'immediate' : 'animated', first_frame_ms: firstFrame,
      animation_finish_ms: animationFinish, tiles_loaded_ms: tilesLoaded, drawn_ms: drawn});
  }
  return {pans: results, overlay_draws: stage.stats.draws, overlay_draw_mean_ms: stage.stats.totalMs / stage.stats.draws,
          overlay_draw_max_ms: stage.stats.maxMs, overlays: [...stage.entries.keys()].filter((o) => o.visible).map((o) => o.key)};
}"""


def test_time_to_draw_the_next_field_of_view_with_overlays(page, login, browser, one_prediction_mosaic,
                                                           expert_user, artifacts) -> None:
    """Pan by one screen with the prediction and the expert labels on: time until OpenSeadragon's first frame
    of the new view, 'animation-finish', all tiles of the new view loaded, and the frame after that.
    Printed and written to artifacts/e2e/fov-timing.json; speed goals live in bench/ and the README."""
    open_viewer(page, login, one_prediction_mosaic)
    label_key = next(row["key"] for row in layer_rows(page) if row["key"].startswith("layer:"))
    row_of(page, label_key).get_by_role("checkbox").check()
    prediction_key = layer_rows(page)[0]["key"]
    wait_drawn(page, prediction_key)
    wait_drawn(page, label_key)
    page.evaluate(f"""([zoom]) => {{
      const app = {VIEWER};
      const vp = app.viewer.viewport;
      vp.zoomTo(app.baseImage.imageToViewportZoom(zoom), null, true);
      const b = vp.getBounds();
      const origin = app.baseImage.imageToViewportCoordinates(0, 0);
      vp.panTo(new OpenSeadragon.Point(origin.x + b.width / 2, origin.y + b.height / 2), true);
    }}""", [FOV_ZOOM])
    wait_drawn(page)
    result = page.evaluate(MEASURE_FOV, [FOV_STEPS, FOV_IMMEDIATE])
    page.screenshot(path=artifacts / "overlay-fov-last.png")
    pans = result["pans"]
    summary = {mode: statistics.median(p["drawn_ms"] for p in pans if p["mode"] == mode)
               for mode in ("immediate", "animated")}
    report = {
        "what": "pan by one screen with overlays on; ms from panBy to the first frame of the new view, "
                "'animation-finish', all image tiles of the new view loaded, and the frame after that",
        "browser": f"Chromium {browser.version} headless, no GPU (2D canvas drawer)",
        "window_css_px": page.viewport_size,
        "image_px": [IMAGE_W, IMAGE_H], "working_px": [WORK_W, WORK_H], "zoom": FOV_ZOOM,
        "server": "pytest-django live_server (tiles from the Django view)",
        "median_drawn_ms": summary, **result,
    }
    (artifacts / "fov-timing.json").write_text(json.dumps(report, indent=2))
    print(f"\nnext field of view with overlays {result['overlays']}: median {summary['immediate']:.0f} ms "
          f"(jump), {summary['animated']:.0f} ms (animated pan); overlay draw "
          f"{result['overlay_draw_mean_ms']:.1f} ms mean, {result['overlay_draw_max_ms']:.1f} ms max per frame")
    assert len(pans) == len(FOV_STEPS) and all(p["drawn_ms"] > 0 for p in pans)
    assert page.js_errors == []
