"""Overlay costs in the browser at a real mosaic's size: a 12000 × 12000 px mosaic at 1 µm/px, whose label layers
are 3000 × 3000 px at 4 µm/px. Runs the viewer's own modules (overlay.js) and OpenSeadragon in headless Chromium
(Playwright); the page, modules, tiles and rasters are served from memory, so only the browser's work is timed.

Prints the median ms of: decoding a layer PNG, colouring a whole layer (first show, class toggle), a brush edit
(setPixels of a disc), drawing one frame of two overlays at three zooms, and the first frame of the next field of
view after a one-screen pan with two overlays on. Tiles here come through Playwright's request interception, one
at a time, so the time until all tiles are in is measured end to end instead, through the app's server, by
tests/e2e/test_overlays.py (artifacts/e2e/fov-timing.json). Goals: a class toggle ≤ 50 ms (three 60 Hz frames),
a brush edit ≤ 2 ms, an overlay frame ≤ 8 ms at working zooms, so panning and painting stay at 60 frames/s.

    .venv/bin/python bench/viewer_overlays.py [--repeat 7] [--side 3000]
"""

from __future__ import annotations

import argparse
import io
import json
import mimetypes
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "frontend" / "static"
OSD = ROOT / "node_modules" / "openseadragon" / "build" / "openseadragon" / "openseadragon.min.js"
ORIGIN = "http://bench.rcmweb"
WORKING_SCALE = 4  # image px per working px (1 µm/px mosaic, 4 µm/px labels)
TILE = 254  # Deep Zoom tile edge of the app's pyramids (254 + 1 overlap)
BRUSH_RADIUS_PX = 16  # working px: a 128 µm brush, a typical correction stroke's width
WINDOW = {"width": 1440, "height": 900}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/static/frontend/css/overlays.css">
<style>body{margin:0;background:#000} #osd{position:absolute;inset:0}</style></head>
<body><div id="osd"></div><script src="/osd.js"></script></body></html>"""

MEASURE = """async ({side, repeat, brush}) => {
  const {fetchRaster, LabelOverlay, HeatmapOverlay, OverlayStage} = await import('/static/frontend/js/overlay.js');
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const time = async (fn) => { const t = performance.now(); await fn(); return performance.now() - t; };
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const full = side * %(scale)d;
  const viewer = OpenSeadragon({element: document.getElementById('osd'), drawer: 'canvas', showNavigationControl: false,
    animationTime: 0.6, preload: false, maxZoomPixelRatio: 4,
    tileSources: {width: full, height: full, tileSize: %(tile)d, tileOverlap: 1,
                  getTileUrl: (level, x, y) => `/tile.jpg?${level}/${x}_${y}`}});
  await new Promise((r) => viewer.addOnceHandler('open', r));
  const image = viewer.world.getItemAt(0);
  const loaded = () => new Promise((r) => {
    const check = () => (image.getFullyLoaded() ? r() : image.addOnceHandler('fully-loaded-change', check));
    check();
  });
  await loaded();
  const out = {};
  const classes = [[0, '#7f7f7f'], [1, '#f2e600'], [2, '#1f77b4'], [3, '#2ca02c'], [4, '#d62728'], [5, '#9467bd']]
    .map(([value, colour]) => ({value, colour}));
  const common = {pixelWidth: %(scale)d, pixelHeight: %(scale)d, opacity: 0.45};
  let raster;
  const decodes = [];
  for (let i = 0; i < repeat; i += 1) decodes.push(await time(async () => { raster = await fetchRaster('/labels.png'); }));
  out.decode_png_ms = median(decodes);
  let labels;
  const builds = [];
  for (let i = 0; i < repeat; i += 1) {
    builds.push(await time(() => { labels = new LabelOverlay({...raster, data: raster.data.slice(), classes, ...common}); }));
  }
  out.colour_whole_layer_ms = median(builds);
  const toggles = [];
  for (let i = 0; i < repeat; i += 1) toggles.push(await time(() => labels.setClassVisible(2, i %% 2 === 1)));
  out.class_toggle_ms = median(toggles);
  const n = 2 * brush + 1;
  const mask = new Uint8Array(n * n).map((_, k) => ((k %% n - brush) ** 2 + (Math.floor(k / n) - brush) ** 2 <= brush * brush ? 1 : 0));
  // Batches of 100 dabs along a stroke (one dab is below the browser's 0.1 ms timer resolution).
  const edits = [];
  for (let i = 0; i < repeat; i += 1) {
    edits.push(await time(() => {
      for (let k = 0; k < 100; k += 1) labels.setPixels({x: 100 + 7 * k, y: 200 + 5 * k + i, width: n, height: n}, 4, mask);
    }) / 100);
  }
  out.brush_edit_ms = median(edits);
  const heat = await fetchRaster('/uncertainty.png');
  out.colour_heatmap_ms = await time(() => new HeatmapOverlay({...heat, ...common}));

  const stage = new OverlayStage({viewer, tiledImage: image});
  const prediction = new LabelOverlay({...raster, classes, ...common});
  stage.add(prediction, {z: 20});
  stage.add(labels, {z: 30});
  const frames = {};
  for (const [name, zoom] of [['home', null], ['100%%', 1], ['400%%', 4]]) {
    if (zoom === null) viewer.viewport.goHome(true);
    else viewer.viewport.zoomTo(image.imageToViewportZoom(zoom), null, true);
    await frame();
    await loaded();
    const draws = [];
    for (let i = 0; i < repeat; i += 1) {
      for (const entry of stage.entries.values()) entry.key = null; // force a full redraw of both overlays
      draws.push(await time(() => stage.drawAll()));
    }
    frames[name] = median(draws);
  }
  out.overlay_frame_ms = frames;

  viewer.viewport.zoomTo(image.imageToViewportZoom(1), null, true);
  viewer.viewport.panTo(image.imageToViewportCoordinates(1000, 1000), true);
  await frame();
  await loaded();
  const pans = [];
  for (let i = 0; i < repeat; i += 1) {
    const bounds = viewer.viewport.getBounds();
    const t0 = performance.now();
    let first = null;
    const onUpdate = () => { if (first === null) first = performance.now() - t0; };
    viewer.addHandler('update-viewport', onUpdate);
    const finished = new Promise((r) => viewer.addOnceHandler('animation-finish', r));
    viewer.viewport.panBy(new OpenSeadragon.Point(bounds.width, 0), true);
    await finished;
    viewer.removeHandler('update-viewport', onUpdate);
    pans.push(first);
    await loaded(); // before the next pan, so every pan starts from a complete view
  }
  out.next_fov_first_frame_ms = median(pans);
  return out;
}"""


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def make_rasters(side: int) -> tuple[bytes, bytes, bytes]:
    """Blocky class labels (with unlabelled holes), a smooth uncertainty map, and one textured JPEG tile."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 7, size=(side // 50 + 1, side // 50 + 1)).astype(np.uint8)
    blocks[blocks == 6] = 255
    labels = np.kron(blocks, np.ones((50, 50), np.uint8))[:side, :side]
    yy, xx = np.mgrid[0:side, 0:side] / side
    uncertainty = (255 * (0.5 + 0.5 * np.sin(9 * xx) * np.cos(7 * yy))).astype(np.uint8)
    tile = (128 + 60 * np.sin(np.arange(TILE + 2)[:, None] / 5) * np.cos(np.arange(TILE + 2)[None, :] / 7))
    buffer = io.BytesIO()
    Image.fromarray(tile.astype(np.uint8)).save(buffer, format="JPEG", quality=85)
    return png(labels), png(uncertainty), buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--side", type=int, default=3000, help="working raster side (px)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    labels_png, uncertainty_png, tile_jpg = make_rasters(args.side)
    executable = os.environ.get("RCMWEB_E2E_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

    def serve(route) -> None:  # noqa: ANN001 - Playwright route
        path = route.request.url[len(ORIGIN):].split("?")[0]
        if path == "/":
            route.fulfill(body=PAGE, content_type="text/html")
        elif path == "/osd.js":
            route.fulfill(body=OSD.read_bytes(), content_type="text/javascript")
        elif path.startswith("/static/"):
            file = STATIC / path[len("/static/"):]
            route.fulfill(body=file.read_bytes(), content_type=mimetypes.guess_type(file.name)[0] or "text/plain")
        elif path == "/tile.jpg":
            route.fulfill(body=tile_jpg, content_type="image/jpeg")
        elif path == "/labels.png":
            route.fulfill(body=labels_png, content_type="image/png")
        elif path == "/uncertainty.png":
            route.fulfill(body=uncertainty_png, content_type="image/png")
        else:
            route.fulfill(status=404, body="")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=WINDOW)
        page.route(f"{ORIGIN}/**", serve)
        page.goto(f"{ORIGIN}/")
        script = MEASURE % {"scale": WORKING_SCALE, "tile": TILE}
        result = page.evaluate(script, {"side": args.side, "repeat": args.repeat, "brush": BRUSH_RADIUS_PX})
        version = browser.version
        browser.close()
    result = {"browser": f"Chromium {version} headless, no GPU", "window": WINDOW,
              "mosaic_px": args.side * WORKING_SCALE, "layer_px": args.side, **result}
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "viewer_overlays.json").write_text(json.dumps(result, indent=2))
    print(f"{result['browser']}, window {WINDOW['width']}×{WINDOW['height']}, "
          f"{args.side}² layer over a {args.side * WORKING_SCALE}² mosaic (median of {args.repeat})")
    for key, value in result.items():
        if isinstance(value, dict) and key.endswith("_ms"):
            for zoom, ms in value.items():
                print(f"  overlay frame, 2 layers, {zoom:5s} {ms:8.2f}")
        elif key.endswith("_ms"):
            print(f"  {key:31s} {value:8.2f}")


if __name__ == "__main__":
    main()
