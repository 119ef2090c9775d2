// The viewer's toolbar: groups of icon buttons. Later tools (review, brush, polygon) add their buttons here.

import {h, icon} from './dom.js';

export class Toolbar {
  constructor(element) {
    this.element = element;
    this.buttons = new Map();
    this.groups = new Map();
  }

  #group(name) {
    if (!this.groups.has(name)) {
      const el = h('div', {class: 'toolbar-group', role: 'group', 'aria-label': name, dataset: {group: name}});
      this.element.append(el);
      this.groups.set(name, el);
    }
    return this.groups.get(name);
  }

  /**
   * Add a button. id: unique key; label: accessible name and tooltip; icon: name from dom.js;
   * text: a short text instead of the icon (e.g. "1:1"); shortcut: shown in the tooltip;
   * toggle: the button has a pressed state (setPressed).
   */
  add({id, label, icon: iconName = null, text = null, shortcut = null, group = 'View', toggle = false, onClick}) {
    if (this.buttons.has(id)) throw new Error(`Toolbar button ${id} exists already`);
    const title = shortcut ? `${label} (${shortcut})` : label;
    const button = h('button', {type: 'button', class: 'tool', title, 'aria-label': label, dataset: {tool: id},
      'aria-pressed': toggle ? 'false' : null, onclick: (event) => onClick(event)},
    text ? h('span', {class: 'tool-text'}, text) : icon(iconName));
    this.#group(group).append(button);
    this.buttons.set(id, button);
    return button;
  }

  get(id) {
    return this.buttons.get(id);
  }

  setPressed(id, pressed) {
    const button = this.buttons.get(id);
    if (button) button.setAttribute('aria-pressed', pressed ? 'true' : 'false');
  }

  setIcon(id, iconName) {
    const button = this.buttons.get(id);
    if (button) button.replaceChildren(icon(iconName));
  }

  setLabel(id, label, shortcut = null) {
    const button = this.buttons.get(id);
    if (!button) return;
    button.setAttribute('aria-label', label);
    button.title = shortcut ? `${label} (${shortcut})` : label;
  }
}
