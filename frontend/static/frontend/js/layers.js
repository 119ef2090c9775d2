// The viewer's layers panel: one row per layer (the mosaic, model predictions, expert labels, uncertainty,
// coarser model levels), in groups, each with visibility, opacity, a status line and an optional legend.
// A row drives either an OpenSeadragon TiledImage (`tiledImage`) or any object with setVisible / setOpacity
// (`target`, e.g. an overlay of overlay.js, which may arrive later: setTarget).

import {h} from './dom.js';

// Groups in the order they are listed; rows of other groups follow, in the order the groups first appear.
export const DEFAULT_GROUP_ORDER = ['Model output', 'Labels', 'Model detail', 'Overlays', 'Image'];

export class LayersPanel {
  constructor(listElement, {groupOrder = DEFAULT_GROUP_ORDER} = {}) {
    this.list = listElement;
    this.layers = new Map();
    this.groups = new Map();
    this.groupOrder = [...groupOrder];
    this.listeners = new Set();
  }

  /**
   * Add a row.
   * @param {object} options
   * @param {string} options.id unique key ('image', 'prediction:3', 'layer:7', 'uncertainty', …)
   * @param {string} options.title shown name
   * @param {object} [options.tiledImage] OpenSeadragon.TiledImage shown at `opacity` (0 when hidden)
   * @param {object} [options.target] instead of tiledImage: an object with setVisible(bool) and setOpacity(0..1)
   * @param {number} [options.opacity=1] 0..1
   * @param {boolean} [options.visible=true]
   * @param {boolean} [options.adjustable=true] show the opacity slider
   * @param {Node} [options.legend] shown under the row (class colours, colour bar, …)
   * @param {string} [options.detail] a second line (model date, labelled area, …)
   * @param {string} [options.group='Overlays'] heading the row is listed under (see DEFAULT_GROUP_ORDER)
   * @param {number} [options.order=0] position inside its group (smaller first; equal: in the order added)
   * @param {string} [options.kind] free tag for the page's scripts (data-kind on the row)
   */
  add({id, title, tiledImage = null, target = null, opacity = 1, visible = true, adjustable = true, legend = null,
    detail = null, group = 'Overlays', order = 0, kind = null}) {
    if (this.layers.has(id)) throw new Error(`Layer ${id} exists already`);
    const layer = {id, title, tiledImage, target, opacity, visible, group, order, kind};
    const checkboxId = `layer-${id.replace(/[^\w-]/g, '-')}-visible`;
    const checkbox = h('input', {type: 'checkbox', checked: visible, id: checkboxId,
      onchange: (event) => this.setVisible(id, event.target.checked)});
    const slider = adjustable ? h('input', {type: 'range', min: 0, max: 100, step: 1, value: Math.round(opacity * 100),
      class: 'opacity', 'aria-label': `Opacity of ${title}`,
      oninput: (event) => this.setOpacity(id, Number(event.target.value) / 100)}) : null;
    const value = adjustable ? h('output', {class: 'opacity-value'},
      `${Math.round(opacity * 100)} %`) : null;
    layer.name = h('span', {class: 'layer-name'}, title);
    layer.detailElement = h('span', {class: 'layer-detail'}, detail || '');
    layer.detailElement.hidden = !detail;
    layer.statusElement = h('p', {class: 'layer-status', role: 'status'});
    layer.statusElement.hidden = true;
    layer.legendElement = h('div', {class: 'layer-legend'}, legend);
    layer.legendElement.hidden = !legend;
    layer.row = h('li', {class: 'layer', dataset: {layer: id, ...(kind ? {kind} : {})}},
      h('div', {class: 'layer-head'},
        h('label', {class: 'layer-title', for: checkboxId}, checkbox,
          h('span', {class: 'layer-text'}, layer.name, layer.detailElement)),
        value),
      slider,
      layer.statusElement,
      layer.legendElement);
    layer.checkbox = checkbox;
    layer.slider = slider;
    layer.value = value;
    this.layers.set(id, layer);
    this.#insert(layer);
    this.#apply(layer);
    return layer;
  }

  get(id) {
    return this.layers.get(id);
  }

