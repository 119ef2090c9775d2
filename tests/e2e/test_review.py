"""Expert review in a real browser: start a review, accept the model's labels with a rectangle drag, paint a
correction with the brush (drawn at once, confirmed by the server), reload and see it, undo it, and watch the
agreement figure follow; class keys; tools that do not pan; polygon fill; a stale page that rolls back; "next";
another expert who can neither see nor change the review; the agreement page; and the browser's own pieces (the
local rasteriser against the server's, the edit queue) on their own.

Test data as in test_overlays.py: a tiny MUNet registered and activated, a synthetic mosaic uploaded and ingested,
its prediction job run here and now, and imported partial labels. Screenshots go to artifacts/e2e/review-*.png.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.e2e.test_overlays import (
    IMAGE_H,
    IMAGE_W,
    SCALE,
    VIEWER,
    WAIT_FRAMES,
    WORK_H,
    WORK_W,
    class_colours,
    image_to_page,
    import_labels,
    make_mosaic,
    open_viewer,
    predict_now,
    register_model,
    screenshot,
    synthetic,
    wait_drawn,
)

pytestmark = pytest.mark.e2e

REVIEW = f"{VIEWER}.review"
ROOT = "#review-root"
# Colour tolerance of a blended overlay pixel in a screenshot (see test_overlays.BLEND_TOLERANCE).
BLEND_TOLERANCE = 4
# The review layer is drawn at this opacity (review.js REVIEW_OPACITY).
REVIEW_OPACITY = 0.6


# ---- data ------------------------------------------------------------------------------------------------------
@pytest.fixture
def mosaic(transactional_db, media_root, admin_user, tiny_weights):
    """A synthetic mosaic with imported partial labels and the active tiny model's prediction."""
    register_model(tiny_weights, admin_user, seed=0, name="tiny-a")
    image, labels = synthetic()
    mosaic = make_mosaic(admin_user, image, "Synthetic lesion")
    import_labels(mosaic, admin_user, labels)
    predict_now(mosaic)
    return mosaic


def prediction_labels(mosaic) -> np.ndarray:
    from annotations.rasters import read_raster
    from inference.models import Prediction

    return read_raster(Prediction.objects.get(mosaic=mosaic).level_path(0))


def review_raster(review_id: int) -> np.ndarray:
    from annotations.models import Review
    from annotations.rasters import read_raster

    return read_raster(Review.objects.get(pk=review_id).layer.raster_path)


# ---- page helpers ----------------------------------------------------------------------------------------------
def start_review(page) -> int:
    page.click("[data-action=start-review]")
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.state === 'in_progress'")
    page.wait_for_function(f"() => {REVIEW}.overlay && {REVIEW}.queue")
    return page.evaluate(f"() => {REVIEW}.review.id")


def open_as(page, login, mosaic, username: str = "erin") -> None:
    open_viewer(page, login, mosaic, username=username)
    page.wait_for_function(f"() => document.querySelector('{ROOT}')?.dataset.ready === 'true'")


def wait_saved(page) -> None:
    page.wait_for_function(f"() => {REVIEW}.queue && {REVIEW}.queue.idle")
    page.evaluate(WAIT_FRAMES)


def zoom_to(page, x: float, y: float, zoom: float) -> None:
    """Centre image point (x, y) at `zoom` screen px per image px, at once."""
    page.evaluate(f"""([x, y, zoom]) => {{
      const app = {VIEWER};
      const vp = app.viewer.viewport;
      vp.zoomTo(app.baseImage.imageToViewportZoom(zoom), null, true);
      vp.panTo(app.baseImage.imageToViewportCoordinates(x, y), true);
    }}""", [x, y, zoom])
    wait_drawn(page)


