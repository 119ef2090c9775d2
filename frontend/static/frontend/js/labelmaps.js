// Expert label maps in the pages: the checks the browser can make before sending one (file type, size) and the
// value mapping field's syntax. Shared by the Upload page (labels sent with a mosaic) and the viewer's label import
// (labels added to a mosaic later), so both accept and refuse the same things. The server checks everything again.

import {formatBytes} from './format.js';

// Class values a mapping may send file values to (0–5 classes, 255 unlabelled).
export const CLASS_VALUES = new Set([0, 1, 2, 3, 4, 5, 255]);

/** `lesion.tif` → `lesion`. */
export function stem(filename) {
  const dot = filename.lastIndexOf('.');
  return dot > 0 ? filename.slice(0, dot) : filename;
}

/** `lesion.TIF` → `.tif`; '' without one. */
export function extension(filename) {
  const dot = filename.lastIndexOf('.');
  return dot >= 0 ? filename.slice(dot).toLowerCase() : '';
}

/** The extensions of a file input's `accept` attribute (".png,.tif" → ['.png', '.tif']). */
export function acceptedExtensions(input) {
  return input.accept.split(',').map((ext) => ext.trim().toLowerCase()).filter(Boolean);
}

/** What is wrong with a label map the browser can already tell (type, empty, too large); null if nothing. */
export function precheckLabelFile(file, {accepted, maxBytes}) {
  if (!accepted.includes(extension(file.name))) {
    return `Label maps must be ${accepted.join(', ')}; ${file.name} is not.`;
  }
  if (file.size === 0) return `The label map ${file.name} is empty.`;
  if (file.size > maxBytes) {
    return `The label map is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`;
  }
  return null;
}

/**
 * Read a value mapping field: empty (the file's values are the classes) or `file value=class` pairs
 * ("1=2, 2=3, 0=255"; `:` works too, as does a JSON object).
 * Returns {mapping, message}: mapping is an object {"1": 2, …} or null for none; message says what is wrong ('' if
 * nothing), and then mapping is null.
 */
export function parseValueMapping(text) {
  const raw = String(text || '').trim();
  if (raw === '') return {mapping: null, message: ''};
  const example = 'Write file value=class pairs, e.g. 1=2, 2=3, 0=255 (classes 0–5, 255 unlabelled), '
    + 'or leave the field empty when the label values are the classes.';
  let pairs = null;
  if (raw.startsWith('{')) {
    try {
      const parsed = JSON.parse(raw);
      pairs = parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? Object.entries(parsed) : null;
    } catch {
      pairs = null;
    }
  } else {
    pairs = raw.split(/[,;\s]+/).filter(Boolean).map((pair) => pair.split(/[=:]/));
  }
  const integer = (value) => /^\d+$/.test(String(value).trim());
  if (!pairs || !pairs.length || pairs.some((pair) => pair.length !== 2 || !integer(pair[0]) || !integer(pair[1]))) {
    return {mapping: null, message: `The mapping “${raw}” cannot be read. ${example}`};
  }
  const mapping = Object.fromEntries(pairs.map(([from, to]) => [String(Number(from)), Number(to)]));
  const wrong = Object.values(mapping).filter((to) => !CLASS_VALUES.has(to));
  if (wrong.length) {
    return {mapping: null, message: `The mapping sends values to ${wrong.join(', ')}; classes are 0–5, and 255 is unlabelled.`};
  }
  return {mapping, message: ''};
}

/** Show (or clear) a field's error under it and mark the input invalid for assistive technology. */
export function showFieldError(input, errorElement, message) {
  errorElement.hidden = !message;
  errorElement.textContent = message || '';
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
}
