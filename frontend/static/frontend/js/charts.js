// Small SVG charts for the Models page: a line chart with a left and an optional right axis (live loss curve,
// epoch history) and a grouped bar chart (per-class Dice of a version beside its parent's). No library: a few
// hundred points at most, redrawn whole on each update, sized to the container and redrawn when it resizes.

const SVG_NS = 'http://www.w3.org/2000/svg';
// Space around the plot for tick labels and axis titles (px).
const MARGIN = {top: 14, right: 18, bottom: 40, left: 56};
// Extra right margin when a second y axis is drawn (its tick labels and title).
const RIGHT_AXIS_MARGIN = 48;
// Narrower than this the charts stop shrinking and the container scrolls: labels would overlap.
const MIN_WIDTH = 320;

/** An SVG element: s('line', {x1: 0, ...}, child, 'text'). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** About `count` round tick values covering [min, max] (steps of 1, 2 or 5 times a power of ten). */
export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max <= min) max = min + 1;
  const raw = (max - min) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= raw) || 10 * power;
  const ticks = [];
  for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) ticks.push(+v.toFixed(12));
  return ticks;
}

/** The upper end of a nice axis that contains `max` (1.37 → 1.4, 0.42 → 0.45). */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const ticks = niceTicks(0, max, 5);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : max;
  return Math.ceil(max / step - 1e-9) * step;
}

function defaultTickFormat(value) {
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 10) return String(+value.toFixed(1));
  if (abs >= 1) return String(+value.toFixed(2));
  return String(+value.toFixed(3));
}

