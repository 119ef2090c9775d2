// Keyboard shortcuts of a page, in one registry, so the help overlay lists exactly what is bound.
// Later tools (brush, review) register their keys here instead of adding their own listeners.

/** True when a key press belongs to a text field, not to the page. */
function isTyping(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const field = target.closest('input, textarea, select');
  if (!field) return false;
  // Range sliders and checkboxes do not take text: let shortcuts through (arrows still move a focused slider).
  return !(field.tagName === 'INPUT' && ['checkbox', 'radio', 'button', 'range'].includes(field.type));
}

export class Shortcuts {
  constructor(target = document) {
    this.items = [];
    this.enabled = true;
    target.addEventListener('keydown', (event) => this.#onKey(event));
  }

  /**
   * Bind keys. keys: values of KeyboardEvent.key ('+', 'ArrowLeft', '?'); label: how help shows them;
   * group: heading in the help; run(event): the action. `repeat: true` lets a held key repeat.
   */
  add({keys, label = null, description, group = 'General', run, repeat = false}) {
    const taken = this.items.flatMap((item) => item.keys).filter((key) => keys.includes(key));
    if (taken.length) throw new Error(`Shortcut keys already bound: ${taken.join(', ')}`);
    const item = {keys, label: label || keys.join(' '), description, group, run, repeat};
    this.items.push(item);
    return item;
  }

  remove(item) {
    this.items = this.items.filter((candidate) => candidate !== item);
  }

  /** [{group, items: [{label, description}]}]: the groups named in `order` first, the rest as registered. */
  groups(order = []) {
    const groups = new Map(order.map((name) => [name, []]));
    for (const item of this.items) {
      if (!groups.has(item.group)) groups.set(item.group, []);
      groups.get(item.group).push(item);
    }
    return [...groups].filter(([, items]) => items.length).map(([group, items]) => ({group, items}));
  }

  #onKey(event) {
    if (!this.enabled || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target)) return;
    const item = this.items.find((candidate) => candidate.keys.includes(event.key));
    if (!item) return;
    // Arrows on a focused slider adjust the slider, not the image.
    if (event.key.startsWith('Arrow') && event.target instanceof HTMLInputElement && event.target.type === 'range') return;
    event.preventDefault();
    if (event.repeat && !item.repeat) return;
    item.run(event);
  }
}
