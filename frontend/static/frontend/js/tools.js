// Drawing tools over the OpenSeadragon viewer: which tool is active, the pointer gestures that draw with it, and the
// outlines drawn while a gesture lasts (brush circle, rubber-band rectangle, polygon in progress, a highlighted
// region). It knows nothing of reviews: it reports strokes and shapes in full-resolution image px to its owner.
//
//   pan      drag pans, the wheel zooms (OpenSeadragon's own gestures)
//   brush    press and drag paints a stroke (onStroke → handle.extend(point) … handle.end())
//   eraser   the same, to erase
//   fill     drag a rectangle, or click the corners of a polygon and close it (double-click, Enter, or a click on
//            the first corner): onShape(geometry, 'fill')
//   accept   the same shapes, to accept the model's labels inside: onShape(geometry, 'accept')
//
// While a drawing tool is active, OpenSeadragon's drag-to-pan, flick and double-click zoom are cancelled for the
// gesture (event.preventDefaultAction); the wheel still zooms. Holding Space pans with any tool.

/* global OpenSeadragon */

// Pointer travel (screen px) before a press on a shape tool becomes a rectangle drag rather than a polygon click:
// above a hand's jitter on a click, below any deliberate drag.
export const DRAG_THRESHOLD_PX = 5;
// A click this close (screen px) to the polygon's first corner closes it; closer than this to the last corner it
// adds nothing (the two clicks of a double-click).
export const CLOSE_DISTANCE_PX = 8;
export const DUPLICATE_DISTANCE_PX = 3;
// A stroke keeps a point only once the pointer moved this share of the brush radius (and at least one screen px)
// from the last one kept: round caps make the stroke smooth at this spacing while a minute of drawing stays
// well under the server's point limit.
export const STROKE_STEP_OF_RADIUS = 0.25;
// How long a region shown by "next" stays outlined (ms).
export const HIGHLIGHT_MS = 2600;

export const DRAWING_TOOLS = new Set(['brush', 'eraser', 'fill', 'accept']);
const SHAPE_TOOLS = new Set(['fill', 'accept']);
const SVG_NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

/** Keys typed into a field, or pressed on a control of the side panel or a dialog, are theirs, not the tools'. */
function belongsElsewhere(target) {
  return target instanceof Element && Boolean(target.closest('input:not([type=range]):not([type=checkbox]), '
    + 'textarea, select, [contenteditable], .side-panel, dialog'));
}

export class ToolController {
  /**
   * @param {object} options
   * @param {object} options.app the ViewerApp (viewer, baseImage, mosaic, imageZoom())
   * @param {(point: number[], tool: string) => {extend: Function, end: Function} | null} options.onStroke
   * @param {(geometry: object, tool: string) => void} options.onShape
   * @param {(message: string) => void} [options.onNotice] a short message for the person (polygon too small…)
   * @param {(tool: string) => void} [options.onToolChange]
   */
  constructor({app, onStroke, onShape, onNotice = () => {}, onToolChange = () => {}}) {
    this.app = app;
    this.viewer = app.viewer;
    this.onStroke = onStroke;
    this.onShape = onShape;
    this.onNotice = onNotice;
    this.onToolChange = onToolChange;
    this.tool = 'pan';
    this.enabled = false;
    this.brushRadiusUm = 20;
    this.brushColour = '#ffffff';
    this.spaceHeld = false;
    this.gesture = null; // {kind: 'stroke' | 'shape', ...} while the button is down
    this.polygon = []; // corners (image px) of the polygon being clicked
    this.pointer = null; // last pointer position (viewer element px), for the brush circle and rubber line
    this.highlight = null; // {rect: image px, until}
    this.#buildLayer();
    this.#bindViewer();
    this.#bindKeys();
  }

  // ---- state -----------------------------------------------------------------------------------------------
  get drawing() {
    return this.enabled && DRAWING_TOOLS.has(this.tool) && !this.spaceHeld;
  }

