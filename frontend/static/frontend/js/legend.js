// The viewer's "Classes" panel: one row per label class (colour swatch, name, a toggle that hides the class in
// every label overlay) with the class's area and share in the selected layer, from /class-areas/; links to the
// CSV and the bar chart PNG, and a report dialog showing the chart.

import {apiUrl, getJSON} from './api.js';
import {h, replaceChildren} from './dom.js';

// Pattern classes, whose share is of the lesion (the paper's class shares); the others' is of the labelled area.
export const LESION_CLASS_KEYS = ['meshwork', 'ring', 'nested', 'aspecific'];

/** Area in mm² with three significant digits ("1.23", "0.0492", "12.3", "123"); 0 → "0". */
export function formatArea(mm2) {
  if (!mm2) return '0';
  if (mm2 >= 100) return String(Math.round(mm2));
  return Number(mm2).toPrecision(3);
}

/** Share 0..1 as "49.0 %" (one decimal). */
export function formatShare(fraction) {
  return `${(100 * (fraction || 0)).toFixed(1)} %`;
}

/** The share the legend shows for a row of /class-areas/: of the lesion (patterns) or of the labelled area. */
export function shownShare(row) {
  return row.share_of_lesion === null || row.share_of_lesion === undefined ? row.share_of_labelled : row.share_of_lesion;
}

export class ClassLegend {
  /**
   * @param {object} options
   * @param {object} options.app the ViewerApp (for addPanelSection and the mosaic)
   * @param {Array<{value, key, name, colour}>} options.classes from /api/label-classes/
   * @param {(value: number, visible: boolean) => void} options.onToggle a class was shown or hidden
   * @param {(key: string) => void} [options.onSelect] the user picked another layer for the areas
   */
  constructor({app, classes, onToggle, onSelect = () => {}}) {
    this.app = app;
    this.classes = [...classes].sort((a, b) => a.value - b.value);
    this.onToggle = onToggle;
    this.onSelect = onSelect;
    this.layers = [];
    this.key = null;
    this.cache = new Map(); // class-areas URL → Promise of rows
    this.request = 0;
    this.areasUrl = (key, output) => apiUrl(`mosaics/${app.mosaic.id}/class-areas/?layer=${encodeURIComponent(key)}`
      + `&output=${output}`);

    this.select = h('select', {class: 'legend-layer', 'aria-label': 'Layer whose class areas are shown',
      onchange: (event) => {
        this.show(event.target.value);
        this.onSelect(event.target.value);
      }});
    this.rows = new Map();
    const body = h('tbody', {}, this.classes.map((item) => this.#row(item)));
    this.table = h('table', {class: 'class-table'},
      h('thead', {}, h('tr', {},
        h('th', {scope: 'col'}, 'Class'),
        h('th', {scope: 'col', class: 'num', title: 'Area in square millimetres'}, 'mm²'),
        h('th', {scope: 'col', class: 'num', title: 'Share of the lesion for pattern classes; of the labelled '
          + 'area for background and artifact'}, 'Share'))),
      body);
    this.total = h('p', {class: 'class-total num'});
    this.error = h('p', {class: 'legend-error', role: 'alert'});
    this.error.hidden = true;
    this.csvLink = h('a', {class: 'btn btn-quiet btn-small', download: '', 'data-output': 'csv'}, 'CSV');
    this.pngLink = h('a', {class: 'btn btn-quiet btn-small', target: '_blank', rel: 'noopener', 'data-output': 'png'},
      'Chart');
    this.reportButton = h('button', {type: 'button', class: 'btn btn-quiet btn-small', 'data-action': 'report',
      onclick: () => this.openReport()}, 'Report…');
    this.picker = h('label', {class: 'legend-picker'}, h('span', {class: 'muted'}, 'Areas of'), this.select);
    this.body = app.addPanelSection({id: 'classes', title: 'Classes', before: 'info', body: [
      this.picker, this.table, this.total,
      h('p', {class: 'class-note'}, 'Share: of the lesion for meshwork, ring, nested and aspecific; of the labelled '
        + 'area for background and artifact.'),
      this.error,
      h('div', {class: 'legend-actions'}, this.csvLink, this.pngLink, this.reportButton)]});
    this.section = this.body.closest('section');
    this.dialog = this.#dialog();
    this.#setLinks(null);
  }

  #row(item) {
    const checkbox = h('input', {type: 'checkbox', checked: true, id: `class-${item.key}-visible`,
      'aria-label': `Show ${item.name}`, onchange: (event) => this.onToggle(item.value, event.target.checked)});
    const row = h('tr', {class: 'class-row', dataset: {value: item.value, key: item.key}},
      h('td', {class: 'class-cell'},
        h('label', {class: 'class-label', for: checkbox.id}, checkbox,
          h('span', {class: 'swatch', style: {background: item.colour}, 'aria-hidden': 'true'}),
          h('span', {class: 'class-name'}, item.name))),
      h('td', {class: 'num class-area'}, '–'),
      h('td', {class: 'num class-share'}, '–'));
    this.rows.set(item.value, {row, checkbox});
    return row;
  }

  /** Reflect a class's visibility (changed by a shortcut or another control) in its checkbox. */
  setClassVisible(value, visible) {
    const entry = this.rows.get(value);
    if (entry) {
      entry.checkbox.checked = visible;
      entry.row.classList.toggle('class-off', !visible);
    }
  }

  /** The layers one may pick: [{key, title}]. Hides the panel when there is none. */
  setLayers(layers) {
    this.layers = layers;
    replaceChildren(this.select, layers.map((layer) => h('option', {value: layer.key}, layer.title)));
    this.section.hidden = layers.length === 0;
    if (this.key && layers.some((layer) => layer.key === this.key)) this.select.value = this.key;
    else this.show(layers.length ? layers[0].key : null);
  }

  /** Show the class areas of layer `key` (a key of /layers/). */
  async show(key) {
    if (key === this.key && this.current) return this.current;
    if (key !== this.key) this.current = null;
    this.key = key;
    if (key) this.select.value = key;
    this.#setLinks(key);
    const request = ++this.request;
    if (!key) {
      this.#fill(null);
      return null;
    }
    this.body.dataset.loading = 'true';
    const url = this.areasUrl(key, 'json');
    if (!this.cache.has(url)) this.cache.set(url, getJSON(url));
    try {
      const rows = await this.cache.get(url);
      if (request !== this.request) return rows;
      this.error.hidden = true;
      this.#fill(rows);
      this.current = rows;
      return rows;
    } catch (error) {
      this.cache.delete(url);
      if (request !== this.request) return null;
      this.#fill(null);
      this.error.hidden = false;
      this.error.textContent = `Class areas could not be loaded: ${error.message}`;
      return null;
    } finally {
      if (request === this.request) delete this.body.dataset.loading;
    }
  }

  /** Forget cached areas (a layer changed on the server) and show the current layer again. */
  reload() {
    this.cache.clear();
    const key = this.key;
    this.key = null;
    this.current = null;
    return this.show(key);
  }

  #fill(rows) {
    const byValue = new Map((rows || []).map((row) => [row.value, row]));
    for (const [value, {row}] of this.rows) {
      const data = byValue.get(value);
      const area = row.querySelector('.class-area');
      const share = row.querySelector('.class-share');
      area.textContent = data ? formatArea(data.area_mm2) : '–';
      share.textContent = data ? formatShare(shownShare(data)) : '–';
      share.title = data ? (data.share_of_lesion === null ? 'of the labelled area' : 'of the lesion') : '';
      row.classList.toggle('class-empty', Boolean(data) && data.pixels === 0);
    }
    if (!rows) {
      this.total.textContent = '';
      return;
    }
    const labelled = rows.reduce((sum, row) => sum + row.area_mm2, 0);
    const lesion = rows.filter((row) => LESION_CLASS_KEYS.includes(row.key)).reduce((sum, row) => sum + row.area_mm2, 0);
    this.total.textContent = `Labelled ${formatArea(labelled)} mm² · lesion ${formatArea(lesion)} mm²`;
  }

