// The mosaic viewer: OpenSeadragon over the mosaic's Deep Zoom pyramid, with a scale bar in µm, 1:1 zoom,
// fullscreen, keyboard shortcuts, an info panel and a layers panel. While the mosaic is not ready it shows
// the status and the live progress of its jobs, and opens the image as soon as ingest finishes.
//
// Extension points (for overlays, legends and review tools added later), all on the one `app` this module
// exports (also `window.rcmweb.viewer` for the console):
//   app.ready                  Promise resolved with the app once the mosaic image is open
//   app.viewer                 the OpenSeadragon.Viewer; app.baseImage: the mosaic's TiledImage
//   app.mosaic                 the mosaic as /api/mosaics/{id}/ returns it
//   app.toolbar.add({...})     toolbar buttons (toolbar.js), grouped
//   app.layers.add({...})      layers panel rows with visibility / opacity / legend (layers.js)
//   app.shortcuts.add({...})   keyboard shortcuts, listed in the help overlay (keyboard.js)
//   app.addPanelSection({...}) a section in the side panel (legend, review, …), optionally before another
//   app.overlays               the overlays controller once overlays.js has started (layers, classes, predictions)
//   app.addTiledLayer({...})   open another tiled image over the mosaic and list it (class rasters: overlays.js)
// A later module does: import {app} from './viewer.js'; app.ready.then((app) => app.addTiledLayer({...}));

import {getJSON} from './api.js';
import {h, replaceChildren} from './dom.js';
import {STATUS_LABELS} from './format.js';
import {Poller, syncJobs} from './jobs.js';
import {Shortcuts} from './keyboard.js';
import {LayersPanel} from './layers.js';
import {ScaleBar} from './scalebar.js';
import {Toolbar} from './toolbar.js';

/* global OpenSeadragon */

// Zoom-in limit: 4 screen pixels per image pixel. RCM detail (single cells) is ~5–10 px wide at 1 µm/px;
// 4× lets an expert see individual pixels, more only shows blur.
const MAX_ZOOM_PIXEL_RATIO = 4;
// Zoom-out limit: the whole mosaic at half the window, enough margin to see its edges.
const MIN_ZOOM_IMAGE_RATIO = 0.5;
// Zoom factor of one + / - press or button click (the wheel keeps OpenSeadragon's own 1.2 per notch).
const ZOOM_STEP = 1.5;
// Arrow keys pan by this fraction of the visible width or height.
const PAN_FRACTION = 0.15;
// Seconds of OpenSeadragon's zoom/pan animation: quick enough for all-day use, slow enough to keep one's place.
const ANIMATION_TIME_S = 0.6;
// 2D canvas drawer: the image is composited the same way in every browser and pixels can be read back (tests,
// screenshots). WebGL is not needed at these tile counts. Label and uncertainty layers are not tiled images:
// overlay.js draws them on canvases of their own, without smoothing (OpenSeadragon 6 sets smoothing per drawer,
// which would also pixelate the RCM image).
const DRAWER = 'canvas';
// Help lists the image keys first; groups added later (review, brush) follow in the order they register.
const HELP_GROUP_ORDER = ['View', 'Move', 'Window'];

