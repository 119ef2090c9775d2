// Edit geometries in the browser: the shapes the server takes (annotations/geometry.py) and a local rasteriser that
// follows the server's rules, so an edit is drawn under the cursor before the server has answered. The server's
// answer (the pixels it wrote) then replaces the local guess, so a pixel where the two differ never lasts.
//
// Coordinates: geometries are in full-resolution image px (what OpenSeadragon's base TiledImage calls image
// coordinates); the label raster is at working resolution (x · scaleX, y · scaleY); working pixel (i, j) spans
// [i, i + 1) × [j, j + 1). Rectangles cover every working pixel they touch; polygons and strokes are drawn with the
// server's (PIL's) rules, below.
// A rasterised geometry is {region: {x, y, width, height}, mask: Uint8Array | null} in working px (mask null: the
// whole region), clipped to the raster, or null when it covers no pixel of it.

// Mirrors annotations.geometry.MAX_POINTS: the server refuses an edit with more points. Strokes are split and
// polygons refused before that.
export const MAX_POINTS = 10000;
// Mirrors annotations.geometry.MAX_RADIUS_UM: the largest brush the server accepts (a 1 mm wide dab).
export const MAX_RADIUS_UM = 500;
// Margin (working px) around a polygon or stroke's points when sizing its canvas, as the server does.
const CANVAS_MARGIN = 2;

/** How full-resolution coordinates map onto a mosaic's working raster (from /api/mosaics/{id}/). */
export function frameOf(mosaic) {
  const frame = {
    width: mosaic.width, height: mosaic.height,
    workingWidth: mosaic.working_width, workingHeight: mosaic.working_height,
    umPerPx: mosaic.um_per_px,
  };
  if (![frame.width, frame.height, frame.workingWidth, frame.workingHeight].every((v) => Number.isInteger(v) && v > 0)
      || !(frame.umPerPx > 0)) {
    throw new RangeError(`A frame needs positive integer sizes and µm/px; got ${JSON.stringify(frame)}`);
  }
  frame.scaleX = frame.workingWidth / frame.width;
  frame.scaleY = frame.workingHeight / frame.height;
  return frame;
}

/** Brush radius in working px of a radius in µm (the server's rule: µm → full-resolution px → working px). */
export function radiusInWorkingPx(radiusUm, frame) {
  return (radiusUm / frame.umPerPx) * frame.scaleX;
}

function finitePoint(point) {
  return Array.isArray(point) && point.length === 2 && Number.isFinite(point[0]) && Number.isFinite(point[1]);
}

/** Shrink a mask to the tight box of its set pixels; null when none is set. */
function tighten(x0, y0, width, height, mask) {
  let top = height;
  let bottom = -1;
  let left = width;
  let right = -1;
  for (let row = 0; row < height; row += 1) {
    const base = row * width;
    for (let col = 0; col < width; col += 1) {
      if (mask[base + col]) {
        if (row < top) top = row;
        bottom = row;
        if (col < left) left = col;
        if (col > right) right = col;
      }
    }
  }
  if (bottom < 0) return null;
  const w = right - left + 1;
  const h = bottom - top + 1;
  if (w === width && h === height) return {region: {x: x0, y: y0, width, height}, mask};
  const out = new Uint8Array(w * h);
  for (let row = 0; row < h; row += 1) {
    const from = (top + row) * width + left;
    out.set(mask.subarray(from, from + w), row * w);
  }
  return {region: {x: x0 + left, y: y0 + top, width: w, height: h}, mask: out};
}

/** The canvas box (working px, clipped) around points with a margin; null when it misses the raster. */
function canvasBox(points, margin, frame) {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const [x, y] of points) {
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
    maxX = Math.max(maxX, x);
    maxY = Math.max(maxY, y);
  }
  const x0 = Math.max(0, Math.floor(minX - margin));
  const y0 = Math.max(0, Math.floor(minY - margin));
  const x1 = Math.min(frame.workingWidth, Math.ceil(maxX + margin));
  const y1 = Math.min(frame.workingHeight, Math.ceil(maxY + margin));
  if (x1 <= x0 || y1 <= y0) return null;
  return {x0, y0, width: x1 - x0, height: y1 - y0};
}

// ---- the server's drawing rules (PIL), on a canvas of working px ---------------------------------------------------
// The server draws on a canvas whose pixel i is working pixel x0 + i, at PIL coordinates u = x - x0 - 0.5 (x in
// working coordinates): PIL truncates them to integers, fills polygons by scanlines (spans from the crossing rounded
// half up to the crossing rounded half down; an edge's lower end counts twice unless it is the polygon's lowest row),
// draws a wide line as a filled quadrilateral and a disc from its integer bounding box. The functions below follow
// those rules, so the local drawing matches the stored pixels but for a few on outlines (tested against the server).