function scale([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** Base: an SVG in `container` that redraws on resize. Subclasses implement draw(svg, width). */
class Chart {
  constructor(container, {height = 240, label = ''} = {}) {
    this.container = container;
    this.height = height;
    this.label = label;
    this.svg = s('svg', {class: 'chart-svg', role: 'img'});
    this.container.append(this.svg);
    this.lastWidth = 0;
    if ('ResizeObserver' in window) {
      this.observer = new ResizeObserver(() => {
        const width = this.#width();
        if (width !== this.lastWidth) this.render();
      });
      this.observer.observe(this.container);
    }
  }

  #width() {
    return Math.max(MIN_WIDTH, Math.floor(this.container.clientWidth || 640));
  }

  render() {
    const width = this.#width();
    this.lastWidth = width;
    this.svg.replaceChildren();
    this.svg.setAttribute('viewBox', `0 0 ${width} ${this.height}`);
    this.svg.setAttribute('width', width);
    this.svg.setAttribute('height', this.height);
    this.svg.setAttribute('aria-label', this.describe());
    this.draw(this.svg, width);
  }

  describe() {
    return this.label;
  }

  disconnect() {
    if (this.observer) this.observer.disconnect();
  }
}

/**
 * Lines and points against a shared x axis, each series on the left or the right y axis.
 * update({series, xDomain, xTicks, xFormat}): series = [{key, label, colour, axis: 'left'|'right',
 * points: [[x, y], …], line: true, dots: false, width: 1.5, dash: null, opacity: 1}]. Points with a null y
 * are skipped (and break the line).
 */
export class LineChart extends Chart {
  constructor(container, {height = 260, label = '', xLabel = '', leftLabel = '', rightLabel = '',
    leftFormat = defaultTickFormat, rightFormat = defaultTickFormat, rightDomain = null, emptyText = ''} = {}) {
    super(container, {height, label});
    Object.assign(this, {xLabel, leftLabel, rightLabel, leftFormat, rightFormat, rightDomain, emptyText});
    this.series = [];
    this.xDomain = [0, 1];
    this.xTicks = null;
    this.xFormat = defaultTickFormat;
  }

  update({series = [], xDomain = null, xTicks = null, xFormat = null} = {}) {
    this.series = series;
    this.xDomain = xDomain || this.#extent(series.flatMap((one) => one.points.map(([x]) => x))) || [0, 1];
    this.xTicks = xTicks;
    if (xFormat) this.xFormat = xFormat;
    this.render();
  }

  #extent(values) {
    const finite = values.filter(Number.isFinite);
    if (!finite.length) return null;
    return [Math.min(...finite), Math.max(...finite)];
  }

  describe() {
    const parts = this.series.filter((one) => one.points.some(([, y]) => y !== null)).map((one) => {
      const last = [...one.points].reverse().find(([, y]) => y !== null);
      const format = one.axis === 'right' ? this.rightFormat : this.leftFormat;
      return `${one.label}: ${one.points.filter(([, y]) => y !== null).length} points, last ${format(last[1])}`;
    });
    return [this.label, ...parts].filter(Boolean).join('. ');
  }

  draw(svg, width) {
    const hasRight = this.series.some((one) => one.axis === 'right' && one.points.length);
    const m = {...MARGIN, right: MARGIN.right + (hasRight ? RIGHT_AXIS_MARGIN : 0)};
    const plotW = width - m.left - m.right;
    const plotH = this.height - m.top - m.bottom;
    const leftValues = this.series.filter((one) => one.axis !== 'right')
      .flatMap((one) => one.points.map(([, y]) => y)).filter(Number.isFinite);
    const leftMax = niceMax(leftValues.length ? Math.max(...leftValues) : 1);
    const leftDomain = [0, leftMax];
    const rightDomain = this.rightDomain || [0, 1];
    const x = scale(this.xDomain, [m.left, m.left + plotW]);
    const yL = scale(leftDomain, [m.top + plotH, m.top]);
    const yR = scale(rightDomain, [m.top + plotH, m.top]);

    const grid = s('g', {class: 'chart-grid'});
    const axes = s('g', {class: 'chart-axes'});
    for (const tick of niceTicks(leftDomain[0], leftDomain[1], 4)) {
      grid.append(s('line', {x1: m.left, x2: m.left + plotW, y1: yL(tick), y2: yL(tick)}));
      axes.append(s('text', {x: m.left - 8, y: yL(tick), 'text-anchor': 'end', 'dominant-baseline': 'middle'},
        this.leftFormat(tick)));
    }
    if (hasRight) {
      for (const tick of niceTicks(rightDomain[0], rightDomain[1], 4)) {
        axes.append(s('text', {x: m.left + plotW + 8, y: yR(tick), 'dominant-baseline': 'middle',
          class: 'chart-right-tick'}, this.rightFormat(tick)));
      }
    }
    const xTicks = this.xTicks || niceTicks(this.xDomain[0], this.xDomain[1], Math.max(2, Math.floor(plotW / 90)));
    for (const tick of xTicks) {
      const px = x(tick);
      grid.append(s('line', {x1: px, x2: px, y1: m.top, y2: m.top + plotH, class: 'chart-grid-x'}));
      axes.append(s('text', {x: px, y: m.top + plotH + 16, 'text-anchor': 'middle'}, this.xFormat(tick)));
    }
    axes.append(s('line', {x1: m.left, x2: m.left + plotW, y1: m.top + plotH, y2: m.top + plotH,
      class: 'chart-baseline'}));
    if (this.xLabel) {
      axes.append(s('text', {x: m.left + plotW / 2, y: this.height - 4, 'text-anchor': 'middle',
        class: 'chart-axis-title'}, this.xLabel));
    }
    if (this.leftLabel) {
      axes.append(s('text', {x: 0, y: 0, 'text-anchor': 'middle', class: 'chart-axis-title',
        transform: `translate(14 ${m.top + plotH / 2}) rotate(-90)`}, this.leftLabel));
    }
    if (hasRight && this.rightLabel) {
      axes.append(s('text', {x: 0, y: 0, 'text-anchor': 'middle', class: 'chart-axis-title',
        transform: `translate(${width - 10} ${m.top + plotH / 2}) rotate(90)`}, this.rightLabel));
    }
    svg.append(grid, axes);

    const clipId = `clip-${Math.random().toString(36).slice(2)}`;
    svg.append(s('clipPath', {id: clipId}, s('rect', {x: m.left - 4, y: m.top - 4, width: plotW + 8,
      height: plotH + 8})));
    const plot = s('g', {'clip-path': `url(#${clipId})`});
    for (const one of this.series) {
      const y = one.axis === 'right' ? yR : yL;
      const group = s('g', {class: `chart-series series-${one.key}`, 'data-points': one.points.length});
      if (one.line !== false) {
        let d = '';
        let pen = 'M';
        for (const [px, py] of one.points) {
          if (py === null || !Number.isFinite(py)) {
            pen = 'M';
            continue;
          }
          d += `${pen}${x(px).toFixed(1)},${y(py).toFixed(1)}`;
          pen = 'L';
        }
        if (d) {
          group.append(s('path', {d, fill: 'none', stroke: one.colour, 'stroke-width': one.width || 1.5,
            'stroke-dasharray': one.dash || null, 'stroke-opacity': one.opacity ?? 1, 'stroke-linejoin': 'round',
            'stroke-linecap': 'round'}));
        }
      }
      if (one.dots) {
        for (const [px, py] of one.points) {
          if (py === null || !Number.isFinite(py)) continue;
          const format = one.axis === 'right' ? this.rightFormat : this.leftFormat;
          group.append(s('circle', {cx: x(px).toFixed(1), cy: y(py).toFixed(1), r: one.radius || 3.5,
            fill: one.hollow ? 'var(--surface, #fff)' : one.colour, stroke: one.colour, 'stroke-width': 1.5},
          s('title', {}, `${one.label}: ${format(py)}`)));
        }
      }
      plot.append(group);
    }
    svg.append(plot);
    if (!this.series.some((one) => one.points.length) && this.emptyText) {
      svg.append(s('text', {x: m.left + plotW / 2, y: m.top + plotH / 2, 'text-anchor': 'middle',
        class: 'chart-empty'}, this.emptyText));
    }
  }
}

