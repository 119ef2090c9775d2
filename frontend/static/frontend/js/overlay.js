// Raster overlays drawn over the mosaic in OpenSeadragon: class labels (predictions, expert and imported labels,
// coarser MUNet levels) and the uncertainty heatmap.
//
// Design: a layer is NOT tiled. Its lossless PNG (one channel, at working resolution) is fetched once and
// decoded into a byte array kept in memory (`overlay.data`, row-major, `width` × `height`). The array is
// coloured in JS through a 256-entry lookup table into an RGBA canvas of the same size (`overlay.source`).
// Every frame OpenSeadragon draws, the OverlayStage copies the visible part of that canvas onto a
// screen-sized canvas over the image with nearest-neighbour scaling, so each raster pixel is a crisp block at
// exactly the place of the mosaic pixels it covers. Class toggles, colours and opacity recolour or restyle
// the in-memory data and never fetch again; review tools change labels with setPixels(region, values) and the
// change is on screen in the next frame.
//
// Coordinates: "raster px" index the array; "image px" are full-resolution mosaic pixels (what OpenSeadragon's
// base TiledImage calls image coordinates). One raster px covers pixelWidth × pixelHeight image px
// (full width / working width for working-resolution rasters, × 2^m for MUNet level m).

import {colormapTable, parseColour} from './colormap.js';

/* global OpenSeadragon */

export const UNLABELLED = 255;

// Largest raster accepted (px per side): a 20000 px mosaic at 1 µm/px has a 5000 px working copy; 16384 is the
// canvas side limit of current browsers, far above any working copy the server writes.
export const MAX_RASTER_SIDE = 16384;

// Uncertainty heatmap: below this uncertainty (0..1) nothing is drawn, so confident regions show the image;
// from there the colour fades in and is opaque from HEATMAP_OPAQUE_ABOVE. The model's uncertainty is
// 1 − (p1 − p2): under 0.2 the best class leads the second by more than 0.8, which experts need not check.
export const HEATMAP_TRANSPARENT_BELOW = 0.2;
export const HEATMAP_OPAQUE_ABOVE = 0.6;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// RGBA scratch memory shared by every overlay's redraw: colours exist only on their way into a source canvas, so
// one buffer as large as the largest redraw serves all layers (a fresh 36 MB buffer per class toggle of a 3000²
// layer would cost page faults and garbage collection: ~5× slower than reusing one, bench/viewer_overlays.py).
let scratch = new ArrayBuffer(0);

/** An ImageData of width × height over the shared scratch memory (valid until the next call). */
function scratchImageData(width, height) {
  const bytes = width * height * 4;
  if (scratch.byteLength < bytes) scratch = new ArrayBuffer(bytes);
  return new ImageData(new Uint8ClampedArray(scratch, 0, bytes), width, height);
}

/** One RGBA pixel as the Uint32 that a Uint32Array view of ImageData holds on this machine. */
export function packRGBA(r, g, b, a = 255) {
  return LITTLE_ENDIAN
    ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0
    : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
}

/** A region {x, y, width, height} of integers, clipped to a width × height raster (possibly empty). */
export function clampRegion(region, width, height) {
  const x0 = Math.max(0, Math.floor(region.x));
  const y0 = Math.max(0, Math.floor(region.y));
  const x1 = Math.min(width, Math.ceil(region.x + region.width));
  const y1 = Math.min(height, Math.ceil(region.y + region.height));
  return {x: x0, y: y0, width: Math.max(0, x1 - x0), height: Math.max(0, y1 - y0)};
}

/**
 * Fetch a one-channel PNG raster and decode it to bytes, exactly (no colour management, no premultiplication).
 * Resolves {width, height, data: Uint8Array(width × height)}. `expect` {width, height} checks the size.
 */
