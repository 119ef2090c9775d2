// Colour maps and colour parsing for the overlays (no DOM, no OpenSeadragon: usable from any module).

// Inferno (perceptually uniform, dark → bright, readable by colour-blind viewers and in grey), sampled at 33 evenly
// spaced points of matplotlib's table; linear interpolation between them stays within 5/255 of the full table
// (tests/e2e/test_overlays.py checks it against matplotlib).
const INFERNO_POINTS = [
  [0, 0, 4], [4, 3, 18], [11, 7, 36], [21, 11, 55], [33, 12, 74], [47, 10, 91], [61, 9, 101], [74, 12, 107],
  [87, 16, 110], [100, 21, 110], [113, 25, 110], [125, 30, 109], [138, 34, 106], [151, 39, 102], [163, 44, 97],
  [176, 49, 91], [188, 55, 84], [199, 62, 76], [210, 70, 68], [219, 80, 59], [228, 90, 49], [235, 102, 40],
  [241, 115, 29], [246, 128, 19], [249, 142, 9], [251, 157, 7], [252, 172, 17], [251, 188, 33], [249, 203, 53],
  [245, 219, 76], [242, 234, 105], [243, 246, 138], [252, 255, 164],
];

export const COLORMAPS = {inferno: INFERNO_POINTS};

/** [r, g, b] (0..255 integers) of colour map `name` at t in [0, 1] (clamped). */
export function colormapAt(name, t) {
  const points = COLORMAPS[name];
  if (!points) throw new RangeError(`Unknown colour map ${name}; known: ${Object.keys(COLORMAPS).join(', ')}`);
  const position = Math.max(0, Math.min(1, Number(t) || 0)) * (points.length - 1);
  const i = Math.min(points.length - 2, Math.floor(position));
  const f = position - i;
  return points[i].map((value, channel) => Math.round(value + (points[i + 1][channel] - value) * f));
}

/** 256 [r, g, b] entries of colour map `name`: entry v is the colour of v / 255. */
export function colormapTable(name) {
  return Array.from({length: 256}, (_, v) => colormapAt(name, v / 255));
}

/** CSS linear-gradient of colour map `name` (left = 0), for legends; `alpha(t)` (0..1) fades it like the overlay. */
export function colormapGradient(name, {steps = 16, alpha = () => 1} = {}) {
  const stops = Array.from({length: steps + 1}, (_, i) => {
    const [r, g, b] = colormapAt(name, i / steps);
    return `rgb(${r} ${g} ${b} / ${alpha(i / steps).toFixed(3)}) ${((100 * i) / steps).toFixed(1)}%`;
  });
  return `linear-gradient(to right, ${stops.join(', ')})`;
}

/** '#1f77b4' or '#17b' → [31, 119, 180]; anything else throws (colours come from the database). */
export function parseColour(text) {
  const match = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(String(text).trim());
  if (!match) throw new RangeError(`Colour must be #rgb or #rrggbb, got ${JSON.stringify(text)}`);
  let hex = match[1];
  if (hex.length === 3) hex = [...hex].map((c) => c + c).join('');
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
}