  /** Tools work only while enabled (a review in progress); disabled, the viewer pans as usual. */
  setEnabled(enabled) {
    this.enabled = Boolean(enabled);
    if (!this.enabled) this.cancel();
    this.#updateCursor();
    this.render();
  }

  setTool(tool) {
    if (tool !== 'pan' && !DRAWING_TOOLS.has(tool)) throw new RangeError(`Unknown tool ${tool}`);
    if (tool === this.tool) return;
    this.cancel();
    this.tool = tool;
    this.#updateCursor();
    this.render();
    this.onToolChange(tool);
  }

  setBrushRadius(um) {
    this.brushRadiusUm = um;
    this.render();
  }

  setBrushColour(colour) {
    this.brushColour = colour;
    this.render();
  }

  /** Give up the polygon or rectangle in progress (a stroke in progress is ended, not lost). */
  cancel() {
    if (this.gesture && this.gesture.kind === 'stroke') this.gesture.handle?.end();
    this.gesture = null;
    this.polygon = [];
    this.render();
  }

  get polygonOpen() {
    return this.polygon.length > 0;
  }

  // ---- coordinates -------------------------------------------------------------------------------------------
  toImage(position) {
    const point = this.app.baseImage.viewerElementToImageCoordinates(new OpenSeadragon.Point(position.x, position.y));
    return [point.x, point.y];
  }

  toScreen([x, y]) {
    const point = this.app.baseImage.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
    return [point.x, point.y];
  }

  /** Brush radius on screen (CSS px) at the current zoom. */
  brushScreenRadius() {
    return (this.brushRadiusUm / this.app.mosaic.um_per_px) * this.app.imageZoom();
  }

  // ---- pointer ---------------------------------------------------------------------------------------------
  #bindViewer() {
    const v = this.viewer;
    v.addHandler('canvas-press', (event) => this.#press(event));
    v.addHandler('canvas-drag', (event) => this.#drag(event));
    v.addHandler('canvas-drag-end', (event) => {
      if (this.drawing || this.gesture) event.preventDefaultAction = true; // no flick
    });
    v.addHandler('canvas-release', (event) => this.#release(event));
    v.addHandler('canvas-click', (event) => {
      if (this.drawing) event.preventDefaultAction = true;
    });
    v.addHandler('canvas-double-click', (event) => {
      if (!this.drawing) return;
      event.preventDefaultAction = true; // drawing tools never zoom on a double-click
      if (SHAPE_TOOLS.has(this.tool) && this.polygon.length) this.closePolygon();
    });
    v.addHandler('update-viewport', () => this.render());
    const canvas = v.canvas;
    canvas.addEventListener('pointermove', (event) => {
      const box = v.container.getBoundingClientRect();
      this.pointer = {x: event.clientX - box.left, y: event.clientY - box.top};
      if (this.enabled && DRAWING_TOOLS.has(this.tool)) this.render();
    });
    canvas.addEventListener('pointerleave', () => {
      this.pointer = null;
      this.render();
    });
  }

  #press(event) {
    if (!this.drawing) return;
    const point = this.toImage(event.position);
    if (this.tool === 'brush' || this.tool === 'eraser') {
      const handle = this.onStroke(point, this.tool);
      this.gesture = handle ? {kind: 'stroke', handle, last: event.position} : null;
    } else {
      this.gesture = {kind: 'shape', start: event.position, startPoint: point, current: point, rectangle: false};
    }
    this.render();
  }

  #drag(event) {
    if (!this.gesture) {
      if (this.drawing) event.preventDefaultAction = true;
      return;
    }
    event.preventDefaultAction = true;
    const g = this.gesture;
    this.pointer = {x: event.position.x, y: event.position.y};
    if (g.kind === 'stroke') {
      const step = Math.max(1, this.brushScreenRadius() * STROKE_STEP_OF_RADIUS);
      if (Math.hypot(event.position.x - g.last.x, event.position.y - g.last.y) >= step) {
        g.last = event.position;
        g.handle.extend(this.toImage(event.position));
      }
    } else {
      g.current = this.toImage(event.position);
      if (!this.polygon.length && Math.hypot(event.position.x - g.start.x, event.position.y - g.start.y)
          > DRAG_THRESHOLD_PX) g.rectangle = true;
    }
    this.render();
  }