/**
 * Bars of two or more series side by side for each group (e.g. per class: this version, its parent).
 * update({groups: [{label, colour}], series: [{key, label, values: [v per group], style: 'solid'|'light'}]}).
 * Null values are drawn as "n/a" at the baseline (the class is absent from the labels).
 */
export class GroupedBarChart extends Chart {
  constructor(container, {height = 260, label = '', domain = [0, 1], format = defaultTickFormat,
    valueFormat = defaultTickFormat, yLabel = ''} = {}) {
    super(container, {height, label});
    Object.assign(this, {domain, format, valueFormat, yLabel});
    this.groups = [];
    this.series = [];
  }

  update({groups = [], series = []} = {}) {
    this.groups = groups;
    this.series = series;
    this.render();
  }

  describe() {
    const parts = this.groups.map((group, i) => `${group.label}: ${this.series.map(
      (one) => `${one.label} ${one.values[i] === null ? 'n/a' : this.valueFormat(one.values[i])}`).join(', ')}`);
    return [this.label, ...parts].filter(Boolean).join('. ');
  }

  draw(svg, width) {
    const m = {...MARGIN, bottom: 46};
    const plotW = width - m.left - m.right;
    const plotH = this.height - m.top - m.bottom;
    const y = scale(this.domain, [m.top + plotH, m.top]);
    const grid = s('g', {class: 'chart-grid'});
    const axes = s('g', {class: 'chart-axes'});
    for (const tick of niceTicks(this.domain[0], this.domain[1], 4)) {
      grid.append(s('line', {x1: m.left, x2: m.left + plotW, y1: y(tick), y2: y(tick)}));
      axes.append(s('text', {x: m.left - 8, y: y(tick), 'text-anchor': 'end', 'dominant-baseline': 'middle'},
        this.format(tick)));
    }
    if (this.yLabel) {
      axes.append(s('text', {x: 0, y: 0, 'text-anchor': 'middle', class: 'chart-axis-title',
        transform: `translate(14 ${m.top + plotH / 2}) rotate(-90)`}, this.yLabel));
    }
    svg.append(grid, axes);
    const n = Math.max(1, this.groups.length);
    const band = plotW / n;
    const inner = Math.min(band * 0.72, 44 * this.series.length);
    const barW = inner / Math.max(1, this.series.length);
    const bars = s('g', {class: 'chart-bars'});
    this.groups.forEach((group, gi) => {
      const left = m.left + gi * band + (band - inner) / 2;
      const g = s('g', {class: 'chart-group', 'data-group': group.label});
      this.series.forEach((one, si) => {
        const value = one.values[gi];
        const bx = left + si * barW + 1.5;
        const bw = Math.max(2, barW - 3);
        if (value === null || value === undefined || !Number.isFinite(value)) {
          g.append(s('text', {x: bx + bw / 2, y: m.top + plotH - 6, 'text-anchor': 'middle', class: 'chart-na'},
            'n/a'));
          return;
        }
        const top = y(Math.max(this.domain[0], Math.min(this.domain[1], value)));
        const light = one.style === 'light';
        g.append(s('rect', {x: bx, y: top, width: bw, height: Math.max(0, m.top + plotH - top), rx: 2,
          fill: group.colour, 'fill-opacity': light ? 0.28 : 0.95, stroke: light ? group.colour : 'rgba(0,0,0,.28)',
          'stroke-width': light ? 1.5 : 1, class: `chart-bar chart-bar-${one.key}`},
        s('title', {}, `${group.label}, ${one.label}: ${this.valueFormat(value)}`)));
        if (bw >= 22) {
          g.append(s('text', {x: bx + bw / 2, y: top - 5, 'text-anchor': 'middle', class: 'chart-value'},
            this.valueFormat(value)));
        }
      });
      const words = group.label.split(' (');
      const label = s('text', {x: m.left + gi * band + band / 2, y: m.top + plotH + 17, 'text-anchor': 'middle',
        class: 'chart-group-label'}, words[0]);
      g.append(label);
      if (words[1]) {
        g.append(s('text', {x: m.left + gi * band + band / 2, y: m.top + plotH + 31, 'text-anchor': 'middle',
          class: 'chart-group-sub'}, `(${words.slice(1).join(' (')}`));
      }
      bars.append(g);
    });
    axes.append(s('line', {x1: m.left, x2: m.left + plotW, y1: m.top + plotH, y2: m.top + plotH,
      class: 'chart-baseline'}));
    svg.append(bars);
  }
}
