// The viewer's layers panel: one row per tiled image (the mosaic now; prediction, expert labels and
// uncertainty later), each with visibility, opacity and an optional legend below it.

import {h} from './dom.js';

export class LayersPanel {
  constructor(listElement) {
    this.list = listElement;
    this.layers = new Map();
  }

  /**
   * Add a row for an OpenSeadragon TiledImage.
   * @param {object} options
   * @param {string} options.id unique key ('image', 'prediction', 'expert', 'uncertainty', …)
   * @param {string} options.title shown name
   * @param {object} options.tiledImage OpenSeadragon.TiledImage
   * @param {number} [options.opacity=1] 0..1
   * @param {boolean} [options.visible=true]
   * @param {boolean} [options.adjustable=true] show the opacity slider
   * @param {Node} [options.legend] shown under the row (class colours, areas, …)
   */
  add({id, title, tiledImage, opacity = 1, visible = true, adjustable = true, legend = null}) {
    if (this.layers.has(id)) throw new Error(`Layer ${id} exists already`);
    const layer = {id, title, tiledImage, opacity, visible};
    const checkbox = h('input', {type: 'checkbox', checked: visible, id: `layer-${id}-visible`,
      onchange: (event) => this.setVisible(id, event.target.checked)});
    const slider = adjustable ? h('input', {type: 'range', min: 0, max: 100, step: 1, value: Math.round(opacity * 100),
      class: 'opacity', 'aria-label': `Opacity of ${title}`,
      oninput: (event) => this.setOpacity(id, Number(event.target.value) / 100)}) : null;
    const value = adjustable ? h('output', {class: 'opacity-value'},
      `${Math.round(opacity * 100)} %`) : null;
    layer.row = h('li', {class: 'layer', dataset: {layer: id}},
      h('div', {class: 'layer-head'},
        h('label', {class: 'layer-title', for: `layer-${id}-visible`}, checkbox, h('span', {}, title)),
        value),
      slider,
      legend ? h('div', {class: 'layer-legend'}, legend) : null);
    layer.checkbox = checkbox;
    layer.slider = slider;
    layer.value = value;
    this.layers.set(id, layer);
    this.list.append(layer.row);
    this.#apply(layer);
    return layer;
  }

  get(id) {
    return this.layers.get(id);
  }

  remove(id) {
    const layer = this.layers.get(id);
    if (!layer) return;
    layer.row.remove();
    this.layers.delete(id);
  }

  setVisible(id, visible) {
    const layer = this.layers.get(id);
    layer.visible = visible;
    layer.checkbox.checked = visible;
    this.#apply(layer);
  }

  setOpacity(id, opacity) {
    const layer = this.layers.get(id);
    layer.opacity = Math.max(0, Math.min(1, opacity));
    if (layer.slider) layer.slider.value = String(Math.round(layer.opacity * 100));
    this.#apply(layer);
  }

  // A hidden layer is drawn at opacity 0, which (with preload off) also stops its tiles from loading.
  #apply(layer) {
    layer.tiledImage.setOpacity(layer.visible ? layer.opacity : 0);
    layer.row.classList.toggle('layer-hidden', !layer.visible);
    if (layer.value) layer.value.textContent = `${Math.round(layer.opacity * 100)} %`;
    if (layer.slider) layer.slider.disabled = !layer.visible;
  }
}