  #release(event) {
    const g = this.gesture;
    if (!g) return;
    this.gesture = null;
    if (g.kind === 'stroke') {
      const point = this.toImage(event.position);
      if (Math.hypot(event.position.x - g.last.x, event.position.y - g.last.y) >= 1) g.handle.extend(point);
      g.handle.end();
    } else if (g.rectangle) {
      const [x0, y0] = g.startPoint;
      const [x1, y1] = this.toImage(event.position);
      this.onShape({type: 'rectangle', x0, y0, x1, y1}, this.tool);
    } else {
      this.#addCorner(event.position);
    }
    this.render();
  }

  #addCorner(position) {
    const point = this.toImage(position);
    if (this.polygon.length) {
      const [fx, fy] = this.toScreen(this.polygon[0]);
      const [lx, ly] = this.toScreen(this.polygon[this.polygon.length - 1]);
      if (this.polygon.length >= 3 && Math.hypot(position.x - fx, position.y - fy) <= CLOSE_DISTANCE_PX) {
        this.closePolygon();
        return;
      }
      if (Math.hypot(position.x - lx, position.y - ly) <= DUPLICATE_DISTANCE_PX) return;
    }
    this.polygon.push(point);
  }

  /** Close the polygon being clicked and report it (needs three corners). */
  closePolygon() {
    const points = this.polygon;
    if (points.length < 3) {
      this.onNotice(points.length ? 'A polygon needs three corners or more: click more, or drag a rectangle.' : '');
      return;
    }
    this.polygon = [];
    this.onShape({type: 'polygon', points: points.map(([x, y]) => [x, y])}, this.tool);
    this.render();
  }

  removeLastCorner() {
    this.polygon.pop();
    this.render();
  }

  // ---- keys that belong to gestures (Space to pan, Enter / Esc / Backspace for polygons) ----------------------
  #bindKeys() {
    document.addEventListener('keydown', (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || belongsElsewhere(event.target)) return;
      if (event.key === ' ' && this.enabled) {
        event.preventDefault(); // no page scroll
        if (!this.spaceHeld && !this.gesture) {
          this.spaceHeld = true;
          this.#updateCursor();
          this.render();
        }
        return;
      }
      if (!this.enabled || !this.polygon.length || document.querySelector('dialog[open]')) return;
      if (event.key === 'Enter') this.closePolygon();
      else if (event.key === 'Escape') this.cancel();
      else if (event.key === 'Backspace') this.removeLastCorner();
      else return;
      event.preventDefault();
    });
    document.addEventListener('keyup', (event) => {
      if (event.key === ' ' && this.spaceHeld) {
        event.preventDefault(); // a focused toolbar button is not pressed by the Space that panned
        this.spaceHeld = false;
        this.#updateCursor();
        this.render();
      }
    });
    window.addEventListener('blur', () => {
      this.spaceHeld = false;
      this.#updateCursor();
    });
  }

  #updateCursor() {
    const shell = this.app.shell;
    shell.dataset.tool = this.enabled ? (this.spaceHeld ? 'pan' : this.tool) : 'none';
  }

  // ---- outlines ----------------------------------------------------------------------------------------------
  #buildLayer() {
    this.layer = svg('svg', {class: 'tool-layer', 'aria-hidden': 'true'});
    this.highlightRect = svg('rect', {class: 'next-highlight'});
    this.rubber = svg('rect', {class: 'rubber-band'});
    this.polyline = svg('polyline', {class: 'polygon-path'});
    this.rubberLine = svg('line', {class: 'polygon-rubber'});
    this.corners = svg('g', {class: 'polygon-corners'});
    this.brush = svg('circle', {class: 'brush-cursor'});
    this.brushDot = svg('circle', {class: 'brush-dot', r: 1.5});
    this.layer.append(this.highlightRect, this.rubber, this.polyline, this.rubberLine, this.corners, this.brush,
      this.brushDot);
    this.viewer.canvas.append(this.layer);
  }

  /** Outline a region (image px {x0, y0, x1, y1}) for a moment. */
  flash(rect) {
    this.highlight = {rect, until: performance.now() + HIGHLIGHT_MS};
    this.highlightRect.classList.remove('flashing');
    void this.highlightRect.getBoundingClientRect(); // restart the CSS animation
    this.highlightRect.classList.add('flashing');
    this.render();
    clearTimeout(this.highlightTimer);
    this.highlightTimer = setTimeout(() => {
      this.highlight = null;
      this.render();
    }, HIGHLIGHT_MS);
  }

  render() {
    const show = (el, on) => el.setAttribute('visibility', on ? 'visible' : 'hidden');
    // highlighted region
    if (this.highlight) {
      const {x0, y0, x1, y1} = this.highlight.rect;
      const [ax, ay] = this.toScreen([x0, y0]);
      const [bx, by] = this.toScreen([x1, y1]);
      Object.entries({x: Math.min(ax, bx), y: Math.min(ay, by), width: Math.abs(bx - ax), height: Math.abs(by - ay)})
        .forEach(([k, v]) => this.highlightRect.setAttribute(k, v));
    }
    show(this.highlightRect, Boolean(this.highlight));
    // rubber band
    const g = this.gesture;
    const rect = g && g.kind === 'shape' && g.rectangle;
    if (rect) {
      const [ax, ay] = this.toScreen(g.startPoint);
      const [bx, by] = this.toScreen(g.current);
      Object.entries({x: Math.min(ax, bx), y: Math.min(ay, by), width: Math.abs(bx - ax), height: Math.abs(by - ay)})
        .forEach(([k, v]) => this.rubber.setAttribute(k, v));
    }
    show(this.rubber, rect);
    this.rubber.dataset.tool = this.tool;
    // polygon
    const corners = this.polygon.map((p) => this.toScreen(p));
    this.polyline.setAttribute('points', corners.map(([x, y]) => `${x},${y}`).join(' '));
    this.polyline.dataset.tool = this.tool;
    show(this.polyline, corners.length > 1);
    const last = corners[corners.length - 1];
    if (last && this.pointer && !this.spaceHeld) {
      this.rubberLine.setAttribute('x1', last[0]);
      this.rubberLine.setAttribute('y1', last[1]);
      this.rubberLine.setAttribute('x2', this.pointer.x);
      this.rubberLine.setAttribute('y2', this.pointer.y);
    }
    show(this.rubberLine, Boolean(last && this.pointer && !this.spaceHeld));
    this.corners.replaceChildren(...corners.map(([x, y], i) => svg('circle', {cx: x, cy: y, r: i === 0 ? 4.5 : 3,
      class: i === 0 ? 'corner corner-first' : 'corner'})));
    // brush circle
    const brushing = this.enabled && (this.tool === 'brush' || this.tool === 'eraser') && !this.spaceHeld
      && this.pointer;
    if (brushing) {
      this.brush.setAttribute('cx', this.pointer.x);
      this.brush.setAttribute('cy', this.pointer.y);
      this.brush.setAttribute('r', Math.max(1, this.brushScreenRadius()));
      this.brush.dataset.tool = this.tool;
      this.brush.style.setProperty('--brush-colour', this.tool === 'eraser' ? '#ffffff' : this.brushColour);
      this.brushDot.setAttribute('cx', this.pointer.x);
      this.brushDot.setAttribute('cy', this.pointer.y);
    }
    show(this.brush, brushing);
    show(this.brushDot, brushing);
  }
}
