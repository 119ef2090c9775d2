// Expert review in the viewer: start or resume one's review of the mosaic, correct the model's labels with the
// tools (accept region, brush, polygon fill, eraser; undo and redo on the server, so they survive a reload), see
// the history of edits and the agreement with the model change after each edit, jump to the most uncertain region
// nobody labelled yet, and submit. For experts and admins; trainees never load it (they label blind).
//
// An edit is drawn on the review's label overlay under the cursor (geometry.js rasterises it at working
// resolution, as the server will), then posted in order by the edit queue (edits.js); the server's pixels replace
// the local guess when it answers, and a refused edit is lifted off again with a message.
//
// Pieces: tools.js (pointer gestures and outlines), edits.js (the queue), geometry.js (shapes and rasters),
// figures.js (agreement formats). The controller is `app.review` (and window.rcmweb.viewer.review).

import {apiUrl, getJSON, request} from './api.js';
import {h, replaceChildren} from './dom.js';
import {EditQueue, LocalChange} from './edits.js';
import {formatDate, formatInt} from './format.js';
import {kappa, pct, pixelsToMm2, reportOf} from './figures.js';
import {frameOf, MAX_POINTS, MAX_RADIUS_UM, rasterise, rasteriseStroke} from './geometry.js';
import {fetchRaster, UNLABELLED} from './overlay.js';
import {ToolController} from './tools.js';
import {app} from './viewer.js';

// Brush radius limits (µm). The smallest draws a one-pixel line on a 4 µm/px working layer; the largest is what
// the server accepts (annotations.geometry.MAX_RADIUS_UM, a 1 mm wide dab). 20 µm (a 10 px wide line at 4 µm/px)
// covers a few cells: a good first size for correcting patterns.
export const BRUSH_MIN_UM = 2;
export const BRUSH_MAX_UM = MAX_RADIUS_UM;
export const BRUSH_DEFAULT_UM = 20;
// ',' and '.' change the brush radius by this factor: ten presses go from 20 µm to ~190 µm or ~2 µm.
export const BRUSH_STEP = 1.25;
// A stroke is sent in parts of at most this many points (the server takes 10 000): each part is a short request
// and one row of the history, and a part can be confirmed while the expert keeps drawing.
export const STROKE_PART_POINTS = 2000;
// Rows of the history listed (newest first); the API has every row.
export const HISTORY_ROWS = 40;
// Wait this long after the last confirmed edit before reading the history and class areas again: a burst of
// strokes costs one read, and the list still follows within a fraction of a second.
export const HISTORY_DELAY_MS = 250;
export const AREAS_DELAY_MS = 1500;
// The review's layer is drawn above every other overlay (predictions 20, labels 30, uncertainty 40), at an opacity
// that reads clearly over the model's colours underneath.
export const REVIEW_Z = 50;
export const REVIEW_OPACITY = 0.6;
// "Next" frames the region with this share of its size as margin on every side, to show its surroundings.
export const NEXT_MARGIN = 0.6;
// overlays.js sets app.overlays in the same turn as the image opens; if it has not after this long, it failed to load.
const OVERLAYS_WAIT_MS = 10000;
// Class keys: '1'..'6' pick classes 0..5 (the paper's order).
export const CLASS_KEYS = ['1', '2', '3', '4', '5', '6'];
// While a review is open, '1' picks a class; zoom to 1:1 moves to Shift 1 ('!').
const NATIVE_ZOOM_KEY = '!';
const STORAGE_KEY = 'rcmweb.review.tools';

const TOOL_INFO = {
  pan: {label: 'Pan', help: 'Pan tool', key: 'h', shortcut: 'H', hint: 'Drag to pan, scroll to zoom · `B` brush · `A` accept',
    icon: 'M7 10V5a1.3 1.3 0 0 1 2.6 0v4M9.6 9V3.8a1.3 1.3 0 0 1 2.6 0V9M12.2 9V5a1.3 1.3 0 0 1 2.6 0v6c0 3.2-2.2 5.5-5.2 5.5-2.2 0-3.6-1-4.8-2.9l-2-3.2a1.3 1.3 0 0 1 2.1-1.5L7 11'},
  brush: {label: 'Brush: paint the chosen class', help: 'Brush', key: 'b', shortcut: 'B',
    hint: 'Drag to paint the chosen class · `,` `.` brush size · hold `Space` to pan',
    icon: 'M15.2 3.2a1.4 1.4 0 0 1 2 2L10.5 12l-2.4-.6-.6-2.4zM7.4 11.2c-1.9-.2-3.2 1-3.4 2.8-.1 1.2-.6 1.9-1.5 2.4 3.1.8 6.3-.4 6.7-3.3'},
  eraser: {label: 'Eraser: back to unlabelled', help: 'Eraser (back to unlabelled)', key: 'e', shortcut: 'E',
    hint: 'Drag to erase back to unlabelled · `,` `.` eraser size · hold `Space` to pan',
    icon: 'M8.5 16.5h8M3.9 12.3l7.3-7.4a1.5 1.5 0 0 1 2.1 0l2.8 2.8a1.5 1.5 0 0 1 0 2.1l-6.8 6.7H7.4l-3.5-3.3a.7.7 0 0 1 0-.9zM7.2 9l4.8 4.8'},
  fill: {label: 'Fill: a polygon or rectangle with the chosen class', help: 'Fill a polygon or rectangle', key: 'g', shortcut: 'G',
    hint: 'Drag a rectangle, or click corners and double-click (or `Enter`) to fill with the chosen class · `Esc` cancels',
    icon: 'M3.5 15.5 5.5 4l9 3.5 2 8z'},
  accept: {label: 'Accept: the model’s labels inside a rectangle or polygon', help: 'Accept the model’s labels in a shape',
    key: 'a', shortcut: 'A',
    hint: 'Drag a rectangle, or click corners and double-click (or `Enter`): the model’s labels inside become yours · `Esc` cancels',
    icon: 'M3 6V3h3M14 3h3v3M17 14v3h-3M6 17H3v-3M8.5 3h3M8.5 17h3M3 8.5v3M17 8.5v3M6.5 10.2l2.4 2.4 4.6-5'},
};
const ACTION_ICONS = {
  undo: 'M7.5 5 4 8.5 7.5 12M4 8.5h8.2a3.9 3.9 0 0 1 0 7.8H9',
  redo: 'M12.5 5 16 8.5 12.5 12M16 8.5H7.8a3.9 3.9 0 0 0 0 7.8H11',
  next: 'M10 2.5v3M10 14.5v3M2.5 10h3M14.5 10h3M10 13.5a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z',
};
const OP_LABELS = {paint: 'Paint', erase: 'Erase', accept: 'Accept', undo: 'Undo', redo: 'Redo'};
const GEOMETRY_LABELS = {stroke: 'brush', polygon: 'polygon', rectangle: 'rectangle'};

