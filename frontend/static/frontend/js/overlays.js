// Overlays in the viewer: the layers of /api/mosaics/{id}/layers/ (model predictions, expert and imported labels,
// the uncertainty of the shown prediction, its coarser MUNet levels) as rows of the layers panel, drawn by
// overlay.js; per-class toggles and class areas (legend.js); live prediction jobs (predictions.js); shortcuts.
//
// Each raster is fetched when its row is first shown, then kept: toggles, colours and opacity never fetch again.
// The controller is `app.overlays` (and `window.rcmweb.viewer.overlays`) for the review tools that come next:
//   app.overlays.ready                 Promise resolved once the layer list is in the panel
//   app.overlays.overlayFor(key)       Promise of the LabelOverlay / HeatmapOverlay of a row (loads it)
//   app.overlays.entries               Map key → {key, kind, info, url, overlay}
//   app.overlays.refresh()             fetch /layers/ again (new prediction, saved review)

import {apiUrl, getJSON} from './api.js';
import {h} from './dom.js';
import {colormapGradient} from './colormap.js';
import {formatDate} from './format.js';
import {ClassLegend} from './legend.js';
import {
  fetchRaster, HEATMAP_OPAQUE_ABOVE, HEATMAP_TRANSPARENT_BELOW, HeatmapOverlay, LabelOverlay, OverlayStage,
} from './overlay.js';
import {PredictionStatus} from './predictions.js';
import {app} from './viewer.js';

// Opacity of an overlay when first shown: the active prediction at 45 % leaves the RCM texture readable under
// the class colours; labels alike; the heatmap is transparent where the model is sure, so it can be stronger.
export const DEFAULT_OPACITY = {prediction: 0.45, labels: 0.45, uncertainty: 0.7, level: 0.45};
// '[' and ']' change the opacity of the shown overlays by this step.
export const OPACITY_STEP = 0.1;
// Drawing order (larger on top): coarse levels under predictions under expert labels under the heatmap.
const Z_ORDER = {level: 10, prediction: 20, labels: 30, uncertainty: 40};
const GROUP = {prediction: 'Model output', labels: 'Labels', uncertainty: 'Model detail', level: 'Model detail'};
const SOURCE_ORDER = {review: 0, import: 1, trainee: 2};
const LAYERS_ICON = 'M10 3 2.5 7 10 11l7.5-4L10 3zM2.5 10.5 10 14.5l7.5-4M2.5 14 10 18l7.5-4';

function layersIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 20 20');
  svg.setAttribute('width', '18');
  svg.setAttribute('height', '18');
  svg.setAttribute('class', 'icon icon-layers');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', LAYERS_ICON);
  svg.append(path);
  return svg;
}

export class OverlayController {
  constructor(viewerApp) {
    this.app = viewerApp;
    this.mosaic = viewerApp.mosaic;
    this.panel = viewerApp.layers;
    this.entries = new Map();
    this.classes = [];
    this.hiddenClasses = new Set();
    this.shownPrediction = null; // key of the prediction whose uncertainty and levels the detail rows show
    this.legendKey = null;
    this.remembered = null; // rows that were on before 'O' turned the overlays off
    this.stage = null;
    this.legend = null;
    this.status = null;
    this.ready = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    this.ready.catch(() => {});
  }

  get canSeeModel() {
    return ['admin', 'expert'].includes(document.body.dataset.role);
  }

  get isAdmin() {
    return document.body.dataset.role === 'admin';
  }