  /** Rows in the order they are listed. */
  ordered() {
    return [...this.list.querySelectorAll('.layer')].map((row) => this.layers.get(row.dataset.layer)).filter(Boolean);
  }

  remove(id) {
    const layer = this.layers.get(id);
    if (!layer) return;
    layer.row.remove();
    this.layers.delete(id);
    const group = this.groups.get(layer.group);
    if (group && !group.list.children.length) {
      group.element.remove();
      this.groups.delete(layer.group);
    }
  }

  setVisible(id, visible) {
    const layer = this.layers.get(id);
    layer.visible = visible;
    layer.checkbox.checked = visible;
    this.#apply(layer);
    this.#emit(layer, 'visible');
  }

  setOpacity(id, opacity) {
    const layer = this.layers.get(id);
    layer.opacity = Math.max(0, Math.min(1, opacity));
    if (layer.slider) layer.slider.value = String(Math.round(layer.opacity * 100));
    this.#apply(layer);
    this.#emit(layer, 'opacity');
  }

  /** Point a row at the object it drives (an overlay that finished loading); applies the row's state to it. */
  setTarget(id, target) {
    const layer = this.layers.get(id);
    layer.target = target;
    this.#apply(layer);
  }

  setTitle(id, title) {
    const layer = this.layers.get(id);
    layer.title = title;
    layer.name.textContent = title;
    if (layer.slider) layer.slider.setAttribute('aria-label', `Opacity of ${title}`);
  }

  setDetail(id, detail) {
    const layer = this.layers.get(id);
    layer.detailElement.textContent = detail || '';
    layer.detailElement.hidden = !detail;
  }

  /** A status line under the row: state 'loading' | 'error' | null (none). */
  setStatus(id, state, message = '') {
    const layer = this.layers.get(id);
    if (!layer) return;
    layer.statusElement.hidden = !state;
    layer.statusElement.textContent = message;
    layer.statusElement.setAttribute('role', state === 'error' ? 'alert' : 'status');
    if (state) layer.row.dataset.status = state;
    else delete layer.row.dataset.status;
  }

  setLegend(id, legend) {
    const layer = this.layers.get(id);
    layer.legendElement.replaceChildren(...(legend ? [legend] : []));
    layer.legendElement.hidden = !legend;
  }

  /** listener(layer, what) after a row's visibility ('visible') or opacity ('opacity') changed. */
  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  #emit(layer, what) {
    for (const listener of this.listeners) listener(layer, what);
  }

  #groupElement(name) {
    if (this.groups.has(name)) return this.groups.get(name);
    if (!this.groupOrder.includes(name)) this.groupOrder.push(name);
    const list = h('ul', {class: 'layer-group-list'});
    const element = h('li', {class: 'layer-group', dataset: {group: name}},
      h('h3', {class: 'layer-group-title'}, name), list);
    const group = {element, list};
    this.groups.set(name, group);
    const rank = this.groupOrder.indexOf(name);
    const next = [...this.groups.entries()].filter(([other]) => this.groupOrder.indexOf(other) > rank)
      .sort((a, b) => this.groupOrder.indexOf(a[0]) - this.groupOrder.indexOf(b[0]))[0];
    if (next) this.list.insertBefore(element, next[1].element);
    else this.list.append(element);
    return group;
  }

  #insert(layer) {
    const {list} = this.#groupElement(layer.group);
    const next = [...list.children].map((row) => this.layers.get(row.dataset.layer))
      .find((other) => other && other !== layer && other.order > layer.order);
    if (next) list.insertBefore(layer.row, next.row);
    else list.append(layer.row);
  }

  // A hidden TiledImage is drawn at opacity 0, which (with preload off) also stops its tiles from loading.
  #apply(layer) {
    if (layer.tiledImage) layer.tiledImage.setOpacity(layer.visible ? layer.opacity : 0);
    if (layer.target) {
      layer.target.setOpacity(layer.opacity);
      layer.target.setVisible(layer.visible);
    }
    layer.row.classList.toggle('layer-hidden', !layer.visible);
    if (layer.value) layer.value.textContent = `${Math.round(layer.opacity * 100)} %`;
    if (layer.slider) layer.slider.disabled = !layer.visible;
  }
}