function pathIcon(d) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 20 20');
  svg.setAttribute('width', '18');
  svg.setAttribute('height', '18');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
}

function isTyping(target) {
  return target instanceof Element && Boolean(target.closest('input:not([type=range]):not([type=checkbox]), '
    + 'textarea, select, [contenteditable]'));
}

/** Brush slider position 0..1000 ↔ radius in µm, on a log scale (fine steps for small brushes). */
export function radiusFromSlider(position) {
  const t = Math.max(0, Math.min(1000, position)) / 1000;
  return BRUSH_MIN_UM * (BRUSH_MAX_UM / BRUSH_MIN_UM) ** t;
}

export function sliderFromRadius(um) {
  return Math.round((1000 * Math.log(um / BRUSH_MIN_UM)) / Math.log(BRUSH_MAX_UM / BRUSH_MIN_UM));
}

/** "20 µm", "2.5 µm", "190 µm". */
export function formatRadius(um) {
  return um >= 10 ? `${Math.round(um)} µm` : `${um.toFixed(1)} µm`;
}

function clampRadius(um) {
  return Math.max(BRUSH_MIN_UM, Math.min(BRUSH_MAX_UM, um));
}

function roundPoint([x, y]) {
  return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
}

function clockTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString('en-GB', {hour: '2-digit', minute: '2-digit'}) : formatDate(iso);
}

/** A stroke being drawn: its points, its pixels on the overlay, and its op in the queue (split when long). */
class Stroke {
  constructor(controller, point, tool) {
    this.c = controller;
    this.tool = tool;
    this.value = tool === 'eraser' ? UNLABELLED : controller.classValue;
    this.radiusUm = controller.brushRadiusUm;
    this.#begin([point]);
  }

  #begin(points) {
    this.points = points;
    this.change = new LocalChange(this.c.overlay, (change) => {
      const raster = rasteriseStroke(points, this.radiusUm, this.c.frame);
      if (raster) change.apply(raster.region, this.value, raster.mask);
    });
    this.change.reapply();
    this.op = this.c.queue.add({kind: 'edit', change: this.change, open: true});
  }

  extend(point) {
    const last = this.points[this.points.length - 1];
    this.points.push(point);
    const raster = rasteriseStroke([last, point], this.radiusUm, this.c.frame);
    if (raster) this.change.apply(raster.region, this.value, raster.mask);
    if (this.points.length >= STROKE_PART_POINTS) {
      this.#close();
      this.#begin([point]);
    }
  }

  end() {
    this.#close();
  }

  #close() {
    if (!this.op.open) return;
    if (!rasteriseStroke(this.points, this.radiusUm, this.c.frame)) {
      this.c.queue.discard(this.op); // wholly outside the image: nothing to send
      return;
    }
    this.c.queue.close(this.op, {
      op: this.tool === 'eraser' ? 'erase' : 'paint',
      class_value: this.tool === 'eraser' ? null : this.value,
      geometry: {type: 'stroke', points: this.points.map(roundPoint), radius_um: Math.round(this.radiusUm * 100) / 100},
    });
  }
}

export class ReviewController {
  constructor(viewerApp) {
    this.app = viewerApp;
    this.mosaic = viewerApp.mosaic;
    this.frame = frameOf(this.mosaic);
    this.root = document.getElementById('review-root');
    this.username = this.root ? this.root.dataset.username : '';
    this.isAdmin = document.body.dataset.role === 'admin';
    this.review = null;
    this.overlay = null;
    this.predictionOverlay = null;
    this.queue = null;
    this.tools = null;
    this.classes = [];
    this.classValue = 0;
    this.brushRadiusUm = BRUSH_DEFAULT_UM;
    this.keyItems = [];
    this.nativeZoom = null; // the '1' shortcut while it is moved
    this.server = {canUndo: false, canRedo: false};
    this.historyCount = 0;
    this.timers = {};
  }

  get key() {
    return this.review ? `layer:${this.review.layer}` : null;
  }

  get editable() {
    return Boolean(this.review && this.review.state === 'in_progress' && this.overlay && this.queue);
  }