  async start() {
    const id = this.mosaic.id;
    this.stage = new OverlayStage({viewer: this.app.viewer, tiledImage: this.app.baseImage});
    this.panel.onChange((layer, what) => this.#onRowChange(layer, what));
    try {
      const [classes, layers] = await Promise.all([
        getJSON(apiUrl('label-classes/')), getJSON(apiUrl(`mosaics/${id}/layers/`))]);
      this.classes = classes;
      this.legend = new ClassLegend({app: this.app, classes, onToggle: (value, visible) => this.setClassVisible(value, visible),
        onSelect: (key) => {
          this.legendKey = key;
        }});
      if (this.canSeeModel) {
        this.status = new PredictionStatus({app: this.app, canPredict: this.isAdmin,
          onFinished: () => this.refresh({showNewActive: true})});
      }
      this.#bindControls();
      this.#sync(layers, {initial: true});
      if (this.status) this.status.start();
      this.app.shell.dataset.overlays = 'ready';
      this._resolve(this);
    } catch (error) {
      this.app.shell.dataset.overlays = 'failed';
      this.panel.list.before(h('p', {class: 'alert alert-error layers-error', role: 'alert'},
        `Layers could not be loaded: ${error.message}`));
      this._reject(error);
    }
    return this;
  }

  /** Fetch the layer list again; with showNewActive, a new prediction of the active model is shown. */
  async refresh({showNewActive = false} = {}) {
    const layers = await getJSON(apiUrl(`mosaics/${this.mosaic.id}/layers/`));
    this.#sync(layers, {showNewActive});
    if (this.legend) await this.legend.reload();
  }

  // ---- the layer list ---------------------------------------------------------------------------
  #sync(layers, {initial = false, showNewActive = false}) {
    const predictions = layers.filter((layer) => layer.kind === 'prediction');
    const labels = layers.filter((layer) => layer.kind === 'labels');
    const active = predictions.find((p) => p.model_status === 'active') || null;
    const orderedPredictions = active ? [active, ...predictions.filter((p) => p !== active)] : predictions;
    const wanted = new Map();
    orderedPredictions.forEach((info, i) => wanted.set(info.key, {kind: 'prediction', info, url: info.url, order: i,
      title: info.title, detail: `predicted ${formatDate(info.created_at)}`}));
    [...labels].sort((a, b) => (SOURCE_ORDER[a.source] ?? 9) - (SOURCE_ORDER[b.source] ?? 9))
      .forEach((info, i) => wanted.set(info.key, {kind: 'labels', info, url: info.url, order: i, title: info.title,
        detail: this.#labelledDetail(info)}));

    const fresh = [];
    for (const [key, spec] of wanted) {
      const entry = this.entries.get(key);
      if (!entry) {
        fresh.push(key);
        this.#addEntry(key, spec);
      } else {
        entry.info = spec.info;
        this.panel.setTitle(key, spec.title);
        this.panel.setDetail(key, spec.detail);
        if (entry.url !== spec.url) this.#retarget(entry, spec.url);
      }
    }
    for (const key of [...this.entries.keys()]) {
      const entry = this.entries.get(key);
      if (['prediction', 'labels'].includes(entry.kind) && !wanted.has(key)) this.#removeEntry(key);
    }

    // Which prediction the uncertainty and level rows follow: kept if still there, else the active one.
    if (!this.shownPrediction || !this.entries.has(this.shownPrediction)) {
      this.shownPrediction = orderedPredictions.length ? orderedPredictions[0].key : null;
    }
    let showKey = null;
    if (initial) showKey = orderedPredictions.length ? orderedPredictions[0].key : (labels.length ? this.#labelKeys()[0] : null);
    else if (showNewActive && active && fresh.includes(active.key)) showKey = active.key;
    if (showKey && this.entries.get(showKey).kind === 'prediction') this.shownPrediction = showKey;
    this.#syncDetailRows();
    if (showKey) {
      if (!initial) {
        for (const [key, entry] of this.entries) {
          if (entry.kind === 'prediction' && key !== showKey && this.panel.get(key).visible) this.panel.setVisible(key, false);
        }
      }
      this.panel.setVisible(showKey, true);
    }
    if (this.legend) {
      this.legend.setLayers([...this.entries.values()].filter((e) => ['prediction', 'labels'].includes(e.kind))
        .sort((a, b) => this.#rank(a) - this.#rank(b)).map((e) => ({key: e.key, title: e.info.title})));
      const legendKey = this.legendKey && this.entries.has(this.legendKey) ? this.legendKey : showKey;
      if (legendKey) this.#followLegend(legendKey);
    }
    if (this.status) this.status.setPredictions(orderedPredictions);
    this.app.shell.dataset.layerCount = String(this.entries.size);
    this.app.toolbar.groups.get('Layers').hidden = this.entries.size === 0; // nothing to toggle (e.g. trainees)
  }

  #rank(entry) {
    return (entry.kind === 'prediction' ? 0 : 1000) + (this.panel.get(entry.key)?.order || 0);
  }

  #labelKeys() {
    return [...this.entries.values()].filter((e) => e.kind === 'labels').sort((a, b) => this.#rank(a) - this.#rank(b))
      .map((e) => e.key);
  }

  #labelledDetail(info) {
    const mm2 = info.labelled_pixels * (this.mosaic.working_um_per_px / 1000) ** 2;
    const who = info.author ? `by ${info.author} · ` : '';
    return `${who}${mm2 >= 10 ? mm2.toFixed(1) : mm2.toPrecision(3)} mm² labelled`;
  }

  /** Uncertainty and level rows follow the shown prediction (the one last turned on; the active one at first). */
  #syncDetailRows() {
    const source = this.shownPrediction ? this.entries.get(this.shownPrediction) : null;
    const info = source ? source.info : null;
    const modelName = info ? info.title.replace(/^Model /, '') : '';
    const specs = new Map();
    if (info) {
      specs.set('uncertainty', {kind: 'uncertainty', url: info.uncertainty_url, order: 0, level: 0,
        title: 'Uncertainty', detail: `of ${modelName}`});
      for (const {level, url} of info.levels || []) {
        specs.set(`level:${level}`, {kind: 'level', url, order: level, level,
          title: `MUNet level ${level}`, detail: `1/${2 ** level} resolution · ${modelName}`});
      }
    }
    for (const [key, spec] of specs) {
      const entry = this.entries.get(key);
      if (!entry) this.#addEntry(key, {...spec, info});
      else {
        entry.info = info;
        this.panel.setDetail(key, spec.detail);
        if (entry.url !== spec.url) this.#retarget(entry, spec.url);
      }
    }
    for (const key of [...this.entries.keys()]) {
      const kind = this.entries.get(key).kind;
      if ((kind === 'uncertainty' || kind === 'level') && !specs.has(key)) this.#removeEntry(key);
    }
  }

  #addEntry(key, spec) {
    const entry = {key, kind: spec.kind, info: spec.info, url: spec.url, level: spec.level || 0, overlay: null,
      loading: null};
    this.entries.set(key, entry);
    this.panel.add({id: key, title: spec.title, detail: spec.detail, group: GROUP[spec.kind], order: spec.order,
      kind: spec.kind, opacity: DEFAULT_OPACITY[spec.kind], visible: false,
      legend: spec.kind === 'uncertainty' ? this.#heatmapLegend() : null});
    return entry;
  }

  #removeEntry(key) {
    const entry = this.entries.get(key);
    if (entry.overlay) entry.overlay.destroy();
    this.entries.delete(key);
    this.panel.remove(key);
  }

  /** A row's raster changed (new revision, or the prediction it follows): drop it, load again if shown. */
  #retarget(entry, url) {
    if (entry.overlay) entry.overlay.destroy();
    entry.overlay = null;
    entry.loading = null;
    entry.url = url;
    this.panel.setTarget(entry.key, null);
    if (this.panel.get(entry.key).visible) this.overlayFor(entry.key).catch(() => {});
  }

  #heatmapLegend() {
    const ramp = (u) => Math.max(0, Math.min(1, (u - HEATMAP_TRANSPARENT_BELOW)
      / (HEATMAP_OPAQUE_ABOVE - HEATMAP_TRANSPARENT_BELOW)));
    return h('div', {class: 'heatmap-legend', title: `Uncertainty 1 − (p1 − p2): clear below `
      + `${HEATMAP_TRANSPARENT_BELOW}, full colour from ${HEATMAP_OPAQUE_ABOVE}`},
    h('div', {class: 'heatmap-bar', style: {backgroundImage: `${colormapGradient('inferno', {alpha: ramp})}, `
      + 'repeating-conic-gradient(#4a515b 0 25%, #2a2f36 0 50%)'}}),
    h('div', {class: 'heatmap-scale'}, h('span', {}, '0 · sure'), h('span', {}, 'uncertain · 1')));
  }

  // ---- overlays -------------------------------------------------------------------------------
  /** The overlay of row `key`, fetched and decoded on first use. */
  overlayFor(key) {
    const entry = this.entries.get(key);
    if (!entry) return Promise.reject(new Error(`No layer ${key}`));
    if (entry.overlay) return Promise.resolve(entry.overlay);
    if (entry.loading) return entry.loading;
    const url = entry.url;
    const scale = 2 ** entry.level;
    const expect = {width: Math.ceil(this.mosaic.working_width / scale),
      height: Math.ceil(this.mosaic.working_height / scale)};
    this.panel.setStatus(key, 'loading', 'Loading…');
    entry.loading = fetchRaster(url, {expect}).then((raster) => {
      if (entry.url !== url || this.entries.get(key) !== entry) return null; // replaced meanwhile
      const row = this.panel.get(key);
      const options = {...raster, opacity: row.opacity, visible: row.visible,
        pixelWidth: (this.mosaic.width / this.mosaic.working_width) * scale,
        pixelHeight: (this.mosaic.height / this.mosaic.working_height) * scale};
      const overlay = entry.kind === 'uncertainty'
        ? new HeatmapOverlay(options)
        : new LabelOverlay({...options, classes: this.classes, hiddenClasses: this.hiddenClasses});
      overlay.key = key;
      entry.overlay = overlay;
      this.stage.add(overlay, {z: Z_ORDER[entry.kind] + (entry.kind === 'level' ? -entry.level : 0)});
      this.panel.setTarget(key, overlay);
      this.panel.setStatus(key, null);
      this.app.shell.dispatchEvent(new CustomEvent('rcm:overlay-loaded', {detail: {key, overlay}, bubbles: true}));
      return overlay;
    }).catch((error) => {
      if (entry.url === url) entry.loading = null;
      this.panel.setStatus(key, 'error', error.message);
      throw error;
    });
    return entry.loading;
  }

  #onRowChange(layer, what) {
    const entry = this.entries.get(layer.id);
    if (!entry) return;
    if (what === 'visible' && layer.visible) {
      this.overlayFor(layer.id).catch(() => {});
      if (entry.kind === 'prediction' && this.shownPrediction !== entry.key) {
        this.shownPrediction = entry.key;
        this.#syncDetailRows();
      }
      if (entry.kind === 'prediction' || entry.kind === 'labels') this.#followLegend(entry.key);
    }
    this.#updateToolbar();
  }