export async function fetchRaster(url, {signal, expect = null} = {}) {
  const response = await fetch(url, {credentials: 'same-origin', signal});
  if (!response.ok) {
    throw new Error(response.status === 404
      ? 'The layer is no longer there (it was replaced or removed). Reload the page.'
      : `The layer could not be loaded: the server answered ${response.status}.`);
  }
  const bitmap = await createImageBitmap(await response.blob(),
    {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
  const {width, height} = bitmap;
  if (expect && (width !== expect.width || height !== expect.height)) {
    bitmap.close();
    throw new Error(`The layer is ${width} × ${height} px; expected ${expect.width} × ${expect.height} px.`);
  }
  if (width > MAX_RASTER_SIDE || height > MAX_RASTER_SIDE) {
    bitmap.close();
    throw new Error(`The layer is ${width} × ${height} px, above the ${MAX_RASTER_SIDE} px this viewer draws.`);
  }
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < data.length; i += 1, j += 4) data[i] = rgba[j];
  return {width, height, data};
}

/**
 * A raster of byte values drawn through a 256-entry colour table. Subclasses fill `this.lut` in #buildLut.
 * Not drawn until added to an OverlayStage.
 */
export class RasterOverlay {
  /**
   * @param {object} options
   * @param {number} options.width raster px
   * @param {number} options.height raster px
   * @param {Uint8Array} options.data width × height values, row-major (kept, not copied)
   * @param {number} options.pixelWidth image px per raster px along x
   * @param {number} options.pixelHeight image px per raster px along y
   */
  constructor({width, height, data, pixelWidth, pixelHeight, opacity = 1, visible = true}) {
    if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
      throw new RangeError(`Raster size must be positive integers, got ${width} × ${height}`);
    }
    if (!(data instanceof Uint8Array) || data.length !== width * height) {
      throw new RangeError(`data must be a Uint8Array of ${width} × ${height} = ${width * height} values`);
    }
    if (!(pixelWidth > 0 && pixelHeight > 0)) {
      throw new RangeError(`pixelWidth and pixelHeight must be positive, got ${pixelWidth}, ${pixelHeight}`);
    }
    this.width = width;
    this.height = height;
    this.data = data;
    this.pixelWidth = pixelWidth;
    this.pixelHeight = pixelHeight;
    this.opacity = opacity;
    this.visible = visible;
    this.lut = new Uint32Array(256);
    this.source = document.createElement('canvas');
    this.source.width = width;
    this.source.height = height;
    this.sourceContext = this.source.getContext('2d');
    this.stage = null;
    this.version = 0; // bumped on every change of the coloured source, so the stage knows to draw again
  }

  /** Size of the raster in image px: {width, height}. */
  get extent() {
    return {width: this.width * this.pixelWidth, height: this.height * this.pixelHeight};
  }

  /** The whole raster as a region. */
  get bounds() {
    return {x: 0, y: 0, width: this.width, height: this.height};
  }

  /** Rebuild the colour table and recolour everything. */
  refresh() {
    this.buildLut();
    this.redraw();
  }

  /** Fill this.lut (subclasses). */
  buildLut() {
    throw new Error('RasterOverlay.buildLut must be implemented by a subclass');
  }

  /**
   * Recolour `region` (raster px; default all) from the data and show it at once. The RGBA pixels exist only
   * on their way into the source canvas (shared scratch memory), so a layer holds its values and its canvas.
   */
  redraw(region = this.bounds) {
    const r = clampRegion(region, this.width, this.height);
    if (r.width === 0 || r.height === 0) return;
    const pixels = scratchImageData(r.width, r.height);
    const rgba = new Uint32Array(pixels.data.buffer, 0, r.width * r.height);
    const {lut, data, width} = this;
    for (let row = 0; row < r.height; row += 1) {
      let i = (r.y + row) * width + r.x;
      let j = row * r.width;
      const end = i + r.width;
      for (; i < end; i += 1, j += 1) rgba[j] = lut[data[i]];
    }
    this.sourceContext.putImageData(pixels, r.x, r.y);
    this.version += 1;
    if (this.stage) this.stage.requestDraw();
  }

  setOpacity(opacity) {
    this.opacity = Math.max(0, Math.min(1, Number(opacity)));
    if (this.stage) this.stage.restyle(this);
  }

  setVisible(visible) {
    this.visible = Boolean(visible);
    if (this.stage) {
      this.stage.restyle(this);
      this.stage.requestDraw();
    }
  }

  /** Raster px under an image point {x, y} (may lie outside the raster). */
  imageToRaster(point) {
    return {x: Math.floor(point.x / this.pixelWidth), y: Math.floor(point.y / this.pixelHeight)};
  }

  /** Image-px rectangle covered by a raster region. */
  rasterToImage(region) {
    return {x: region.x * this.pixelWidth, y: region.y * this.pixelHeight,
      width: region.width * this.pixelWidth, height: region.height * this.pixelHeight};
  }

  /** The value at raster px (x, y), or undefined outside. */
  valueAt(x, y) {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return undefined;
    return this.data[y * this.width + x];
  }

  /** A copy of the values of `region` (inside the raster), row-major. */
  getPixels(region) {
    const r = this.#checkInside(region);
    const out = new Uint8Array(r.width * r.height);
    for (let row = 0; row < r.height; row += 1) {
      const start = (r.y + row) * this.width + r.x;
      out.set(this.data.subarray(start, start + r.width), row * r.width);
    }
    return out;
  }

  /** Number of pixels of each value 0..255 (Uint32Array(256)). */
  histogram() {
    const counts = new Uint32Array(256);
    for (let i = 0; i < this.data.length; i += 1) counts[this.data[i]] += 1;
    return counts;
  }

  #checkInside(region) {
    const {x, y, width, height} = region;
    if (![x, y, width, height].every(Number.isInteger) || width < 0 || height < 0 || x < 0 || y < 0
        || x + width > this.width || y + height > this.height) {
      throw new RangeError(`Region ${JSON.stringify(region)} must be integers inside the ${this.width} × `
        + `${this.height} raster (clip it with clampRegion first)`);
    }
    return region;
  }

  /** For subclasses that write: the checked region. */
  checkInside(region) {
    return this.#checkInside(region);
  }

  destroy() {
    if (this.stage) this.stage.remove(this);
    this.source.width = 0;
    this.source.height = 0;
  }
}