export class ViewerApp {
  constructor(shell) {
    this.shell = shell;
    this.mosaicUrl = shell.dataset.mosaicUrl;
    this.stage = shell.querySelector('.viewer-stage');
    this.osdElement = shell.querySelector('#osd');
    this.statusElement = shell.querySelector('#viewer-status');
    this.sidePanel = shell.querySelector('#side-panel');
    this.toolbar = new Toolbar(shell.querySelector('#viewer-toolbar'));
    this.layers = new LayersPanel(shell.querySelector('#layer-list'));
    this.shortcuts = new Shortcuts(document);
    this.helpDialog = document.getElementById('help-dialog');
    this.readout = shell.querySelector('#cursor-readout');
    this.zoomReadout = shell.querySelector('#zoom-readout');
    this.viewer = null;
    this.baseImage = null;
    this.mosaic = null;
    this.scaleBar = null;
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {}); // failures are shown in the page; nobody has to await this
    this.statusPoller = new Poller(() => this.#refreshStatus(), {
      onError: (error) => this.#showStatusError(error),
    });
  }

  /** Load the mosaic and open it (or follow its ingest until it is ready). */
  async start() {
    this.#bindCommonControls();
    try {
      this.mosaic = await getJSON(this.mosaicUrl);
    } catch (error) {
      this.#showStatusError(error);
      this.statusPoller.poke();
      return this;
    }
    if (this.mosaic.status === 'ready') this.open();
    else {
      this.#showStatus(this.mosaic);
      this.statusPoller.poke();
    }
    return this;
  }

  // ---- not ready: status and live progress ------------------------------------------------------
  async #refreshStatus() {
    this.mosaic = await getJSON(this.mosaicUrl);
    if (this.mosaic.status === 'ready') {
      this.open();
      return false;
    }
    this.#showStatus(this.mosaic);
    return this.mosaic.status !== 'failed' || (this.mosaic.active_jobs || []).length > 0;
  }

  #showStatus(mosaic) {
    const el = this.statusElement;
    el.hidden = false;
    this.shell.dataset.state = mosaic.status;
    const failed = mosaic.status === 'failed';
    const heading = failed ? 'This mosaic could not be prepared' : 'This mosaic is being prepared';
    let card = el.querySelector('.status-card');
    if (!card) {
      card = h('div', {class: 'status-card', role: 'status', 'aria-live': 'polite'},
        h('h2', {}), h('p', {class: 'status-line'}), h('p', {class: 'failure-reason'}), h('div', {class: 'jobs'}),
        h('p', {class: 'status-hint muted'}));
      el.append(card);
    }
    card.querySelector('h2').textContent = heading;
    replaceChildren(card.querySelector('.status-line'),
      h('span', {class: `status status-${mosaic.status}`}, STATUS_LABELS[mosaic.status] || mosaic.status));
    const reason = card.querySelector('.failure-reason');
    reason.hidden = !(failed && mosaic.failure_reason);
    reason.textContent = mosaic.failure_reason || '';
    syncJobs(card.querySelector('.jobs'), mosaic.active_jobs || []);
    card.querySelector('.status-hint').textContent = failed
      ? 'An admin can upload the file again once the problem is fixed.'
      : 'The image opens here by itself when it is ready; you can keep this page open.';
  }

  #showStatusError(error) {
    const el = this.statusElement;
    el.hidden = false;
    let note = el.querySelector('.status-error');
    if (!note) {
      note = h('p', {class: 'status-error', role: 'alert'});
      el.append(note);
    }
    note.textContent = error.sessionEnded
      ? 'Your session ended. Reload the page to log in again.'
      : `${error.message} Retrying…`;
  }

  // ---- the image --------------------------------------------------------------------------------
  /** Create the OpenSeadragon viewer for the (ready) mosaic. */
  open() {
    if (this.viewer) return;
    const mosaic = this.mosaic;
    this.statusElement.hidden = true;
    this.statusElement.replaceChildren();
    this.shell.dataset.state = 'opening';
    this.viewer = OpenSeadragon({
      element: this.osdElement,
      prefixUrl: this.shell.dataset.osdPrefix,
      tileSources: mosaic.dzi_url,
      drawer: DRAWER,
      showNavigationControl: false, // our toolbar drives zoom, home and fullscreen
      showNavigator: true,
      navigatorPosition: 'TOP_RIGHT',
      navigatorSizeRatio: 0.18,
      navigatorMaintainSizeRatio: true,
      navigatorAutoFade: false,
      navigatorBackground: '#0b0e12',
      navigatorBorderColor: '#3a4350',
      navigatorDisplayRegionColor: '#4a9be0',
      keyboardNavEnabled: false, // shortcuts.js owns the keyboard, so help lists every key
      maxZoomPixelRatio: MAX_ZOOM_PIXEL_RATIO,
      minZoomImageRatio: MIN_ZOOM_IMAGE_RATIO,
      visibilityRatio: 0.2,
      animationTime: ANIMATION_TIME_S,
      gestureSettingsMouse: {clickToZoom: false, dblClickToZoom: true},
      gestureSettingsTouch: {pinchRotate: false},
      zoomPerClick: ZOOM_STEP,
      preload: false,
    });
    this.viewer.addOnceHandler('open', () => {
      this.baseImage = this.viewer.world.getItemAt(0);
      this.scaleBar = new ScaleBar({viewer: this.viewer, tiledImage: this.baseImage, umPerPx: mosaic.um_per_px,
        element: this.shell.querySelector('#scalebar')});
      this.layers.add({id: 'image', title: 'RCM image', tiledImage: this.baseImage, adjustable: false,
        group: 'Image'});
      this.#bindImageControls();
      this.shell.dataset.state = 'open';
      this.shell.dispatchEvent(new CustomEvent('rcm:viewer-ready', {detail: this, bubbles: true}));
      this._resolveReady(this);
    });
    this.viewer.addOnceHandler('open-failed', (event) => {
      this.shell.dataset.state = 'open-failed';
      this.statusElement.hidden = false;
      replaceChildren(this.statusElement, h('div', {class: 'status-card', role: 'alert'},
        h('h2', {}, 'The image could not be opened'),
        h('p', {class: 'failure-reason'}, event.message || 'The pyramid descriptor did not load.'),
        h('p', {class: 'muted'}, 'Reload the page to try again; if it persists, tell an admin.')));
      this._rejectReady(new Error(event.message || 'open-failed'));
    });
    let failedTiles = 0;
    this.viewer.addHandler('tile-load-failed', () => {
      failedTiles += 1;
      this.shell.dataset.failedTiles = String(failedTiles);
    });
  }

  /** Screen (CSS) pixels per mosaic pixel right now. */
  imageZoom() {
    return this.baseImage.viewportToImageZoom(this.viewer.viewport.getZoom(true));
  }

  /** Zoom around the centre by `factor` (>1 in). */
  zoomBy(factor) {
    this.viewer.viewport.zoomBy(factor);
    this.viewer.viewport.applyConstraints();
  }

  /** 1:1 — one mosaic pixel per physical screen pixel (so on a 2× display, half a CSS pixel). */
  zoomToNative() {
    const target = this.baseImage.imageToViewportZoom(1 / (window.devicePixelRatio || 1));
    this.viewer.viewport.zoomTo(target, null, false);
    this.viewer.viewport.applyConstraints();
  }

  home() {
    this.viewer.viewport.goHome();
  }

  panBy(dx, dy) {
    const bounds = this.viewer.viewport.getBounds();
    this.viewer.viewport.panBy(new OpenSeadragon.Point(dx * bounds.width * PAN_FRACTION,
      dy * bounds.height * PAN_FRACTION));
    this.viewer.viewport.applyConstraints();
  }

  /**
   * Open another tiled image over the mosaic, aligned with it, and list it in the layers panel.
   * tileSource: a DZI URL or OpenSeadragon tile source; pixelated: draw without smoothing where the TiledImage
   * supports it (OpenSeadragon 6 does not: class rasters go through overlays.js instead).
   * Resolves with the layers panel entry.
   */
  addTiledLayer({id, title, tileSource, opacity = 0.5, visible = true, legend = null, pixelated = false}) {
    return new Promise((resolve, reject) => {
      const bounds = this.baseImage.getBounds();
      this.viewer.addTiledImage({
        tileSource, x: bounds.x, y: bounds.y, width: bounds.width, opacity: visible ? opacity : 0, preload: false,
        success: ({item}) => {
          if (pixelated && item.setImageSmoothingEnabled) item.setImageSmoothingEnabled(false);
          resolve(this.layers.add({id, title, tiledImage: item, opacity, visible, legend}));
        },
        error: (event) => reject(new Error(event.message || `Layer ${id} could not be opened`)),
      });
    });
  }

  /**
   * Add a section to the side panel: at the end, or before the section `before` ('info', 'layers', or the id of
   * one added earlier). `actions`: nodes shown right of the title. Returns the section's body element.
   */
  addPanelSection({id, title, body = null, before = null, actions = null}) {
    const content = h('div', {class: 'panel-body'}, body);
    const head = actions
      ? h('div', {class: 'panel-head'}, h('h2', {class: 'panel-title'}, title), h('div', {class: 'panel-actions'}, actions))
      : h('h2', {class: 'panel-title'}, title);
    const section = h('section', {class: 'panel', id: `panel-${id}`, 'aria-label': title}, head, content);
    const anchor = before ? this.sidePanel.querySelector(`#panel-${before}`) : null;
    if (anchor) anchor.before(section);
    else this.sidePanel.append(section);
    return content;
  }

  toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (this.shell.requestFullscreen) this.shell.requestFullscreen().catch(() => {});
  }

  togglePanel(show = this.sidePanel.hidden) {
    this.sidePanel.hidden = !show;
    this.shell.classList.toggle('panel-closed', !show);
    this.toolbar.setPressed('panel', show);
  }

  showHelp() {
    const body = this.helpDialog.querySelector('.help-body');
    replaceChildren(body, this.shortcuts.groups(HELP_GROUP_ORDER).map(({group, items}) => h('section', {class: 'help-group'},
      h('h3', {}, group),
      h('dl', {}, items.map((item) => [
        h('dt', {}, item.label.split(' ').map((key) => h('kbd', {}, key))),
        h('dd', {}, item.description)])))));
    if (!this.helpDialog.open) this.helpDialog.showModal();
  }

  // ---- controls ---------------------------------------------------------------------------------
  /** Controls that work before the image is open (panel, help, fullscreen). */
  #bindCommonControls() {
    const t = this.toolbar;
    t.add({id: 'fullscreen', label: 'Fullscreen', icon: 'fullscreen', shortcut: 'F', group: 'Window', toggle: true,
      onClick: () => this.toggleFullscreen()});
    t.add({id: 'panel', label: 'Side panel', icon: 'panel', shortcut: 'P', group: 'Window', toggle: true,
      onClick: () => this.togglePanel()});
    t.add({id: 'help', label: 'Keyboard shortcuts', icon: 'help', shortcut: '?', group: 'Window',
      onClick: () => this.showHelp()});
    t.setPressed('panel', !this.sidePanel.hidden);
    document.addEventListener('fullscreenchange', () => {
      const on = document.fullscreenElement === this.shell;
      t.setPressed('fullscreen', on);
      t.setIcon('fullscreen', on ? 'exitFullscreen' : 'fullscreen');
      t.setLabel('fullscreen', on ? 'Leave fullscreen' : 'Fullscreen', 'F');
    });
    const s = this.shortcuts;
    s.add({keys: ['f', 'F'], label: 'F', description: 'Fullscreen on / off', group: 'Window',
      run: () => this.toggleFullscreen()});
    s.add({keys: ['p', 'P'], label: 'P', description: 'Show / hide the side panel', group: 'Window',
      run: () => this.togglePanel()});
    s.add({keys: ['?'], description: 'This help', group: 'Window', run: () => this.showHelp()});
    this.helpDialog.querySelector('.help-close').addEventListener('click', () => this.helpDialog.close());
    this.helpDialog.addEventListener('click', (event) => {
      if (event.target === this.helpDialog) this.helpDialog.close(); // click on the backdrop
    });
  }

  /** Controls that need the open image. */
  #bindImageControls() {
    const t = this.toolbar;
    t.add({id: 'zoom-in', label: 'Zoom in', icon: 'plus', shortcut: '+', onClick: () => this.zoomBy(ZOOM_STEP)});
    t.add({id: 'zoom-out', label: 'Zoom out', icon: 'minus', shortcut: '−',
      onClick: () => this.zoomBy(1 / ZOOM_STEP)});
    t.add({id: 'home', label: 'Fit the whole mosaic', icon: 'home', shortcut: '0', onClick: () => this.home()});
    t.add({id: 'native', label: 'Zoom to 1:1 (one image pixel per screen pixel)', text: '1:1', shortcut: '1',
      onClick: () => this.zoomToNative()});
    // View buttons first, window buttons after them.
    const view = t.groups.get('View');
    view.parentElement.prepend(view);

    const s = this.shortcuts;
    s.add({keys: ['+', '='], label: '+', description: 'Zoom in', group: 'View', repeat: true,
      run: () => this.zoomBy(ZOOM_STEP)});
    s.add({keys: ['-', '_'], label: '−', description: 'Zoom out', group: 'View', repeat: true,
      run: () => this.zoomBy(1 / ZOOM_STEP)});
    s.add({keys: ['0'], description: 'Fit the whole mosaic', group: 'View', run: () => this.home()});
    s.add({keys: ['1'], description: 'Zoom to 1:1 (one image pixel per screen pixel)', group: 'View',
      run: () => this.zoomToNative()});
    s.add({keys: ['ArrowLeft'], label: '←', description: 'Pan left', group: 'Move', repeat: true,
      run: () => this.panBy(-1, 0)});
    s.add({keys: ['ArrowRight'], label: '→', description: 'Pan right', group: 'Move', repeat: true,
      run: () => this.panBy(1, 0)});
    s.add({keys: ['ArrowUp'], label: '↑', description: 'Pan up', group: 'Move', repeat: true,
      run: () => this.panBy(0, -1)});
    s.add({keys: ['ArrowDown'], label: '↓', description: 'Pan down', group: 'Move', repeat: true,
      run: () => this.panBy(0, 1)});

    const updateZoom = () => {
      const native = this.imageZoom() * (window.devicePixelRatio || 1);
      const pct = native * 100;
      this.zoomReadout.textContent = `${pct >= 10 ? Math.round(pct) : pct.toFixed(1)} %`;
      this.zoomReadout.title = 'Zoom: 100 % is one image pixel per screen pixel';
    };
    for (const name of ['animation', 'animation-finish', 'resize']) this.viewer.addHandler(name, updateZoom);
    updateZoom();

    // Cursor position in µm from the mosaic's top-left corner.
    const umPerPx = this.mosaic.um_per_px;
    const {width, height} = this.mosaic;
    const fmt = new Intl.NumberFormat('en-US', {maximumFractionDigits: 0});
    new OpenSeadragon.MouseTracker({
      element: this.viewer.container,
      moveHandler: (event) => {
        const point = this.baseImage.viewportToImageCoordinates(this.viewer.viewport.pointFromPixel(event.position));
        const inside = point.x >= 0 && point.y >= 0 && point.x < width && point.y < height;
        this.readout.textContent = inside
          ? `x ${fmt.format(point.x * umPerPx)} µm · y ${fmt.format(point.y * umPerPx)} µm` : '';
      },
      leaveHandler: () => {
        this.readout.textContent = '';
      },
    });
  }
}

const shell = document.getElementById('viewer-shell');
export const app = shell ? new ViewerApp(shell) : null;
if (app) {
  window.rcmweb = Object.assign(window.rcmweb || {}, {viewer: app});
  app.start();
}