  #setLinks(key) {
    for (const link of [this.csvLink, this.pngLink]) {
      if (key) {
        link.href = this.areasUrl(key, link.dataset.output);
        link.removeAttribute('aria-disabled');
      } else {
        link.removeAttribute('href');
        link.setAttribute('aria-disabled', 'true');
      }
    }
    this.reportButton.disabled = !key;
  }

  #dialog() {
    const dialog = h('dialog', {class: 'report-dialog', 'aria-labelledby': 'report-title'},
      h('div', {class: 'report-head'},
        h('h2', {id: 'report-title'}, 'Class areas'),
        h('button', {type: 'button', class: 'btn btn-quiet btn-small', onclick: () => dialog.close()},
          'Close ', h('kbd', {}, 'Esc'))),
      h('div', {class: 'report-body'},
        h('p', {class: 'report-layer muted'}),
        h('figure', {class: 'report-figure'},
          h('img', {class: 'report-chart', alt: 'Bar chart of the area and lesion share of each class'})),
        h('div', {class: 'report-table'})),
      h('div', {class: 'report-foot'},
        h('a', {class: 'btn btn-secondary btn-small report-csv', download: ''}, 'Download CSV'),
        h('a', {class: 'btn btn-secondary btn-small report-png', download: ''}, 'Download chart (PNG)')));
    dialog.addEventListener('click', (event) => {
      if (event.target === dialog) dialog.close();
    });
    document.body.append(dialog);
    return dialog;
  }

  /** The report dialog: the server's bar chart of the layer's class areas, the numbers, and downloads. */
  async openReport() {
    if (!this.key) return;
    const layer = this.layers.find((item) => item.key === this.key);
    const d = this.dialog;
    d.querySelector('.report-layer').textContent = `${this.app.mosaic.name} · ${layer ? layer.title : this.key}`;
    d.querySelector('.report-chart').src = this.areasUrl(this.key, 'png');
    d.querySelector('.report-csv').href = this.areasUrl(this.key, 'csv');
    d.querySelector('.report-png').href = this.areasUrl(this.key, 'png');
    if (!d.open) d.showModal();
    const rows = await this.show(this.key);
    replaceChildren(d.querySelector('.report-table'), rows ? h('table', {class: 'table report-rows'},
      h('thead', {}, h('tr', {}, ['Class', 'Pixels', 'Area (mm²)', 'Of labelled', 'Of lesion']
        .map((text, i) => h('th', {scope: 'col', class: i ? 'num' : null}, text)))),
      h('tbody', {}, rows.map((row) => h('tr', {dataset: {key: row.key}},
        h('td', {}, h('span', {class: 'swatch', style: {background: row.colour}}), ' ', row.name),
        h('td', {class: 'num'}, row.pixels.toLocaleString('en-US')),
        h('td', {class: 'num'}, formatArea(row.area_mm2)),
        h('td', {class: 'num'}, formatShare(row.share_of_labelled)),
        h('td', {class: 'num'}, row.share_of_lesion === null ? '–' : formatShare(row.share_of_lesion))))))
      : null);
  }
}