/**
 * Class labels (0..5, 255 = unlabelled) coloured by class, with per-class visibility. The data array is the
 * label layer itself: review tools edit it with setPixels and it is drawn again at once.
 */
export class LabelOverlay extends RasterOverlay {
  /**
   * @param {object} options RasterOverlay options, plus
   * @param {Array<{value: number, colour: string}>} options.classes colours from /api/label-classes/
   * @param {Iterable<number>} [options.hiddenClasses] values not drawn
   */
  constructor({classes, hiddenClasses = [], ...options}) {
    super(options);
    this.colours = new Map();
    this.hidden = new Set(hiddenClasses);
    for (const item of classes) this.colours.set(item.value, parseColour(item.colour));
    this.refresh();
  }

  buildLut() {
    this.lut.fill(0);
    for (const [value, [r, g, b]] of this.colours) {
      if (value !== UNLABELLED && !this.hidden.has(value)) this.lut[value] = packRGBA(r, g, b);
    }
  }

  isClassVisible(value) {
    return !this.hidden.has(value);
  }

  setClassVisible(value, visible) {
    if (visible === this.isClassVisible(value)) return;
    if (visible) this.hidden.delete(value);
    else this.hidden.add(value);
    this.refresh();
  }

  setClassColour(value, colour) {
    this.colours.set(value, parseColour(colour));
    this.refresh();
  }

  /**
   * Write labels into `region` (raster px, inside the raster) and draw them at once.
   * values: one class value for the whole region, or a Uint8Array of region.width × region.height;
   * mask: optional Uint8Array of the same size, only pixels where it is non-zero are written (a brush stroke).
   * Values must be known classes or 255 (erase). Returns the previous values of the region (for undo:
   * setPixels(region, previous) restores them).
   */
  setPixels(region, values, mask = null) {
    const r = this.checkInside(region);
    const n = r.width * r.height;
    const single = typeof values === 'number';
    if (single && !(values === UNLABELLED || this.colours.has(values))) {
      throw new RangeError(`Label ${values} is not a class value (${[...this.colours.keys()].join(', ')}) nor 255`);
    }
    if (!single && (!(values instanceof Uint8Array) || values.length !== n)) {
      throw new RangeError(`values must be a class value or a Uint8Array of ${r.width} × ${r.height} = ${n}`);
    }
    if (mask !== null && (!(mask instanceof Uint8Array) || mask.length !== n)) {
      throw new RangeError(`mask must be a Uint8Array of ${r.width} × ${r.height} = ${n}`);
    }
    const previous = this.getPixels(r);
    const {data, width} = this;
    for (let row = 0; row < r.height; row += 1) {
      const base = (r.y + row) * width + r.x;
      const local = row * r.width;
      for (let col = 0; col < r.width; col += 1) {
        const k = local + col;
        if (mask === null || mask[k] !== 0) data[base + col] = single ? values : values[k];
      }
    }
    this.redraw(r);
    return previous;
  }