def drag(page, points: list[tuple[float, float]], steps: int = 6) -> None:
    """Press at the first page point, move through the others, release (a person's drag)."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=steps)
    page.mouse.up()


def overlay_values(page, cells: list[tuple[int, int]]) -> list[int]:
    return page.evaluate(f"(cells) => cells.map(([c, r]) => {REVIEW}.overlay.valueAt(c, r))", [list(c) for c in cells])


def viewport_centre(page) -> list[float]:
    return page.evaluate(f"() => {{ const c = {VIEWER}.viewer.viewport.getCenter(true); return [c.x, c.y]; }}")


def wait_held(page, held: list, count: int = 1) -> None:
    """Until `count` requests are held by a route handler (Playwright runs handlers while it waits)."""
    page.wait_for_function(f"() => {REVIEW}.queue.sending")
    for _ in range(200):
        if len(held) >= count:
            return
        page.wait_for_timeout(10)
    raise AssertionError(f"{len(held)} requests held, expected {count}")


def agreement_text(page) -> str:
    return page.locator(".agree-value").inner_text()


# ---- an expert's session -----------------------------------------------------------------------------------------
def test_expert_accepts_paints_reloads_undoes_and_sees_the_agreement_follow(page, login, mosaic, expert_user,
                                                                            artifacts) -> None:
    from annotations.models import Edit

    model = prediction_labels(mosaic)
    open_as(page, login, mosaic)
    assert page.locator("[data-action=start-review]").is_visible()
    review_id = start_review(page)
    assert agreement_text(page) == "—"
    page.screenshot(path=artifacts / "review-started.png")

    # Keys 1-6 pick the classes 0..5 in the paper's order.
    for key, value in zip("123456", range(6), strict=True):
        page.keyboard.press(key)
        assert page.locator(".palette-swatch[aria-checked=true]").get_attribute("data-value") == str(value)

    # Accept: a rectangle dragged over working px [100, 300) × [75, 225) makes the model's labels the expert's.
    zoom_to(page, 800, 600, 0.9)
    page.keyboard.press("a")
    corner_a, corner_b = image_to_page(page, [(100 * SCALE + 1, 75 * SCALE + 1), (300 * SCALE - 1, 225 * SCALE - 1)])
    centre = viewport_centre(page)
    page.mouse.move(*corner_a)
    page.mouse.down()
    page.mouse.move(*corner_b, steps=6)
    page.screenshot(path=artifacts / "review-accept-drag.png")  # the rubber band while dragging
    page.mouse.up()
    wait_saved(page)
    inside = [(c, r) for r in range(76, 224, 21) for c in range(101, 299, 27)]
    assert overlay_values(page, inside) == [int(model[r, c]) for c, r in inside]
    stored = review_raster(review_id)
    np.testing.assert_array_equal(stored[75:225, 100:300], model[75:225, 100:300])
    assert (stored[:75] == 255).all() and (stored[225:] == 255).all()
    assert agreement_text(page) == "100.0 %"
    assert viewport_centre(page) == centre  # the drag drew, it did not pan

    # Brush: a class the model does not give along the stroke, painted across the accepted area.
    row = 150
    counts = np.bincount(model[row - 8:row + 8, 120:280].ravel(), minlength=6)[:6]
    paint = int(np.argmin(counts))
    assert counts[paint] == 0
    page.keyboard.press(str(paint + 1))
    page.keyboard.press("b")
    stroke = image_to_page(page, [(130 * SCALE, row * SCALE), (200 * SCALE, row * SCALE), (270 * SCALE, row * SCALE)])
    probe_cell = (200, row)
    (probe,) = [(int(x), int(y)) for x, y in image_to_page(page, [((probe_cell[0] + 0.5) * SCALE,
                                                                   (probe_cell[1] + 0.5) * SCALE)])]
    page.mouse.move(probe[0], probe[1] - 200)
    page.evaluate(WAIT_FRAMES)
    before = screenshot(page)

    held = []
    page.route("**/edits/", lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    drag(page, stroke)
    page.mouse.move(probe[0], probe[1] - 200)  # the brush circle away from the probed pixel
    page.evaluate(WAIT_FRAMES)
    # Drawn at once, before the server answered.
    wait_held(page, held)
    line = [(c, row) for c in range(135, 266, 10)]
    assert overlay_values(page, line) == [paint] * len(line)
    assert page.evaluate(f"() => {REVIEW}.queue.pending") == 1
    assert page.locator(".save-state").get_attribute("data-state") == "saving"
    after = screenshot(page, artifacts / "review-painting.png")
    colours = class_colours(page)
    x, y = probe
    expected = before[y, x] + REVIEW_OPACITY * (colours[paint] - colours[int(model[probe_cell[1], probe_cell[0]])])
    assert np.abs(after[y, x] - expected).max() <= BLEND_TOLERANCE, (after[y, x], expected, before[y, x])
    assert viewport_centre(page) == centre
    body = json.loads(held[0].request.post_data)
    assert body["op"] == "paint" and body["class_value"] == paint and body["revision"] == 2
    assert body["geometry"]["type"] == "stroke" and body["geometry"]["radius_um"] == 20
    for route in held:
        route.continue_()
    page.unroute("**/edits/")
    wait_saved(page)

    # The server has it, and the agreement dropped.
    stored = review_raster(review_id)
    assert [int(stored[r, c]) for c, r in line] == [paint] * len(line)
    assert list(Edit.objects.filter(review_id=review_id).order_by("id").values_list("op", flat=True)) == [
        "accept", "paint"]
    painted_agreement = agreement_text(page)
    assert painted_agreement != "100.0 %" and float(painted_agreement.rstrip(" %")) < 100
    page.locator(".history-row").nth(1).wait_for()
    assert page.locator(".history-row").first.get_attribute("data-op") == "paint"
    page.screenshot(path=artifacts / "review-painted.png")

    # Reload: the review resumes with the painted pixels (from the server).
    page.reload()
    page.wait_for_function(f"() => {VIEWER}?.review?.overlay && {REVIEW}.review.state === 'in_progress'")
    assert overlay_values(page, line) == [paint] * len(line)
    assert agreement_text(page) == painted_agreement

    # Undo (Ctrl+Z): the stroke goes, on the page and on the server; the agreement is back to 100 %.
    page.keyboard.press("Control+z")
    page.wait_for_function(f"() => {REVIEW}.review.revision === 4")
    wait_saved(page)
    assert overlay_values(page, line) == [int(model[r, c]) for c, r in line]
    assert [int(review_raster(review_id)[r, c]) for c, r in line] == [int(model[r, c]) for c, r in line]
    assert agreement_text(page) == "100.0 %"
    page.locator(".history-row[data-op=undo]").wait_for()
    assert page.locator(".history-row[data-op=paint]").get_attribute("data-undone") == "true"
    page.screenshot(path=artifacts / "review-undone.png")
    page.reload()
    page.wait_for_function(f"() => {VIEWER}?.review?.overlay && {REVIEW}.review.state === 'in_progress'")
    assert overlay_values(page, line) == [int(model[r, c]) for c, r in line]
    assert agreement_text(page) == "100.0 %"
    assert page.js_errors == []


def test_keys_are_listed_in_the_help_and_space_pans_with_a_drawing_tool(page, login, mosaic, expert_user,
                                                                       artifacts) -> None:
    open_as(page, login, mosaic)
    start_review(page)
    page.keyboard.press("?")
    help_text = page.locator(".help-dialog").inner_text()
    for text in ("Pick the class", "Smaller brush", "Larger brush", "Undo", "Redo", "Next region", "Space",
                 "Shift1", "Brush", "Eraser", "Fill", "Accept", "Pan"):
        assert text in help_text, text
    page.screenshot(path=artifacts / "review-help.png")
    page.keyboard.press("Escape")

    # ',' and '.' size the brush, within the server's limits.
    page.keyboard.press("b")
    assert page.locator(".brush-value").inner_text() == "20 µm"
    page.keyboard.press(".")
    assert page.locator(".brush-value").inner_text() == "25 µm"
    for _ in range(40):
        page.keyboard.press(",")
    assert page.locator(".brush-value").inner_text() == "2.0 µm"
    # Space held: a drag pans even with the brush, and paints nothing.
    zoom_to(page, 1000, 700, 1.0)
    centre = viewport_centre(page)
    (a, b) = image_to_page(page, [(900, 700), (1100, 700)])
    page.mouse.move(*a)
    page.keyboard.down(" ")
    drag(page, [a, b])
    page.keyboard.up(" ")
    wait_saved(page)
    assert viewport_centre(page) != centre
    assert page.evaluate(f"() => {REVIEW}.overlay.histogram()[255]") == WORK_W * WORK_H
    # '1' picks a class while reviewing; Shift 1 ('!') is zoom 1:1.
    page.keyboard.press("!")
    page.wait_for_function(f"() => Math.abs({VIEWER}.imageZoom() - 1) < 0.01")
    assert page.js_errors == []


def test_polygon_fill_eraser_a_stale_page_rolls_back_and_submit(page, login, mosaic, expert_user, artifacts) -> None:
    """A polygon clicked corner by corner fills with the class; the eraser, undo and redo follow on the server; an
    edit made on a page that another tab left stale is refused (409), taken back and the layer reloaded with the
    other tab's edit; then the review is submitted (after a confirmation) and can no longer change."""
    from annotations import reviews
    from annotations.models import Review

    open_as(page, login, mosaic)
    review_id = start_review(page)
    zoom_to(page, 1000, 750, 0.9)
    page.keyboard.press("5")  # nested (4)
    page.keyboard.press("g")
    corners = image_to_page(page, [(600, 400), (1400, 450), (1300, 1100), (700, 1000)])
    for x, y in corners:
        page.mouse.click(x, y)
    page.evaluate(WAIT_FRAMES)
    assert page.evaluate(f"() => {REVIEW}.tools.polygon.length") == 4
    page.screenshot(path=artifacts / "review-polygon.png")
    page.keyboard.press("Enter")
    wait_saved(page)
    stored = review_raster(review_id)
    assert set(np.unique(stored)) == {4, 255}
    assert stored[700 // SCALE, 1000 // SCALE] == 4 and stored[300 // SCALE, 1000 // SCALE] == 255
    browser_copy = np.array(page.evaluate(f"() => Array.from({REVIEW}.overlay.data)"), np.uint8).reshape(WORK_H, WORK_W)
    np.testing.assert_array_equal(browser_copy, stored)  # the server's pixels replaced the local guess

    # The eraser takes a band of it back to unlabelled; undo and redo (Ctrl+Shift+Z) follow on the server.
    page.keyboard.press("e")
    band = [(c, 150) for c in range(200, 300, 10)]
    drag(page, image_to_page(page, [(190 * SCALE, 150 * SCALE), (310 * SCALE, 150 * SCALE)]))
    wait_saved(page)
    assert [int(review_raster(review_id)[r, c]) for c, r in band] == [255] * len(band)
    assert overlay_values(page, band) == [255] * len(band)
    page.keyboard.press("Control+z")
    page.wait_for_function(f"() => {REVIEW}.review.revision === 4")
    assert [int(review_raster(review_id)[r, c]) for c, r in band] == [4] * len(band)
    page.keyboard.press("Control+Shift+Z")
    page.wait_for_function(f"() => {REVIEW}.review.revision === 5")
    wait_saved(page)
    assert [int(review_raster(review_id)[r, c]) for c, r in band] == [255] * len(band)
    assert overlay_values(page, band) == [255] * len(band)

    # Another tab of the same expert erases a corner of the polygon: this page is now one revision behind.
    review = Review.objects.get(pk=review_id)
    reviews.review_edit(review=review, user=expert_user, revision=review.layer.revision, op="erase",
                        geometry={"type": "rectangle", "x0": 600, "y0": 400, "x1": 900, "y1": 700})
    page.keyboard.press("b")
    line = [(c, 262) for c in range(180, 240, 8)]  # below the polygon, in view
    drag(page, image_to_page(page, [(c * SCALE, r * SCALE) for c, r in line]))
    page.locator(".review-error").wait_for()
    assert "changed elsewhere" in page.locator(".review-error").inner_text()
    page.wait_for_function(f"() => !document.querySelector('{ROOT}').dataset.resyncing && {REVIEW}.queue.idle")
    page.wait_for_function(f"() => {REVIEW}.review.revision === 6")
    stored = review_raster(review_id)
    assert [int(stored[r, c]) for c, r in line] == [255] * len(line)  # the refused stroke changed nothing
    browser_copy = np.array(page.evaluate(f"() => Array.from({REVIEW}.overlay.data)"), np.uint8).reshape(WORK_H, WORK_W)
    np.testing.assert_array_equal(browser_copy, stored)  # taken back, and the other tab's erase is shown
    page.screenshot(path=artifacts / "review-stale.png")

    # Editing goes on from the reloaded layer.
    drag(page, image_to_page(page, [(c * SCALE, r * SCALE) for c, r in line]))
    wait_saved(page)
    assert [int(review_raster(review_id)[r, c]) for c, r in line] == [4] * len(line)

    # Submit (confirmed in a dialog): the tools go away and the server refuses further edits.
    page.click("[data-action=submit-review]")
    page.click("[data-action=confirm-submit]")
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.state === 'submitted'")
    assert Review.objects.get(pk=review_id).state == "submitted"
    assert page.locator(".review-state").inner_text() == "Submitted"
    assert not page.locator(".review-options").is_visible()
    assert not page.locator("[data-tool=tool-brush]").is_visible()
    assert page.locator("[data-action=start-review]").inner_text() == "Start a new review"
    page.screenshot(path=artifacts / "review-submitted.png")
    assert [e for e in page.js_errors if "409" not in e] == []


def test_next_pans_to_the_most_uncertain_unlabelled_region_and_marks_it_seen(page, login, mosaic, expert_user,
                                                                            artifacts) -> None:
    from annotations.models import Review

    open_as(page, login, mosaic)
    review_id = start_review(page)
    page.keyboard.press("n")
    page.wait_for_function(f"() => document.querySelector('{ROOT}').dataset.nextRegion")
    page.wait_for_function(f"() => Math.abs({VIEWER}.viewer.viewport.getZoom(true) / "
                           f"{VIEWER}.viewer.viewport.getZoom() - 1) < 1e-3")
    x0, y0, x1, y1 = map(int, page.locator(ROOT).get_attribute("data-next-region").split(","))
    bounds = page.evaluate(f"""() => {{
      const app = {VIEWER};
      const r = app.baseImage.viewportToImageRectangle(app.viewer.viewport.getBounds());
      return [r.x, r.y, r.x + r.width, r.y + r.height];
    }}""")
    assert bounds[0] <= x0 and bounds[1] <= y0 and bounds[2] >= x1 and bounds[3] >= y1  # the region is in view
    assert (bounds[2] - bounds[0]) < IMAGE_W / 2  # and the view is zoomed in on it
    assert page.locator(".next-highlight").get_attribute("visibility") == "visible"
    page.screenshot(path=artifacts / "review-next.png")
    for _ in range(100):
        if Review.objects.get(pk=review_id).seen_regions:
            break
        page.wait_for_timeout(20)
    assert len(Review.objects.get(pk=review_id).seen_regions) == 1
    assert "to see" in page.locator(".next-info").inner_text()
    # The next one is another region (the first is read before the click, which may answer at once).
    first = page.locator(ROOT).get_attribute("data-next-region")
    page.click("[data-action=next-region]")
    page.wait_for_function(f"(first) => document.querySelector('{ROOT}').dataset.nextRegion !== first",
                           arg=first)
    assert page.js_errors == []


def test_another_expert_can_neither_see_nor_change_the_review(page, login, mosaic, expert_user, make_user,
                                                              artifacts) -> None:
    from annotations import reviews
    from annotations.layers import raster_url
    from annotations.models import Review
    from rcmweb.access import Role

    review, _ = reviews.review_start(mosaic=mosaic, user=expert_user)
    reviews.review_edit(review=review, user=expert_user, revision=1, op="paint", class_value=2,
                        geometry={"type": "rectangle", "x0": 0, "y0": 0, "x1": 800, "y1": 800})
    before = review_raster(review.pk).copy()
    make_user("eve", Role.EXPERT)
    open_as(page, login, mosaic, username="eve")
    keys = page.evaluate(f"() => [...{VIEWER}.overlays.entries.keys()]")
    assert f"layer:{review.layer_id}" not in keys
    assert page.locator("[data-action=start-review]").is_visible()
    assert page.locator(".review-state").is_hidden()
    answers = page.evaluate("""async (id) => {
      const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
      const post = (url, body) => fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json',
        'X-CSRFToken': csrf}, body: JSON.stringify(body)}).then((r) => r.status);
      return {
        review: (await fetch(`/api/reviews/${id}/`)).status,
        history: (await fetch(`/api/reviews/${id}/edits/`)).status,
        agreement: (await fetch(`/api/reviews/${id}/agreement/`)).status,
        edit: await post(`/api/reviews/${id}/edits/`, {revision: 2, op: 'paint', class_value: 1,
          geometry: {type: 'rectangle', x0: 0, y0: 0, x1: 100, y1: 100}}),
        undo: await post(`/api/reviews/${id}/undo/`, {revision: 2}),
        submit: await post(`/api/reviews/${id}/submit/`, {}),
      };
    }""", review.pk)
    assert answers == {"review": 404, "history": 404, "agreement": 404, "edit": 404, "undo": 404, "submit": 404}
    url = raster_url(mosaic, "layer", review.layer_id, "r2", "labels")
    assert page.evaluate("async (url) => (await fetch(url)).status", url) == 404
    # Eve's own review is another one; erin's is untouched.
    eve_review = start_review(page)
    assert eve_review != review.pk
    np.testing.assert_array_equal(review_raster(review.pk), before)
    assert Review.objects.get(pk=review.pk).layer.revision == 2

    # An admin sees who reviewed what (and does not get anyone's review as theirs).
    page.context.clear_cookies()
    open_as(page, login, mosaic, username="ada")
    page.locator(".all-review").nth(1).wait_for()
    listed = page.locator(".all-review").all_inner_texts()
    assert any("erin" in row and "In progress" in row for row in listed)
    assert any("eve" in row for row in listed)
    assert page.locator("[data-action=start-review]").inner_text() == "Start my review"
    page.screenshot(path=artifacts / "review-admin.png")
    assert [e for e in page.js_errors if not e.startswith("Failed to load resource")] == []  # the 404s above


# ---- the browser's pieces on their own ---------------------------------------------------------------------------
def random_geometries(rng: np.random.Generator, width: int, height: int, um_per_px: float, count: int) -> list[dict]:
    """Strokes (random walks, 2-60 µm radius), polygons (3-8 corners) and rectangles, some partly off the image."""
    shapes = []
    for i in range(count):
        kind = ("stroke", "polygon", "rectangle")[i % 3]
        centre = rng.uniform([-0.05 * width, -0.05 * height], [1.05 * width, 1.05 * height])
        if kind == "stroke":  # points a quarter of the radius apart, as the brush keeps them
            radius_um = float(np.round(rng.uniform(2, 60), 2))
            steps = rng.normal(0, 0.25 * radius_um / um_per_px, (int(rng.integers(1, 200)), 2))
            points = centre + np.cumsum(steps, axis=0)
            shapes.append({"type": "stroke", "points": np.round(points, 1).tolist(), "radius_um": radius_um})
        elif kind == "polygon":
            n = int(rng.integers(3, 9))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = rng.uniform(20, 200, n)
            points = centre + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
            shapes.append({"type": "polygon", "points": np.round(points, 1).tolist()})
        else:
            x1, y1 = centre + rng.uniform(-300, 300, 2)
            shapes.append({"type": "rectangle", "x0": float(centre[0]), "y0": float(centre[1]), "x1": float(x1),
                           "y1": float(y1)})
    return shapes


def test_local_rasteriser_draws_what_the_server_stores(page) -> None:
    """geometry.js against annotations.geometry on random shapes, on two frames (one with unequal x and y scales):
    rectangles exactly, polygons and strokes but for a few outline pixels (0.2 % here; the server's answer then
    replaces them)."""
    from annotations.geometry import Frame, GeometryRejected, parse_geometry, rasterise

    page.goto("/accounts/login/")
    frames = [Frame(width=IMAGE_W, height=IMAGE_H, working_width=WORK_W, working_height=WORK_H, um_per_px=1.0),
              Frame(width=1200, height=900, working_width=150, working_height=113, um_per_px=0.5)]
    rng = np.random.default_rng(7)
    differing = total = 0
    for frame in frames:
        shapes = random_geometries(rng, frame.width, frame.height, frame.um_per_px, 60)
        local = page.evaluate("""async ([frame, shapes]) => {
          const g = await import('/static/frontend/js/geometry.js');
          const f = g.frameOf(frame);
          return shapes.map((shape) => {
            const r = g.rasterise(shape, f);
            return r && {region: r.region, mask: r.mask ? Array.from(r.mask) : null};
          });
        }""", [{"width": frame.width, "height": frame.height, "working_width": frame.working_width,
                "working_height": frame.working_height, "um_per_px": frame.um_per_px}, shapes])
        for shape, mine in zip(shapes, local, strict=True):
            try:
                server = rasterise(parse_geometry(shape, frame), frame)
            except GeometryRejected:
                assert mine is None, shape  # covers nothing for both
                continue
            assert mine is not None, shape
            a = np.zeros((frame.working_height, frame.working_width), bool)
            x0, y0, x1, y1 = server.bbox
            a[y0:y1, x0:x1] = server.mask
            b = np.zeros_like(a)
            r = mine["region"]
            b[r["y"]:r["y"] + r["height"], r["x"]:r["x"] + r["width"]] = (
                True if mine["mask"] is None else np.array(mine["mask"], bool).reshape(r["height"], r["width"]))
            if shape["type"] == "rectangle":
                np.testing.assert_array_equal(a, b)
            differing += int((a != b).sum())
            total += int(a.sum())
    print(f"\nlocal vs server rasteriser: {differing} of {total} pixels differ ({100 * differing / total:.2f} %)")
    assert differing <= 0.01 * total


def test_edit_queue_posts_in_order_and_takes_refused_edits_back(page) -> None:
    """edits.js with a fake server: ops go one at a time with the revision the previous answer gave, an open stroke
    holds the ones after it, the server's pixels replace the local guess under the pending edits, a refused edit
    (400) is lifted off alone, a stale one (409 with another revision) drops everything pending and asks for a
    reload, a 409 about the op itself (nothing to undo) drops that op only, and no answer is tried again."""
    page.goto("/accounts/login/")
    log = page.evaluate("""async () => {
      const {EditQueue, LocalChange} = await import('/static/frontend/js/edits.js');
      const {LabelOverlay} = await import('/static/frontend/js/overlay.js');
      const {ApiError} = await import('/static/frontend/js/api.js');
      const classes = [0, 1, 2, 3, 4, 5].map((value) => ({value, colour: '#808080'}));
      const overlay = new LabelOverlay({width: 8, height: 2, data: new Uint8Array(16).fill(255), pixelWidth: 1,
        pixelHeight: 1, classes});
      const row = () => Array.from(overlay.data.slice(0, 8));
      const calls = [];
      const events = [];
      const send = (op, revision) => new Promise((resolve, reject) => calls.push({op, revision, resolve, reject}));
      const queue = new EditQueue({overlay, revision: 1, send, retryDelayMs: 1,
        onRefused: (error, op, dropped) => events.push(`refused ${op.id} ${error.status} [${dropped.map((o) => o.id)}]`),
        onResync: () => events.push('resync')});
      const paint = (x, value, open = false) => {
        const change = new LocalChange(overlay, (c) => c.apply({x, y: 0, width: 1, height: 1}, value));
        change.reapply();
        return queue.add({kind: 'edit', body: {x, value}, change, open});
      };
      const answer = (x, values, revision) => ({revision, bbox: [x, 0, x + values.length, 1],
        patch: {width: values.length, height: 1, encoding: 'base64-uint8-rows', data: btoa(String.fromCharCode(...values))}});
      const tick = () => new Promise((r) => setTimeout(r, 5));
      const out = {};

      const a = paint(0, 2);
      const stroke = paint(1, 3, true);
      const c = paint(2, 4);
      out.drawnAtOnce = row();
      out.firstCalls = calls.map((call) => [call.op.id, call.revision]);
      // The server writes 2 at x 0 and, unlike the local guess, also at x 3.
      calls[0].resolve(answer(0, [2, 255, 255, 2], 2));
      await tick();
      out.afterFirst = row();
      out.heldByStroke = calls.length;
      queue.close(stroke, {x: 1, value: 3});
      await tick();
      out.strokeCall = [calls[1].op.id, calls[1].revision];
      calls[1].reject(new ApiError('covers no pixel', 400, {geometry: ['covers no pixel']}));
      await tick();
      out.afterRefusal = row();
      out.thirdCall = [calls[2].op.id, calls[2].revision];
      calls[2].resolve(answer(2, [4], 3));
      await tick();
      out.settled = [row(), queue.pending, queue.revision];

      // No answer: tried again; then a stale revision drops every pending edit and asks for a reload.
      const d = paint(5, 1);
      const e = paint(6, 1);
      await tick();
      calls[3].reject(new ApiError('Cannot reach the server.', 0));
      await tick(); await tick();
      out.retried = [calls[4].op.id, calls[4].revision];
      calls[4].reject(new ApiError('The edit was made on revision 3, but the layer is at revision 5', 409,
        {detail: 'stale', revision: 5}));
      await tick();
      out.afterStale = [row(), queue.pending, queue.revision];
      // Nothing to undo (409 without a revision): that op alone goes.
      queue.add({kind: 'undo'});
      const f = paint(7, 5);
      await tick();
      calls[5].reject(new ApiError('Nothing to undo.', 409, {detail: 'Nothing to undo.'}));
      await tick();
      out.afterNothing = [calls[6].op.id, calls[6].revision, row()[7]];
      out.events = events;
      out.ids = {a: a.id, stroke: stroke.id, c: c.id, d: d.id, e: e.id, f: f.id};
      return out;
    }""")
    ids = log["ids"]
    assert log["drawnAtOnce"] == [2, 3, 4, 255, 255, 255, 255, 255]
    assert log["firstCalls"] == [[ids["a"], 1]]  # one at a time
    assert log["afterFirst"] == [2, 3, 4, 2, 255, 255, 255, 255]  # the server's pixels, pending edits on top
    assert log["heldByStroke"] == 1  # the open stroke holds the edit after it
    assert log["strokeCall"] == [ids["stroke"], 2]
    assert log["afterRefusal"] == [2, 255, 4, 2, 255, 255, 255, 255]  # the refused stroke alone is lifted off
    assert log["thirdCall"] == [ids["c"], 2]
    assert log["settled"] == [[2, 255, 4, 2, 255, 255, 255, 255], 0, 3]
    assert log["retried"] == [ids["d"], 3]
    assert log["afterStale"] == [[2, 255, 4, 2, 255, 255, 255, 255], 0, 5]
    assert log["afterNothing"] == [ids["f"], 5, 5]
    assert log["events"] == [f"refused {ids['stroke']} 400 [{ids['stroke']}]",
                             f"refused {ids['d']} 409 [{ids['d']},{ids['e']}]", "resync",
                             f"refused {ids['f'] - 1} 409 [{ids['f'] - 1}]"]


# ---- the agreement page ------------------------------------------------------------------------------------------
def test_agreement_page_shows_the_review_table_plots_versions_and_expert_pairs(page, login, mosaic, expert_user,
                                                                               artifacts) -> None:
    from annotations import reviews

    review, _ = reviews.review_start(mosaic=mosaic, user=expert_user)
    reviews.review_edit(review=review, user=expert_user, revision=1, op="accept",
                        geometry={"type": "rectangle", "x0": 200, "y0": 200, "x1": 1600, "y1": 1200})
    reviews.review_edit(review=review, user=expert_user, revision=2, op="paint", class_value=4,
                        geometry={"type": "polygon", "points": [[300, 300], [900, 320], [700, 900]]})
    report = reviews.review_report(review.__class__.objects.get(pk=review.pk)).to_dict()
    login("erin")
    page.goto(f"/mosaics/{mosaic.pk}/agreement/?review={review.pk}")
    page.wait_for_function("() => document.getElementById('agreement-page').dataset.state === 'ready'")
    page.wait_for_function("() => [...document.querySelectorAll('.plot img')].every((img) => img.naturalWidth > 0)")
    figures = page.locator("#review-figures .figure-value").all_inner_texts()
    assert figures[0] == f"{100 * report['accuracy']:.1f} %"
    assert figures[3] == f"{report['labelled_pixels']:,}"
    rows = page.locator("#class-table tbody tr")
    assert rows.count() == 6
    nested = page.locator("#class-table tr[data-key=nested] td").all_inner_texts()
    assert nested[0] == "—" or nested[0] == f"{100 * report['sensitivity']['nested']:.1f} %"
    assert nested[4] == f"{sum(report['confusion'][4]):,}"  # expert px of the class
    versions = page.locator("#version-rows tr")
    assert versions.count() == 1 and "tiny-a" in versions.first.inner_text() and "active" in versions.first.inner_text()
    layers = page.locator("#layer-table tbody tr").all_inner_texts()
    assert any("Imported" in row for row in layers) and any(f"Review #{review.pk}" in row for row in layers)
    pairs = page.locator("#pair-rows tr")
    assert pairs.count() == 1 and "Imported" in pairs.first.inner_text()
    page.screenshot(path=artifacts / "review-agreement-page.png", full_page=True)
    assert page.js_errors == []
