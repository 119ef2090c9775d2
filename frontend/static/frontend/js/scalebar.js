// Scale bar in µm for the viewer: picks a round length (1-2-5 steps: … 10, 20, 50, 100, 200, 500 µm, 1, 2, 5 mm …)
// that fits the bar's maximum width at the current zoom, from the mosaic's µm per image pixel.

// Longest the bar may be, in CSS pixels. With 1-2-5 steps the chosen bar is 40–100 % of this, so it never
// shrinks below ~64 px (still readable) and never covers much of the image.
export const SCALE_BAR_MAX_PX = 160;
const STEPS = [1, 2, 5];

/** The largest length of the form {1, 2, 5} × 10^k µm that is at most `maxUm`. */
export function roundLength(maxUm) {
  if (!(maxUm > 0) || !Number.isFinite(maxUm)) throw new RangeError(`maxUm must be a positive number, got ${maxUm}`);
  const decade = 10 ** Math.floor(Math.log10(maxUm));
  let best = decade;
  for (const step of STEPS) {
    // A tiny tolerance, so that 100 µm is not missed because 100/1e2 came out as 0.9999999.
    if (step * decade <= maxUm * (1 + 1e-9)) best = step * decade;
  }
  return best;
}

/** "500 µm", "1 mm", "20 mm", "0.5 µm". */
export function formatLength(um) {
  if (um >= 1000) return `${Number((um / 1000).toPrecision(6))} mm`;
  return `${Number(um.toPrecision(6))} µm`;
}

/**
 * Choose the bar for a zoom level.
 * @param {number} umPerScreenPx µm covered by one CSS pixel on screen at the current zoom
 * @param {number} maxPx longest bar in CSS pixels
 * @returns {{lengthUm: number, px: number, label: string}}
 */
export function chooseScale(umPerScreenPx, maxPx = SCALE_BAR_MAX_PX) {
  if (!(umPerScreenPx > 0) || !Number.isFinite(umPerScreenPx)) {
    throw new RangeError(`umPerScreenPx must be a positive number, got ${umPerScreenPx}`);
  }
  const lengthUm = roundLength(umPerScreenPx * maxPx);
  return {lengthUm, px: lengthUm / umPerScreenPx, label: formatLength(lengthUm)};
}

/**
 * A scale bar drawn into `element` (which holds `.scalebar-bar` and `.scalebar-label`), kept in step with
 * an OpenSeadragon viewer. `tiledImage` is the image whose pixels are `umPerPx` µm wide (the mosaic).
 */
export class ScaleBar {
  constructor({viewer, tiledImage, umPerPx, element, maxPx = SCALE_BAR_MAX_PX}) {
    if (!(umPerPx > 0)) throw new RangeError(`umPerPx must be positive, got ${umPerPx}`);
    this.viewer = viewer;
    this.tiledImage = tiledImage;
    this.umPerPx = umPerPx;
    this.element = element;
    this.maxPx = maxPx;
    this.bar = element.querySelector('.scalebar-bar');
    this.label = element.querySelector('.scalebar-label');
    this.update = this.update.bind(this);
    for (const name of ['open', 'animation', 'animation-finish', 'resize', 'update-viewport']) {
      viewer.addHandler(name, this.update);
    }
    element.hidden = false;
    this.update();
  }

  /** Screen (CSS) pixels per image pixel at the current, animated zoom. */
  imageZoom() {
    return this.tiledImage.viewportToImageZoom(this.viewer.viewport.getZoom(true));
  }

  update() {
    const zoom = this.imageZoom();
    if (!(zoom > 0)) return;
    const scale = chooseScale(this.umPerPx / zoom, this.maxPx);
    this.bar.style.width = `${scale.px.toFixed(1)}px`;
    this.label.textContent = scale.label;
    this.element.dataset.lengthUm = String(scale.lengthUm);
  }

  destroy() {
    for (const name of ['open', 'animation', 'animation-finish', 'resize', 'update-viewport']) {
      this.viewer.removeHandler(name, this.update);
    }
    this.element.hidden = true;
  }
}