  async start() {
    const overlays = await this.#overlays();
    this.classes = [...overlays.classes].sort((a, b) => a.value - b.value);
    this.#loadPrefs();
    this.#buildPanel();
    this.#buildToolbar();
    this.#buildOptions();
    this.tools = new ToolController({app: this.app, onStroke: (point, tool) => this.#stroke(point, tool),
      onShape: (geometry, tool) => this.#shape(geometry, tool), onNotice: (text) => this.notice(text),
      onToolChange: (tool) => this.#toolChanged(tool)});
    this.tools.setBrushRadius(this.brushRadiusUm);
    this.#selectClass(this.classValue);
    this.#toolChanged('pan');
    this.#bindKeys();
    this.app.shell.addEventListener('rcm:overlay-loaded', (event) => this.#overlayLoaded(event.detail));
    window.addEventListener('beforeunload', (event) => {
      if (this.queue && this.queue.pending) {
        event.preventDefault();
        event.returnValue = ''; // the browser asks whether to leave while edits are being saved
      }
    });
    this.#setState('none');
    try {
      const mine = await this.#myReviews();
      const open = mine.find((r) => r.state === 'in_progress');
      if (open) await this.open(open);
      else this.#showNoReview(mine[0] || null);
    } catch (error) {
      this.#error(`Your review could not be loaded: ${error.message}`);
    }
    if (this.isAdmin) this.#loadAllReviews();
    this.root.dataset.ready = 'true';
    return this;
  }

  /** The overlays controller (overlays.js starts it from the same `app.ready` just before this module). */
  async #overlays() {
    const until = performance.now() + OVERLAYS_WAIT_MS;
    while (!this.app.overlays) {
      if (performance.now() > until) throw new Error('The layers did not start; the review needs them.');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.app.overlays.ready;
  }

  async #myReviews() {
    const query = `reviews/?mosaic=${this.mosaic.id}&expert=${encodeURIComponent(this.username)}&limit=50`;
    const page = await getJSON(apiUrl(query));
    const rows = Array.isArray(page) ? page : page.results || [];
    return rows.sort((a, b) => (b.updated_at || '').localeCompare(a.updated_at || ''));
  }

  // ---- start, open, submit -----------------------------------------------------------------------------------
  /** Start a new review (or resume the one in progress): POST /api/mosaics/{id}/reviews/. */
  async startReview() {
    this.startButton.disabled = true;
    this.#error(null);
    try {
      const review = await request('POST', apiUrl(`mosaics/${this.mosaic.id}/reviews/`));
      await this.open(review);
      if (this.isAdmin) this.#loadAllReviews();
    } catch (error) {
      this.#error(`The review could not be started: ${error.message}`);
    } finally {
      this.startButton.disabled = false;
    }
  }

  /** Show `review` (from the API): its layer on top as the editable overlay, its state, agreement and history. */
  async open(review) {
    if (this.queue) this.queue.stop();
    this.queue = null; // nothing is drawn until the layer of this review is in place
    this.overlay = null;
    this.predictionOverlay = null;
    this.review = review;
    this.server = {canUndo: review.can_undo, canRedo: review.can_redo};
    this.historyCount = 0;
    this.#setState('loading');
    const overlays = this.app.overlays;
    if (!overlays.entries.has(this.key)) await overlays.refresh();
    const entry = overlays.entries.get(this.key);
    if (!entry) throw new Error('The review’s layer is not among the layers of this mosaic.');
    let overlay = entry.overlay;
    if (!overlay) {
      entry.url = review.raster_url;
      entry.info = {...entry.info, revision: review.revision};
    }
    this.app.layers.setVisible(this.key, true);
    this.app.layers.setOpacity(this.key, REVIEW_OPACITY);
    overlay = await overlays.overlayFor(this.key);
    if (entry.info.revision !== review.revision || entry.url !== review.raster_url) await this.#reload(overlay, review);
    this.#adopt(overlay);
    if (review.prediction) {
      overlays.overlayFor(`prediction:${review.prediction}`).then((o) => {
        this.predictionOverlay = o;
      }).catch(() => {
        this.predictionOverlay = null; // accept still works; it shows when the server answers
      });
    }
    this.queue = new EditQueue({overlay: this.overlay, revision: review.revision,
      send: (op, revision) => this.#send(op, revision),
      onConfirmed: (result, op) => this.#confirmed(result, op),
      onRefused: (error, op, dropped) => this.#refused(error, op, dropped),
      onResync: () => this.resync(),
      onChange: () => this.#renderSaving()});
    this.#setState(review.state);
    this.#renderAgreement(review.agreement);
    this.#renderSaving();
    this.loadHistory();
    return review;
  }

  /** Put the overlay at the top of the stack and make it the one edited. */
  #adopt(overlay) {
    this.overlay = overlay;
    const stage = overlay.stage || this.app.overlays.stage;
    stage.remove(overlay);
    stage.add(overlay, {z: REVIEW_Z});
  }

  /** The layer's overlay was loaded again by the layers panel (new URL): keep editing the new one, with our pixels. */
  #overlayLoaded({key, overlay}) {
    if (key !== this.key || overlay === this.overlay || !this.overlay) return;
    overlay.data.set(this.overlay.data); // ours holds the confirmed layer and the pending edits
    overlay.redraw();
    this.#adopt(overlay);
    const entry = this.app.overlays.entries.get(key);
    if (entry && this.review) entry.url = this.review.raster_url;
    if (this.queue) this.queue.setOverlay(overlay);
  }

  /** Replace the overlay's pixels with the layer as the server has it (review as the API answers it). */
  async #reload(overlay, review) {
    const raster = await fetchRaster(review.raster_url,
      {expect: {width: this.mosaic.working_width, height: this.mosaic.working_height}});
    overlay.data.set(raster.data);
    overlay.redraw();
    const entry = this.app.overlays.entries.get(`layer:${review.layer}`);
    if (entry) {
      entry.url = review.raster_url;
      entry.info = {...entry.info, revision: review.revision, labelled_pixels: review.labelled_pixels};
    }
  }

  /** The page's layer was stale (or the server unreachable): read the review and its layer again. */
  async resync() {
    const queue = this.queue;
    queue.hold();
    this.root.dataset.resyncing = 'true';
    try {
      await queue.settled();
      const review = await getJSON(apiUrl(`reviews/${this.review.id}/`));
      await this.#reload(this.overlay, review);
      this.review = review;
      this.server = {canUndo: review.can_undo, canRedo: review.can_redo};
      queue.revision = review.revision;
      queue.setOverlay(this.overlay);
      this.#setState(review.state);
      this.#renderAgreement(review.agreement);
      this.loadHistory();
    } catch (error) {
      this.#error(`The layer could not be reloaded: ${error.message} Reload the page.`);
    } finally {
      delete this.root.dataset.resyncing;
      queue.release();
    }
  }

  /** Submit the review after a confirmation: it keeps its labels and history and can no longer change. */
  async submit() {
    if (!this.editable) return;
    const ok = await this.#confirm();
    if (!ok) return;
    this.submitButton.disabled = true;
    try {
      await this.queue.drained();
      const review = await request('POST', apiUrl(`reviews/${this.review.id}/submit/`));
      this.review = {...this.review, ...review};
      this.queue.stop();
      this.#setState(review.state);
      this.notice('Review submitted. Thank you.');
      this.loadHistory();
      if (this.isAdmin) this.#loadAllReviews();
    } catch (error) {
      this.#error(`The review was not submitted: ${error.message}`);
    } finally {
      this.submitButton.disabled = false;
    }
  }

  // ---- drawing -------------------------------------------------------------------------------------------------
  #stroke(point, tool) {
    if (!this.editable) return null;
    this.#error(null);
    return new Stroke(this, point, tool);
  }