  #followLegend(key) {
    this.legendKey = key;
    if (this.legend) this.legend.show(key);
  }

  /** Show or hide class `value` in every label overlay (predictions, labels, levels). */
  setClassVisible(value, visible) {
    if (visible) this.hiddenClasses.delete(value);
    else this.hiddenClasses.add(value);
    for (const entry of this.entries.values()) {
      if (entry.overlay instanceof LabelOverlay) entry.overlay.setClassVisible(value, visible);
    }
    if (this.legend) this.legend.setClassVisible(value, visible);
  }

  /** Rows of overlays (everything but the image), in panel order. */
  overlayRows() {
    return this.panel.ordered().filter((layer) => this.entries.has(layer.id));
  }

  /** 'O': all overlays off (remembering which were on), or those back on. */
  toggleAll() {
    const rows = this.overlayRows();
    const on = rows.filter((row) => row.visible);
    if (on.length) {
      this.remembered = on.map((row) => row.id);
      for (const row of on) this.panel.setVisible(row.id, false);
    } else {
      const back = (this.remembered || []).filter((id) => this.entries.has(id));
      const ids = back.length ? back : rows.slice(0, 1).map((row) => row.id);
      for (const id of ids) this.panel.setVisible(id, true);
    }
  }

  /** 'L' / Shift+'L': show only the next (or previous) overlay in the panel's order. */
  cycle(step = 1) {
    const rows = this.overlayRows();
    if (!rows.length) return;
    const current = rows.findIndex((row) => row.visible);
    const next = current < 0 ? (step > 0 ? 0 : rows.length - 1) : (current + step + rows.length) % rows.length;
    for (const row of rows) if (row.visible && row !== rows[next]) this.panel.setVisible(row.id, false);
    this.panel.setVisible(rows[next].id, true);
  }

  /** '[' / ']': opacity of every shown overlay down or up by OPACITY_STEP. */
  stepOpacity(sign) {
    for (const row of this.overlayRows()) {
      if (row.visible) this.panel.setOpacity(row.id, Math.round((row.opacity + sign * OPACITY_STEP) * 100) / 100);
    }
  }

  #updateToolbar() {
    this.app.toolbar.setPressed('overlays', this.overlayRows().some((row) => row.visible));
  }

  #bindControls() {
    const button = this.app.toolbar.add({id: 'overlays', label: 'Overlays on / off', icon: 'dot', shortcut: 'O',
      group: 'Layers', toggle: true, onClick: () => this.toggleAll()});
    button.replaceChildren(layersIcon());
    const windowGroup = this.app.toolbar.groups.get('Window');
    if (windowGroup) windowGroup.before(this.app.toolbar.groups.get('Layers'));
    const s = this.app.shortcuts;
    s.add({keys: ['o', 'O'], label: 'O', description: 'Overlays on / off', group: 'Layers', run: () => this.toggleAll()});
    s.add({keys: ['l'], label: 'L', description: 'Show the next layer alone', group: 'Layers', run: () => this.cycle(1)});
    s.add({keys: ['L'], label: 'Shift L', description: 'Show the previous layer alone', group: 'Layers',
      run: () => this.cycle(-1)});
    s.add({keys: [']'], description: 'More opaque overlays', group: 'Layers', repeat: true,
      run: () => this.stepOpacity(1)});
    s.add({keys: ['['], description: 'More transparent overlays', group: 'Layers', repeat: true,
      run: () => this.stepOpacity(-1)});
  }
}

if (app) {
  app.ready.then((viewerApp) => {
    const controller = new OverlayController(viewerApp);
    viewerApp.overlays = controller;
    return controller.start();
  }).catch(() => {}); // the viewer shows its own failures
}