// PIL's ROUND_UP and ROUND_DOWN (half away from / towards zero, symmetric about 0).
const roundUp = (f) => (f >= 0 ? Math.floor(f + 0.5) : -Math.floor(-f + 0.5));
const roundDown = (f) => (f >= 0 ? Math.ceil(f - 0.5) : -Math.ceil(-f - 0.5));
// Python's round(): halves to even (the server's line width is round(2 * radius)).
const roundHalfEven = (f) => {
  const r = Math.round(f);
  return Math.abs(f % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
// PIL draws a disc slightly inside its bounding box: shrinking the semi-axes by this many px matches its pixels best
// (measured against PIL over random boxes: 0.7 % of pixels differ, against 1.4 % without).
const DISC_SHRINK_PX = 0.1;

function setPixel(mask, box, col, row) {
  if (col >= 0 && row >= 0 && col < box.width && row < box.height) mask[row * box.width + col] = 1;
}

/** Scanline fill of a polygon with integer canvas vertices, by PIL's rule. */
function fillPolygon(mask, box, vertices) {
  const edges = [];
  for (let i = 0; i < vertices.length; i += 1) {
    let [ax, ay] = vertices[i];
    let [bx, by] = vertices[(i + 1) % vertices.length];
    if (ay === by) continue;
    if (ay > by) [ax, ay, bx, by] = [bx, by, ax, ay];
    edges.push([ax, ay, by, (bx - ax) / (by - ay)]);
  }
  if (!edges.length) return;
  const ys = vertices.map((v) => v[1]);
  const yMax = Math.max(...ys);
  const xs = [];
  for (let y = Math.max(0, Math.min(...ys)); y <= Math.min(box.height - 1, yMax); y += 1) {
    xs.length = 0;
    for (const [ax, ay, by, dx] of edges) {
      if (ay <= y && y <= by) {
        const x = (y - ay) * dx + ax;
        xs.push(x);
        if (y === by && y < yMax) xs.push(x);
      }
    }
    xs.sort((a, b) => a - b);
    for (let k = 1; k < xs.length; k += 2) {
      const from = Math.max(0, Math.floor(xs[k - 1] + 0.5));
      const to = Math.min(box.width - 1, Math.ceil(xs[k] - 0.5));
      if (to >= from) mask.fill(1, y * box.width + from, y * box.width + to + 1);
    }
  }
}

/** A one-pixel line between integer canvas points (Bresenham). */
function thinLine(mask, box, x0, y0, x1, y1) {
  const dx = Math.abs(x1 - x0);
  const dy = Math.abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  let err = dx - dy;
  let x = x0;
  let y = y0;
  for (;;) {
    setPixel(mask, box, x, y);
    if (x === x1 && y === y1) return;
    const e2 = 2 * err;
    if (e2 > -dy) {
      err -= dy;
      x += sx;
    }
    if (e2 < dx) {
      err += dx;
      y += sy;
    }
  }
}

/** A line `width` px wide between integer canvas points, as PIL draws it (a filled quadrilateral). */
function wideLine(mask, box, x0, y0, x1, y1, width) {
  if (width <= 1) {
    thinLine(mask, box, x0, y0, x1, y1);
    return;
  }
  const dx = x1 - x0;
  const dy = y1 - y0;
  if (dx === 0 && dy === 0) {
    setPixel(mask, box, x0, y0);
    return;
  }
  const length = Math.hypot(dx, dy);
  const half = (width - 1) / 2;
  const ratioMax = roundUp(half) / length;
  const ratioMin = roundDown(half) / length;
  const maxdx = roundUp(dx * ratioMax);
  const maxdy = roundUp(dy * ratioMax);
  const mindx = roundDown(dx * ratioMin);
  const mindy = roundDown(dy * ratioMin);
  fillPolygon(mask, box, [[x0 - mindy, y0 + mindx], [x1 - mindy, y1 + mindx], [x1 + maxdy, y1 - maxdx],
    [x0 + maxdy, y0 - maxdx]]);
}

/** A filled disc (ellipse) in the integer canvas box [x0, x1] × [y0, y1], both ends included. */
function disc(mask, box, x0, y0, x1, y1) {
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const a = (x1 - x0 + 1) / 2 - DISC_SHRINK_PX;
  const b = (y1 - y0 + 1) / 2 - DISC_SHRINK_PX;
  for (let y = Math.max(0, y0); y <= Math.min(box.height - 1, y1); y += 1) {
    const t = 1 - ((y - cy) / b) ** 2;
    if (t < 0) continue;
    const half = a * Math.sqrt(t);
    const from = Math.max(0, Math.ceil(cx - half));
    const to = Math.min(box.width - 1, Math.floor(cx + half));
    if (to >= from) mask.fill(1, y * box.width + from, y * box.width + to + 1);
  }
}

/** A rectangle {x0, y0, x1, y1} (image px, corners in any order): every working pixel it touches. */
export function rasteriseRectangle(geometry, frame) {
  const {x0: ax, y0: ay, x1: bx, y1: by} = geometry;
  if (![ax, ay, bx, by].every(Number.isFinite)) throw new RangeError('A rectangle needs finite x0, y0, x1, y1');
  const x0 = Math.max(0, Math.floor(Math.min(ax, bx) * frame.scaleX));
  const x1 = Math.min(frame.workingWidth, Math.ceil(Math.max(ax, bx) * frame.scaleX));
  const y0 = Math.max(0, Math.floor(Math.min(ay, by) * frame.scaleY));
  const y1 = Math.min(frame.workingHeight, Math.ceil(Math.max(ay, by) * frame.scaleY));
  if (x1 <= x0 || y1 <= y0) return null;
  return {region: {x: x0, y: y0, width: x1 - x0, height: y1 - y0}, mask: null};
}

/** A polygon of [x, y] image-px points, filled as the server fills it. */
export function rasterisePolygon(points, frame) {
  if (points.length < 3 || !points.every(finitePoint)) throw new RangeError('A polygon needs 3 or more finite points');
  const pts = points.map(([x, y]) => [x * frame.scaleX, y * frame.scaleY]);
  const box = canvasBox(pts, CANVAS_MARGIN, frame);
  if (!box) return null;
  const mask = new Uint8Array(box.width * box.height);
  fillPolygon(mask, box, pts.map(([x, y]) => [Math.trunc(x - box.x0 - 0.5), Math.trunc(y - box.y0 - 0.5)]));
  return tighten(box.x0, box.y0, box.width, box.height, mask);
}

/**
 * A stroke of [x, y] image-px points with a radius in µm, drawn as the server draws it: a line round(2 r) px wide
 * through the points, a disc of radius r on every point, and the pixel under every point.
 */
export function rasteriseStroke(points, radiusUm, frame) {
  if (points.length < 1 || !points.every(finitePoint)) throw new RangeError('A stroke needs 1 or more finite points');
  if (!(radiusUm > 0)) throw new RangeError(`A stroke needs a radius above 0 µm, got ${radiusUm}`);
  const radius = radiusInWorkingPx(radiusUm, frame);
  const pts = points.map(([x, y]) => [x * frame.scaleX, y * frame.scaleY]);
  const box = canvasBox(pts, radius + CANVAS_MARGIN, frame);
  if (!box) return null;
  const mask = new Uint8Array(box.width * box.height);
  const local = pts.map(([x, y]) => [x - box.x0 - 0.5, y - box.y0 - 0.5]);
  const width = Math.max(1, roundHalfEven(2 * radius));
  for (let i = 1; i < local.length; i += 1) {
    const [ax, ay] = local[i - 1];
    const [bx, by] = local[i];
    wideLine(mask, box, Math.trunc(ax), Math.trunc(ay), Math.trunc(bx), Math.trunc(by), width);
  }
  const inner = Math.max(0, radius - 0.5);
  for (const [x, y] of local) {
    disc(mask, box, Math.trunc(x - inner), Math.trunc(y - inner), Math.trunc(x + inner), Math.trunc(y + inner));
    setPixel(mask, box, Math.floor(x + 0.5), Math.floor(y + 0.5));
  }
  return tighten(box.x0, box.y0, box.width, box.height, mask);
}

/** Any geometry as the server takes it ({type: 'stroke' | 'polygon' | 'rectangle', ...}). */
export function rasterise(geometry, frame) {
  if (geometry.type === 'rectangle') return rasteriseRectangle(geometry, frame);
  if (geometry.type === 'polygon') return rasterisePolygon(geometry.points, frame);
  if (geometry.type === 'stroke') return rasteriseStroke(geometry.points, geometry.radius_um, frame);
  throw new RangeError(`Unknown geometry type ${geometry.type}; use stroke, polygon or rectangle`);
}

/** Decode a patch of an edit's answer ({width, height, encoding: 'base64-uint8-rows', data}) into bytes. */
export function decodePatch(patch) {
  if (patch.encoding !== 'base64-uint8-rows') throw new RangeError(`Unknown patch encoding ${patch.encoding}`);
  const text = atob(patch.data);
  if (text.length !== patch.width * patch.height) {
    throw new RangeError(`The patch has ${text.length} values for ${patch.width} × ${patch.height} pixels`);
  }
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i);
  return bytes;
}