  #shape(geometry, tool) {
    if (!this.editable) return;
    this.#error(null);
    if (geometry.points && geometry.points.length > MAX_POINTS) {
      this.notice(`A polygon may have at most ${formatInt(MAX_POINTS)} corners.`);
      return;
    }
    const accept = tool === 'accept';
    if (accept && !this.review.prediction) {
      this.notice('This review has no model prediction to accept: paint or fill instead.');
      return;
    }
    if (!rasterise(geometry, this.frame)) {
      this.notice('That shape is outside the image.');
      return;
    }
    const sent = geometry.type === 'rectangle'
      ? {type: 'rectangle', ...Object.fromEntries(['x0', 'y0', 'x1', 'y1'].map((k) => [k, Math.round(geometry[k] * 10) / 10]))}
      : {type: 'polygon', points: geometry.points.map(roundPoint)};
    const value = this.classValue;
    const change = new LocalChange(this.overlay, (c) => {
      const raster = rasterise(sent, this.frame);
      if (!raster) return;
      if (!accept) c.apply(raster.region, value, raster.mask);
      else if (this.predictionOverlay) c.apply(raster.region, this.predictionOverlay.getPixels(raster.region), raster.mask);
    });
    change.reapply();
    this.queue.add({kind: 'edit', change,
      body: {op: accept ? 'accept' : 'paint', class_value: accept ? null : value, geometry: sent}});
  }

  undo() {
    if (!this.editable) return;
    if (!this.#canUndo()) {
      this.notice('Nothing to undo.');
      return;
    }
    this.tools.cancel();
    this.queue.add({kind: 'undo'});
    this.#renderButtons();
  }

  redo() {
    if (!this.editable) return;
    if (!this.#canRedo()) {
      this.notice('Nothing to redo.');
      return;
    }
    this.queue.add({kind: 'redo'});
    this.#renderButtons();
  }

  /** Whether undo / redo will find a step once the pending ops are done: the server's last word, then the ops. */
  #stacks() {
    let {canUndo, canRedo} = this.server;
    for (const op of this.queue ? this.queue.ops : []) {
      if (op.kind === 'edit') [canUndo, canRedo] = [true, false];
      else if (op.kind === 'undo') canRedo = true;
      else canUndo = true;
    }
    return {canUndo, canRedo};
  }

  #canUndo() {
    return this.#stacks().canUndo;
  }

  #canRedo() {
    return this.#stacks().canRedo;
  }

  #send(op, revision) {
    const base = `reviews/${this.review.id}/`;
    if (op.kind === 'edit') return request('POST', apiUrl(`${base}edits/`), {body: {revision, ...op.body}});
    return request('POST', apiUrl(`${base}${op.kind}/`), {body: {revision}});
  }

  #confirmed(result) {
    this.review = {...this.review, revision: result.revision, labelled_pixels: result.labelled_pixels,
      raster_url: result.raster_url};
    this.server = {canUndo: result.can_undo, canRedo: result.can_redo};
    const entry = this.app.overlays.entries.get(this.key);
    if (entry) {
      entry.url = result.raster_url; // a later refresh of the layer list then keeps this overlay
      entry.info = {...entry.info, revision: result.revision, labelled_pixels: result.labelled_pixels};
      const who = entry.info.author ? `by ${entry.info.author} · ` : '';
      this.app.layers.setDetail(this.key, `${who}${pixelsToMm2(result.labelled_pixels,
        this.mosaic.working_um_per_px)} labelled`);
    }
    this.#renderAgreement(result.agreement);
    this.#renderButtons();
    this.root.dataset.revision = String(result.revision);
    this.#later('history', HISTORY_DELAY_MS, () => this.loadHistory());
    this.#later('areas', AREAS_DELAY_MS, () => {
      const legend = this.app.overlays.legend;
      if (legend && legend.key === this.key) legend.reload();
    });
  }

  #refused(error, op, dropped) {
    const what = op.kind === 'edit' ? (OP_LABELS[op.body?.op] || 'The edit').toLowerCase() : op.kind;
    const lost = dropped.length > 1 ? ` ${dropped.length} edits were taken back.` : ' It was taken back.';
    const status = error && error.status;
    let message;
    const stale = status === 409 && error.data && Number.isInteger(error.data.revision)
      && !/submitted/i.test(error.message);
    if (status === 409 && /nothing to (undo|redo)/i.test(error.message)) message = error.message;
    else if (stale) {
      message = `The ${what} was not saved: your layer changed elsewhere (another tab or window).${lost} `
        + 'The layer was reloaded; draw it again.';
    } else if (!status) message = `The ${what} was not saved: no answer from the server.${lost}`;
    else message = `The ${what} was not saved: ${error.message}${lost}`;
    this.#error(message);
    if (status === 409 && /submitted/i.test(error.message)) this.resync();
    this.#renderButtons();
  }

  // ---- where to look next --------------------------------------------------------------------------------------
  /** Go to the most uncertain region nobody labelled yet (GET next-region), outline it, and mark it seen. */
  async next() {
    if (!this.review) {
      this.notice('Start your review first: “next” follows the regions your review has not seen.');
      return;
    }
    if (this.nextBusy) return; // one at a time: the region in flight is not yet marked seen
    this.nextBusy = true;
    this.nextButton.disabled = true;
    this.nextPanelButton.disabled = true;
    try {
      const answer = await getJSON(apiUrl(`reviews/${this.review.id}/next-region/`));
      const region = answer.region;
      if (!region) {
        this.nextInfo.textContent = answer.detail || 'No region left to look at.';
        this.notice(answer.detail || 'No region left to look at.');
        return;
      }
      const {x0, y0, x1, y1} = region;
      const mx = (x1 - x0) * NEXT_MARGIN;
      const my = (y1 - y0) * NEXT_MARGIN;
      const rect = this.app.baseImage.imageToViewportRectangle(x0 - mx, y0 - my, x1 - x0 + 2 * mx, y1 - y0 + 2 * my);
      this.app.viewer.viewport.fitBounds(rect);
      this.tools.flash({x0, y0, x1, y1});
      this.nextInfo.textContent = `Uncertainty ${region.mean_uncertainty.toFixed(2)} · `
        + `${Math.round(100 * region.unlabelled_fraction)} % unlabelled · ${formatInt(region.remaining)} `
        + `region${region.remaining === 1 ? '' : 's'} to see`;
      this.root.dataset.nextRegion = [x0, y0, x1, y1].map((v) => Math.round(v)).join(',');
      await request('POST', apiUrl(`reviews/${this.review.id}/next-region/seen/`), {body: {x0, y0, x1, y1}});
    } catch (error) {
      this.#error(`The next region could not be found: ${error.message}`);
    } finally {
      this.nextBusy = false;
      this.nextButton.disabled = !this.review || !this.review.prediction;
      this.nextPanelButton.disabled = this.nextButton.disabled;
    }
  }

  // ---- history -------------------------------------------------------------------------------------------------
  /** Read the newest HISTORY_ROWS rows of the review's history and list them, newest first. */
  async loadHistory() {
    if (!this.review) return;
    const id = this.review.id;
    const page = async (offset) => getJSON(apiUrl(`reviews/${id}/edits/?limit=${HISTORY_ROWS}&offset=${offset}`));
    try {
      let offset = Math.max(0, this.historyCount - HISTORY_ROWS + 1);
      let data = await page(offset);
      if (offset + data.results.length < data.count) {
        offset = Math.max(0, data.count - HISTORY_ROWS);
        data = await page(offset);
      }
      if (!this.review || this.review.id !== id) return;
      this.historyCount = data.count;
      this.#renderHistory(data.results, offset, data.count);
    } catch (error) {
      this.historyList.dataset.error = 'true';
      this.historyNote.textContent = `History unavailable: ${error.message}`;
    }
  }

  #renderHistory(rows, offset, count) {
    delete this.historyList.dataset.error;
    this.historyTitle.textContent = count ? `History · ${formatInt(count)} step${count === 1 ? '' : 's'}` : 'History';
    const byId = new Map(rows.map((row, i) => [row.id, offset + i + 1]));
    const colour = new Map(this.classes.map((c) => [c.value, c.colour]));
    const items = rows.map((row, i) => {
      const number = offset + i + 1;
      const content = ['paint', 'erase', 'accept'].includes(row.op);
      let what = OP_LABELS[row.op] || row.op;
      if (row.op === 'paint' && row.class_name) what = `Paint ${row.class_name.split(' (')[0]}`;
      if (row.op === 'accept') what = 'Accept model';
      if (!content) what = `${what} ${byId.has(row.target) ? `#${byId.get(row.target)}` : 'an earlier step'}`;
      const swatch = row.op === 'paint' ? h('span', {class: 'swatch', style: {background: colour.get(row.class_value)}})
        : h('span', {class: `history-mark history-mark-${row.op}`, 'aria-hidden': 'true'});
      const author = row.author && row.author !== this.username ? row.author : null;
      const meta = [content ? GEOMETRY_LABELS[row.geometry_type] || row.geometry_type : null, author,
        clockTime(row.created_at)].filter(Boolean).join(' · ');
      return h('li', {class: 'history-row', dataset: {op: row.op, undone: row.undone ? 'true' : 'false', id: row.id},
        title: `Step ${number}: revision ${row.revision_before} → ${row.revision_after}`},
      h('span', {class: 'history-num num'}, `${number}`),
      swatch,
      h('span', {class: 'history-text'},
        h('span', {class: 'history-what'}, what),
        h('span', {class: 'history-meta'}, row.undone ? h('span', {class: 'history-undone'}, 'undone') : null, meta)),
      h('span', {class: 'history-px num', title: pixelsToMm2(row.changed_pixels, this.mosaic.working_um_per_px)},
        `${formatInt(row.changed_pixels)} px`));
    }).reverse();
    replaceChildren(this.historyList, items);
    this.historyNote.textContent = count === 0 ? 'No edits yet. Paint, fill or accept a region to begin.'
      : (count > rows.length ? `The ${rows.length} newest of ${formatInt(count)} steps.` : '');
    this.historyNote.hidden = !this.historyNote.textContent;
  }

  // ---- the panel -----------------------------------------------------------------------------------------------
  #buildPanel() {
    this.badge = h('span', {class: 'status review-state'});
    this.summary = h('p', {class: 'review-summary'});
    this.startButton = h('button', {type: 'button', class: 'btn btn-primary btn-small', 'data-action': 'start-review',
      onclick: () => this.startReview()}, 'Start my review');
    this.submitButton = h('button', {type: 'button', class: 'btn btn-secondary btn-small', 'data-action': 'submit-review',
      onclick: () => this.submit()}, 'Submit review…');
    this.errorBox = h('div', {class: 'alert alert-error review-error', role: 'alert'});
    this.errorBox.hidden = true;
    // agreement
    this.agreeValue = h('span', {class: 'agree-value num'}, '—');
    this.kappaValue = h('span', {class: 'agree-kappa num'}, '—');
    this.agreeDetail = h('p', {class: 'agree-detail'});
    this.agreeBar = h('div', {class: 'agree-bar', role: 'presentation'}, h('div', {class: 'agree-bar-fill'}));
    this.detailsLink = h('a', {class: 'agree-link', target: '_blank', rel: 'noopener',
      href: this.root.dataset.agreementUrl}, 'Per-class figures and plots');
    this.agreement = h('div', {class: 'review-agreement', 'aria-live': 'polite'},
      h('div', {class: 'agree-figures'},
        h('div', {class: 'agree-main'}, this.agreeValue, h('span', {class: 'agree-label'}, 'pixel agreement')),
        h('div', {class: 'agree-side'}, this.kappaValue, h('span', {class: 'agree-label'}, 'Cohen’s κ'))),
      this.agreeBar, this.agreeDetail, this.detailsLink);
    // next
    this.nextPanelButton = h('button', {type: 'button', class: 'btn btn-secondary btn-small', 'data-action': 'next-region',
      onclick: () => this.next()}, 'Next region', h('kbd', {}, 'N'));
    this.nextInfo = h('p', {class: 'next-info'}, 'The most uncertain region nobody has labelled yet.');
    // history
    this.historyTitle = h('h3', {class: 'review-subtitle'}, 'History');
    this.historyList = h('ol', {class: 'history-list', 'aria-live': 'polite'});
    this.historyNote = h('p', {class: 'history-note'});
    this.allReviews = h('div', {class: 'all-reviews'});
    this.allReviews.hidden = true;

    this.sections = {
      open: h('div', {class: 'review-open'},
        h('h3', {class: 'review-subtitle'}, 'Agreement with the model'), this.agreement,
        h('h3', {class: 'review-subtitle'}, 'Where to look next'),
        h('div', {class: 'next-row'}, this.nextPanelButton), this.nextInfo,
        this.historyTitle, this.historyList, this.historyNote),
    };
    const body = this.app.addPanelSection({id: 'review', title: 'My review', before: 'layers', actions: [this.badge],
      body: [this.summary, this.errorBox,
        h('div', {class: 'review-actions'}, this.startButton, this.submitButton),
        this.sections.open, this.allReviews]});
    this.body = body;
    this.section = body.closest('section');
    this.section.classList.add('review-panel');
  }

  #setState(state) {
    const s = this.review ? this.review.state : null;
    this.root.dataset.state = state;
    this.section.dataset.state = state;
    const open = Boolean(this.review) && state !== 'loading';
    this.badge.hidden = !this.review;
    this.badge.className = `status review-state review-state-${s}`;
    this.badge.textContent = s === 'submitted' ? 'Submitted' : 'In progress';
    this.sections.open.hidden = !open;
    this.startButton.hidden = this.review && s === 'in_progress';
    this.startButton.textContent = this.review ? 'Start a new review' : 'Start my review';
    this.submitButton.hidden = !(this.review && s === 'in_progress');
    if (this.review) {
      const model = this.review.model_name ? `model ${this.review.model_name} (v${this.review.model_version})`
        : 'no model prediction';
      const when = s === 'submitted' ? `submitted ${formatDate(this.review.submitted_at)}`
        : `started ${formatDate(this.review.created_at)}`;
      replaceChildren(this.summary, `Against ${model} · ${when}.`);
    }
    const editing = this.editable;
    this.tools.setEnabled(editing);
    this.options.hidden = !editing;
    this.hint.hidden = !editing;
    for (const id of ['tool-pan', 'tool-brush', 'tool-eraser', 'tool-fill', 'tool-accept']) {
      this.app.toolbar.get(id).disabled = !editing;
    }
    for (const id of ['review-undo', 'review-redo']) this.app.toolbar.get(id).hidden = !editing;
    this.toolGroup.hidden = !editing;
    this.editGroup.hidden = !this.review;
    this.nextButton.disabled = !this.review || !this.review.prediction;
    this.nextPanelButton.disabled = !this.review || !this.review.prediction;
    this.#bindEditingKeys(editing);
    if (this.review && !this.review.prediction) {
      this.nextInfo.textContent = 'No model prediction: nothing to rank regions by.';
      this.app.toolbar.get('tool-accept').disabled = true;
    }
    this.#renderButtons();
    this.#renderSaving();
  }

  #showNoReview(latest) {
    this.review = latest && latest.state === 'submitted' ? latest : null;
    if (this.review) {
      this.#setState('submitted');
      this.open(this.review).catch((error) => this.#error(`Your submitted review could not be shown: ${error.message}`));
      return;
    }
    this.#setState('none');
    replaceChildren(this.summary, 'Correct the model’s labels where they are wrong and accept them where they are right. '
      + 'Your edits are saved as you go.');
  }

  #renderAgreement(agreement) {
    const report = reportOf(agreement);
    const figure = report && report.accuracy !== null && report.accuracy !== undefined;
    const before = this.agreeValue.textContent;
    this.agreeValue.textContent = figure ? pct(report.accuracy) : '—';
    this.kappaValue.textContent = figure ? kappa(report.kappa) : '—';
    this.agreeBar.firstChild.style.width = figure ? `${Math.round(100 * report.accuracy)}%` : '0';
    this.agreeBar.hidden = !figure;
    this.agreement.classList.toggle('agree-empty', !figure);
    this.kappaValue.title = figure && report.kappa === null
      ? 'κ is undefined while the model and you each use a single class on these pixels' : '';
    if (!report) this.agreeDetail.textContent = 'No model prediction to compare with.';
    else if (!figure) this.agreeDetail.textContent = 'Label or accept a region: the model is compared with you on the pixels you labelled.';
    else {
      this.agreeDetail.textContent = `On ${formatInt(report.labelled_pixels)} px you labelled `
        + `(${pixelsToMm2(report.labelled_pixels, this.mosaic.working_um_per_px)})`
        + (report.mean_dice !== null && report.mean_dice !== undefined ? ` · mean Dice ${pct(report.mean_dice)}` : '');
    }
    this.agreement.dataset.accuracy = figure ? String(report.accuracy) : '';
    if (figure && before !== this.agreeValue.textContent && before !== '—') {
      this.agreement.classList.remove('agree-changed');
      void this.agreement.offsetWidth; // restart the highlight
      this.agreement.classList.add('agree-changed');
    }
    if (this.review) this.detailsLink.href = `${this.root.dataset.agreementUrl}?review=${this.review.id}`;
  }

  async #loadAllReviews() {
    try {
      const page = await getJSON(apiUrl(`reviews/?mosaic=${this.mosaic.id}&limit=50`));
      const rows = Array.isArray(page) ? page : page.results || [];
      this.allReviews.hidden = rows.length === 0;
      replaceChildren(this.allReviews, h('h3', {class: 'review-subtitle'}, 'All reviews of this mosaic'),
        h('ul', {class: 'all-review-list'}, rows.map((r) => {
          const report = reportOf(r.agreement);
          return h('li', {class: 'all-review', dataset: {review: r.id}},
            h('a', {href: `${this.root.dataset.agreementUrl}?review=${r.id}`, target: '_blank', rel: 'noopener'},
              r.expert),
            h('span', {class: `status review-state-${r.state}`}, r.state === 'submitted' ? 'Submitted' : 'In progress'),
            h('span', {class: 'num muted'}, report && report.accuracy !== null ? pct(report.accuracy) : '—'));
        })));
    } catch {
      this.allReviews.hidden = true;
    }
  }

  #renderButtons() {
    const editing = this.editable;
    const undo = this.app.toolbar.get('review-undo');
    const redo = this.app.toolbar.get('review-redo');
    if (undo) undo.disabled = !editing || !this.#canUndo();
    if (redo) redo.disabled = !editing || !this.#canRedo();
  }

  #renderSaving() {
    if (!this.saving) return;
    const pending = this.queue ? this.queue.pending : 0;
    this.saving.dataset.state = pending ? 'saving' : 'saved';
    this.saving.textContent = pending ? `Saving${pending > 1 ? ` ${pending} edits` : ''}…` : 'All edits saved';
    this.root.dataset.pending = String(pending);
    this.#renderButtons();
  }

  #error(message) {
    this.errorBox.hidden = !message;
    this.errorBox.textContent = message || '';
    if (message) this.notice(message, {error: true});
  }

  /** A short message over the image (cleared after a few seconds). */
  notice(text, {error = false} = {}) {
    if (!this.toast) return;
    this.toast.textContent = text || '';
    this.toast.hidden = !text;
    this.toast.classList.toggle('tool-toast-error', error);
    clearTimeout(this.timers.toast);
    if (text) this.timers.toast = setTimeout(() => { this.toast.hidden = true; }, error ? 6000 : 3500);
  }

  #later(name, ms, run) {
    clearTimeout(this.timers[name]);
    this.timers[name] = setTimeout(run, ms);
  }

  #confirm() {
    if (!this.dialog) {
      this.dialog = h('dialog', {class: 'review-dialog', 'aria-labelledby': 'review-dialog-title'},
        h('h2', {id: 'review-dialog-title'}, 'Submit your review?'),
        h('p', {}, 'Your labels and their history are kept and count for agreement and fine-tuning. A submitted review '
          + 'can no longer change; you can start a new one later.'),
        h('form', {method: 'dialog', class: 'review-dialog-actions'},
          h('button', {class: 'btn btn-quiet', value: 'cancel'}, 'Keep editing'),
          h('button', {class: 'btn btn-primary', value: 'submit', 'data-action': 'confirm-submit'}, 'Submit review')));
      document.body.append(this.dialog);
    }
    return new Promise((resolve) => {
      this.dialog.returnValue = '';
      this.dialog.addEventListener('close', () => resolve(this.dialog.returnValue === 'submit'), {once: true});
      this.dialog.showModal();
    });
  }

  // ---- toolbar, options bar, keys ------------------------------------------------------------------------------
  #buildToolbar() {
    const t = this.app.toolbar;
    for (const [tool, info] of Object.entries(TOOL_INFO)) {
      const button = t.add({id: `tool-${tool}`, label: info.label, shortcut: info.shortcut, group: 'Review tools',
        toggle: true, onClick: () => this.setTool(tool)});
      button.replaceChildren(pathIcon(info.icon));
    }
    const actions = [['review-undo', 'Undo', 'Ctrl Z', ACTION_ICONS.undo, () => this.undo()],
      ['review-redo', 'Redo', 'Ctrl Shift Z', ACTION_ICONS.redo, () => this.redo()],
      ['review-next', 'Next region to look at', 'N', ACTION_ICONS.next, () => this.next()]];
    for (const [id, label, shortcut, d, onClick] of actions) {
      t.add({id, label, shortcut, group: 'Review', onClick}).replaceChildren(pathIcon(d));
    }
    this.nextButton = t.get('review-next');
    this.toolGroup = t.groups.get('Review tools');
    this.editGroup = t.groups.get('Review');
    const windowGroup = t.groups.get('Window');
    if (windowGroup) windowGroup.before(this.toolGroup, this.editGroup);
    t.setPressed('tool-pan', true);
  }

  #buildOptions() {
    this.swatches = new Map();
    const palette = h('div', {class: 'palette', role: 'radiogroup', 'aria-label': 'Class to paint'},
      this.classes.map((item, i) => {
        const button = h('button', {type: 'button', class: 'palette-swatch', role: 'radio', 'aria-checked': 'false',
          title: `${item.name} (${CLASS_KEYS[i] || ''})`, 'aria-label': item.name,
          dataset: {value: item.value}, onclick: () => this.#selectClass(item.value)},
        h('span', {class: 'palette-chip', style: {background: item.colour}}),
        h('span', {class: 'palette-key'}, CLASS_KEYS[i] || ''));
        this.swatches.set(item.value, button);
        return button;
      }));
    this.className = h('span', {class: 'palette-name'});
    this.brushSlider = h('input', {type: 'range', min: 0, max: 1000, step: 1, class: 'brush-size',
      'aria-label': 'Brush radius', value: sliderFromRadius(this.brushRadiusUm),
      oninput: (event) => this.setBrushRadius(radiusFromSlider(Number(event.target.value)), {fromSlider: true})});
    this.brushValue = h('output', {class: 'brush-value num'});
    this.brushBox = h('label', {class: 'brush-box', title: 'Brush radius (, smaller · . larger)'},
      h('span', {class: 'option-label'}, 'Radius'), this.brushSlider, this.brushValue);
    this.saving = h('span', {class: 'save-state', role: 'status'});
    this.options = h('div', {class: 'review-options', role: 'toolbar', 'aria-label': 'Review options'},
      h('div', {class: 'option-group'}, palette, this.className),
      h('div', {class: 'option-group'}, this.brushBox),
      this.saving);
    this.options.hidden = true;
    this.hint = h('div', {class: 'tool-hint'});
    this.hint.hidden = true;
    this.toast = h('div', {class: 'tool-toast', role: 'status', 'aria-live': 'polite'});
    this.toast.hidden = true;
    this.app.stage.append(this.options, this.hint, this.toast);
    this.#updateBrushText();
  }

  setTool(tool) {
    if (!this.editable && tool !== 'pan') return;
    if (tool === 'accept' && !this.review.prediction) {
      this.notice('This review has no model prediction to accept: paint or fill instead.');
      return;
    }
    this.tools.setTool(tool);
  }

  #toolChanged(tool) {
    for (const name of Object.keys(TOOL_INFO)) this.app.toolbar.setPressed(`tool-${name}`, name === tool);
    // `key` in a hint is shown as a key cap
    replaceChildren(this.hint, TOOL_INFO[tool].hint.split('`').map((part, i) => (i % 2 ? h('kbd', {}, part) : part)));
    this.brushBox.hidden = !(tool === 'brush' || tool === 'eraser');
    this.options.dataset.tool = tool;
    this.#savePrefs();
  }

  #selectClass(value) {
    if (!this.classes.some((c) => c.value === value)) return;
    this.classValue = value;
    for (const [v, button] of this.swatches) button.setAttribute('aria-checked', v === value ? 'true' : 'false');
    const item = this.classes.find((c) => c.value === value);
    this.className.textContent = item.name;
    if (this.tools) this.tools.setBrushColour(item.colour);
    this.options.dataset.classValue = String(value);
    this.#savePrefs();
  }

  setBrushRadius(um, {fromSlider = false} = {}) {
    this.brushRadiusUm = clampRadius(um);
    if (!fromSlider) this.brushSlider.value = String(sliderFromRadius(this.brushRadiusUm));
    if (this.tools) this.tools.setBrushRadius(this.brushRadiusUm);
    this.#updateBrushText();
    this.#savePrefs();
  }

  #updateBrushText() {
    this.brushValue.textContent = formatRadius(this.brushRadiusUm);
  }

  #loadPrefs() {
    try {
      const prefs = JSON.parse(localStorage.getItem(STORAGE_KEY) || '{}');
      if (Number.isInteger(prefs.classValue)) this.classValue = prefs.classValue;
      if (prefs.brushRadiusUm > 0) this.brushRadiusUm = clampRadius(prefs.brushRadiusUm);
    } catch {
      // no saved choices (or private mode): the defaults
    }
  }

  #savePrefs() {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify({classValue: this.classValue, brushRadiusUm: this.brushRadiusUm}));
    } catch {
      // storage full or refused: the choices last for this page
    }
  }

  /** N for "next" (whenever a review is shown); Ctrl / Cmd + Z, Shift + Z and Y: undo and redo (the shortcut
   * registry leaves modified keys alone). */
  #bindKeys() {
    this.app.shortcuts.add({keys: ['n', 'N'], label: 'N', description: 'Next region to look at', group: 'Review',
      run: () => this.next()});
    document.addEventListener('keydown', (event) => {
      if (!(event.ctrlKey || event.metaKey) || event.altKey || !this.editable || isTyping(event.target)) return;
      if (document.querySelector('dialog[open]')) return;
      const key = event.key.toLowerCase();
      if (key === 'z' && !event.shiftKey) this.undo();
      else if ((key === 'z' && event.shiftKey) || key === 'y') this.redo();
      else return;
      event.preventDefault();
    });
  }

  /** The review's keys are bound while a review is open for editing (and listed in the help only then). */
  #bindEditingKeys(editing) {
    const s = this.app.shortcuts;
    if (!editing) {
      for (const item of this.keyItems) s.remove(item);
      this.keyItems = [];
      if (this.nativeZoom) {
        Object.assign(this.nativeZoom.item, this.nativeZoom.original);
        this.app.toolbar.setLabel('native', 'Zoom to 1:1 (one image pixel per screen pixel)', '1');
        this.nativeZoom = null;
      }
      return;
    }
    if (this.keyItems.length) return;
    const native = s.items.find((item) => item.keys.includes('1'));
    if (native) {
      this.nativeZoom = {item: native, original: {keys: native.keys, label: native.label}};
      native.keys = [NATIVE_ZOOM_KEY];
      native.label = 'Shift 1';
      this.app.toolbar.setLabel('native', 'Zoom to 1:1 (one image pixel per screen pixel)', 'Shift 1');
    }
    const add = (spec) => this.keyItems.push(s.add({group: 'Review', ...spec}));
    const doc = (label, description) => add({keys: [`doc:${label}`], label, description, run: () => {}});
    for (const [tool, info] of Object.entries(TOOL_INFO)) {
      add({keys: [info.key, info.key.toUpperCase()], label: info.shortcut, description: info.help,
        run: () => this.setTool(tool)});
    }
    add({keys: [...CLASS_KEYS], label: '1–6', description: 'Pick the class (palette order, 1 = background)',
      run: (event) => {
        const item = this.classes[CLASS_KEYS.indexOf(event.key)];
        if (item) this.#selectClass(item.value);
      }});
    add({keys: [','], description: 'Smaller brush', repeat: true,
      run: () => this.setBrushRadius(this.brushRadiusUm / BRUSH_STEP)});
    add({keys: ['.'], description: 'Larger brush', repeat: true,
      run: () => this.setBrushRadius(this.brushRadiusUm * BRUSH_STEP)});
    doc('Ctrl Z', 'Undo (saved on the server)');
    doc('Ctrl Y', 'Redo (also Ctrl Shift Z)');
    doc('Space', 'Hold and drag to pan with any tool');
    doc('Enter', 'Close the polygon (or double-click)');
    doc('Esc', 'Cancel the polygon · Backspace removes its last corner');
  }
}

if (app && ['admin', 'expert'].includes(document.body.dataset.role) && document.getElementById('review-root')) {
  app.ready.then((viewerApp) => {
    const controller = new ReviewController(viewerApp);
    viewerApp.review = controller;
    return controller.start();
  }).catch(() => {}); // the viewer shows its own failures
}
