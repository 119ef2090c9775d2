// Tiny DOM helpers. Every text goes in through text nodes (never innerHTML), so names typed by users
// cannot inject markup.

/**
 * Create an element: h('a', {href: '/x', class: 'link', dataset: {id: 3}, onclick: fn}, 'text', child, ...).
 * Attributes that are null, undefined or false are left out; true gives an empty attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `el` with `children`. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An inline SVG icon from the sprite-free set below (stroke icons, 20 px grid). */
export function icon(name, {size = 18, label = null} = {}) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 20 20');
  svg.setAttribute('width', size);
  svg.setAttribute('height', size);
  svg.setAttribute('class', `icon icon-${name}`);
  if (label) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
  } else {
    svg.setAttribute('aria-hidden', 'true');
  }
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || ICONS.dot);
  svg.append(path);
  return svg;
}

const ICONS = {
  plus: 'M10 4v12M4 10h12',
  minus: 'M4 10h12',
  home: 'M3 9.5 10 4l7 5.5M5.5 8v8h9V8',
  fullscreen: 'M3 8V3h5M12 3h5v5M17 12v5h-5M8 17H3v-5',
  exitFullscreen: 'M8 3v5H3M12 3v5h5M17 12h-5v5M3 12h5v5',
  panel: 'M3 4h14v12H3zM12.5 4v12',
  help: 'M7.5 7.5a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .9-1 1.6v.6M10 14.6v.4',
  close: 'M5 5l10 10M15 5 5 15',
  upload: 'M10 13V3.5M6 7.5l4-4 4 4M3.5 12.5v4h13v-4',
  image: 'M3 4h14v12H3zM3 13l4-4 3 3 2-2 5 5',
  eye: 'M2 10s3-5.5 8-5.5S18 10 18 10s-3 5.5-8 5.5S2 10 2 10zM10 12.5a2.5 2.5 0 1 0 0-5 2.5 2.5 0 0 0 0 5z',
  warning: 'M10 3 2 17h16L10 3zM10 8.5v4M10 14.5v.5',
  check: 'M4 10.5 8 14.5 16 6',
  dot: 'M10 9.5v1',
};