  /** Pixels per class value {value: count} of the classes known (unlabelled left out). */
  classCounts() {
    const histogram = this.histogram();
    return Object.fromEntries([...this.colours.keys()].sort((a, b) => a - b).map((v) => [v, histogram[v]]));
  }
}

/**
 * A 0..255 raster (uncertainty × 255) coloured with a perceptual colour map; low values fade to transparent.
 */
export class HeatmapOverlay extends RasterOverlay {
  constructor({colormap = 'inferno', transparentBelow = HEATMAP_TRANSPARENT_BELOW,
    opaqueAbove = HEATMAP_OPAQUE_ABOVE, ...options}) {
    super(options);
    if (!(transparentBelow >= 0 && opaqueAbove > transparentBelow && opaqueAbove <= 1)) {
      throw new RangeError(`Need 0 ≤ transparentBelow < opaqueAbove ≤ 1, got ${transparentBelow}, ${opaqueAbove}`);
    }
    this.colormap = colormap;
    this.transparentBelow = transparentBelow;
    this.opaqueAbove = opaqueAbove;
    this.refresh();
  }

  /** Alpha 0..1 of a value 0..1. */
  alphaAt(u) {
    return Math.max(0, Math.min(1, (u - this.transparentBelow) / (this.opaqueAbove - this.transparentBelow)));
  }

  buildLut() {
    const table = colormapTable(this.colormap);
    for (let v = 0; v < 256; v += 1) {
      const [r, g, b] = table[v];
      this.lut[v] = packRGBA(r, g, b, Math.round(255 * this.alphaAt(v / 255)));
    }
  }
}

/**
 * The canvases over the OpenSeadragon image on which overlays are drawn, one per overlay (so opacity and
 * visibility are CSS and cost no drawing), kept in step with the viewport: every frame OpenSeadragon draws
 * ('update-viewport'), each visible overlay copies the part of its source in view, without smoothing.
 */
export class OverlayStage {
  /**
   * @param {object} options
   * @param {object} options.viewer OpenSeadragon.Viewer (2D canvas or WebGL drawer)
   * @param {object} options.tiledImage the mosaic's TiledImage: overlays are placed in its image px
   */
  constructor({viewer, tiledImage}) {
    this.viewer = viewer;
    this.tiledImage = tiledImage;
    this.entries = new Map(); // overlay → {canvas, context, z, key}
    this.element = document.createElement('div');
    this.element.className = 'overlay-stage';
    const drawerCanvas = viewer.drawer.canvas;
    drawerCanvas.after(this.element); // above the image, below OpenSeadragon's HTML overlays and controls
    this.frame = null;
    this.stats = {draws: 0, totalMs: 0, lastMs: 0, maxMs: 0, lastDrawAt: 0};
    this.drawAll = this.drawAll.bind(this);
    viewer.addHandler('update-viewport', this.drawAll);
    viewer.addHandler('resize', this.drawAll);
  }

  /** Show `overlay` over the image; larger z draws on top. */
  add(overlay, {z = 0} = {}) {
    if (this.entries.has(overlay)) return overlay;
    const canvas = document.createElement('canvas');
    canvas.className = 'overlay-canvas';
    const entry = {canvas, context: canvas.getContext('2d'), z, key: null};
    this.entries.set(overlay, entry);
    overlay.stage = this;
    const after = [...this.entries.entries()].filter(([o, e]) => o !== overlay && e.z > z)
      .sort((a, b) => a[1].z - b[1].z)[0];
    if (after) this.element.insertBefore(canvas, after[1].canvas);
    else this.element.append(canvas);
    this.restyle(overlay);
    this.#draw(overlay, entry);
    return overlay;
  }

  remove(overlay) {
    const entry = this.entries.get(overlay);
    if (!entry) return;
    entry.canvas.remove();
    this.entries.delete(overlay);
    overlay.stage = null;
  }

  /** Apply an overlay's opacity and visibility (CSS only). */
  restyle(overlay) {
    const entry = this.entries.get(overlay);
    if (!entry) return;
    entry.canvas.style.opacity = String(overlay.opacity);
    entry.canvas.hidden = !overlay.visible;
  }

  /** Draw everything in the next animation frame (several requests in one frame draw once). */
  requestDraw() {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.drawAll();
    });
  }

  drawAll() {
    const started = performance.now();
    let drawn = 0;
    for (const [overlay, entry] of this.entries) if (this.#draw(overlay, entry)) drawn += 1;
    if (drawn) {
      const ms = performance.now() - started;
      this.stats.draws += 1;
      this.stats.totalMs += ms;
      this.stats.lastMs = ms;
      this.stats.maxMs = Math.max(this.stats.maxMs, ms);
      this.stats.lastDrawAt = performance.now();
    }
  }

  /**
   * Affine map raster px → device px of the stage canvas, as [a, b, c, d, e, f] for setTransform:
   * x = a·u + c·v + e, y = b·u + d·v + f. Built from three corners of the overlay, so rotation and flips of the
   * viewport are followed too.
   */
  transformFor(overlay) {
    const ratio = this.#pixelRatio();
    const {width, height} = overlay.extent;
    const at = (x, y) => this.tiledImage.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
    const o = at(0, 0);
    const right = at(width, 0);
    const down = at(0, height);
    return [
      ((right.x - o.x) / overlay.width) * ratio, ((right.y - o.y) / overlay.width) * ratio,
      ((down.x - o.x) / overlay.height) * ratio, ((down.y - o.y) / overlay.height) * ratio,
      o.x * ratio, o.y * ratio,
    ];
  }

  #pixelRatio() {
    const drawerCanvas = this.viewer.drawer.canvas;
    return drawerCanvas.clientWidth ? drawerCanvas.width / drawerCanvas.clientWidth : (window.devicePixelRatio || 1);
  }

  #draw(overlay, entry) {
    if (!overlay.visible) return false;
    const {canvas, context} = entry;
    const drawerCanvas = this.viewer.drawer.canvas;
    if (canvas.width !== drawerCanvas.width || canvas.height !== drawerCanvas.height) {
      canvas.width = drawerCanvas.width;
      canvas.height = drawerCanvas.height;
      entry.key = null;
    }
    const m = this.transformFor(overlay);
    const key = `${m.join(',')}|${overlay.version}`;
    if (key === entry.key) return false; // same view, same colours: the canvas already shows it
    entry.key = key;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.clearRect(0, 0, canvas.width, canvas.height);
    const [a, b, c, d, e, f] = m;
    const det = a * d - b * c;
    if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return true;
    // The part of the raster in view: the canvas corners mapped back to raster px, rounded outwards.
    const us = [];
    const vs = [];
    for (const [x, y] of [[0, 0], [canvas.width, 0], [0, canvas.height], [canvas.width, canvas.height]]) {
      us.push((d * (x - e) - c * (y - f)) / det);
      vs.push((-b * (x - e) + a * (y - f)) / det);
    }
    const visible = clampRegion({x: Math.min(...us) - 1, y: Math.min(...vs) - 1,
      width: Math.max(...us) - Math.min(...us) + 2, height: Math.max(...vs) - Math.min(...vs) + 2},
    overlay.width, overlay.height);
    if (visible.width === 0 || visible.height === 0) return true;
    context.imageSmoothingEnabled = false; // nearest neighbour: crisp class blocks, no blended colours
    context.setTransform(a, b, c, d, e, f);
    context.drawImage(overlay.source, visible.x, visible.y, visible.width, visible.height,
      visible.x, visible.y, visible.width, visible.height);
    return true;
  }

  destroy() {
    this.viewer.removeHandler('update-viewport', this.drawAll);
    this.viewer.removeHandler('resize', this.drawAll);
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    for (const overlay of [...this.entries.keys()]) this.remove(overlay);
    this.element.remove();
  }
}
