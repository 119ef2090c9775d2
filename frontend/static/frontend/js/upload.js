// Upload page: queue files (picker or drag and drop), send them one at a time with a progress bar,
// then follow each mosaic's ingest job until it is ready (or say clearly why not).
// A mosaic may carry an expert label map (row button, or dropped together as `name_labels.png`), sent with it
// and imported as its expert labels; a bad label map refuses that upload with the server's reason.

import {ApiError, apiUrl, getJSON, uploadWithProgress} from './api.js';
import {h, icon, replaceChildren} from './dom.js';
import {JOB_KIND_LABELS, formatBytes, formatPx, percent} from './format.js';
import {Poller} from './jobs.js';
import {acceptedExtensions, extension, parseValueMapping, precheckLabelFile, showFieldError, stem} from './labelmaps.js';

const form = document.getElementById('upload-form');
const dropzone = document.getElementById('dropzone');
const fileInput = document.getElementById('file-input');
const umInput = document.getElementById('um-input');
const umError = document.getElementById('um-error');
const labelsInput = document.getElementById('labels-input');
const mappingInput = document.getElementById('mapping-input');
const mappingError = document.getElementById('mapping-error');
const queueTable = document.getElementById('queue');
const queueRows = document.getElementById('queue-rows');
const uploadButton = document.getElementById('upload-button');
const clearButton = document.getElementById('clear-button');
const summary = document.getElementById('queue-summary');

const uploadUrl = form.dataset.apiUrl;
const maxBytes = Number(form.dataset.maxBytes);
const accepted = acceptedExtensions(fileInput);
const labelsAccepted = acceptedExtensions(labelsInput);
const maxLabelBytes = Number(form.dataset.maxLabelBytes);
const labelsSuffix = form.dataset.labelsSuffix;
const umMin = Number(umInput.min);
const umMax = Number(umInput.max);

const FINISHED = new Set(['ready', 'duplicate', 'rejected', 'failed', 'error']);
const items = [];
let nextId = 1;
let busy = false;
let labelsFor = null; // the item whose "Add labels" button opened the label file picker

/** Checks the browser can do before sending (the server checks the content again). */
function precheck(file) {
  if (!accepted.includes(extension(file.name))) {
    return `File type ${extension(file.name) || '(none)'} is not accepted. Accepted: ${accepted.join(', ')}.`;
  }
  if (file.size === 0) return 'The file is empty.';
  if (file.size > maxBytes) {
    return `The file is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)} per file.`;
  }
  return null;
}

/** Checks of a label map the browser can do before sending (the server reads and checks it again). */
function precheckLabels(file) {
  return precheckLabelFile(file, {accepted: labelsAccepted, maxBytes: maxLabelBytes});
}

/** `lesion_labels.png` → `lesion` (the mosaic it goes with); null for other names. */
function labelsOwner(file) {
  const base = stem(file.name);
  if (!base.endsWith(labelsSuffix) || !labelsAccepted.includes(extension(file.name))) return null;
  return base.slice(0, -labelsSuffix.length) || null;
}

function setLabels(item, file) {
  item.labels = file;
  const problem = file ? precheckLabels(file) : null;
  item.labelsError = problem || '';
  updateItem(item);
  refreshControls();
}

function addFiles(files) {
  const mosaics = [];
  const labelMaps = [];
  for (const file of files) (labelsOwner(file) === null ? mosaics : labelMaps).push(file);
  for (const file of mosaics) {
    const item = {id: nextId++, file, name: stem(file.name), phase: 'pending', loaded: 0, mosaic: null, error: '',
      labels: null, labelsError: '', labelsResult: null};
    const problem = precheck(file);
    if (problem) {
      item.phase = 'rejected';
      item.error = problem;
    }
    items.push(item);
    queueRows.append(renderItem(item));
  }
  // A label map goes to the pending mosaic of the same name (dropped with it now, or queued before).
  for (const file of labelMaps) {
    const owner = labelsOwner(file);
    const item = items.find((candidate) => candidate.phase === 'pending' && stem(candidate.file.name) === owner);
    if (item) {
      setLabels(item, file);
    } else {
      const orphan = {id: nextId++, file, name: stem(file.name), phase: 'rejected', loaded: 0, mosaic: null,
        error: `${file.name} is a label map, and no mosaic named ${owner}.* is waiting in the list. Add the mosaic `
          + 'first (or together with it), or use Add labels on its row.',
        labels: null, labelsError: '', labelsResult: null};
      items.push(orphan);
      queueRows.append(renderItem(orphan));
    }
  }
  refreshControls();
}

function renderLabels(item) {
  const cell = item.row.querySelector('.col-labels');
  const editable = item.phase === 'pending';
  const content = [];
  if (item.labels) {
    content.push(h('div', {class: 'item-labels'},
      h('span', {class: 'labels-name'}, item.labels.name),
      editable && h('button', {type: 'button', class: 'btn btn-quiet btn-small btn-icon', title: 'Remove the label map',
        'aria-label': `Remove label map ${item.labels.name}`, onclick: () => setLabels(item, null)},
      icon('close', {size: 12}))));
    if (item.labelsError) content.push(h('p', {class: 'item-error'}, item.labelsError));
  } else if (editable) {
    content.push(h('button', {type: 'button', class: 'btn btn-quiet btn-small', 'aria-label':
      `Add labels to ${item.file.name}`, onclick: () => {
      labelsFor = item;
      labelsInput.click();
    }}, 'Add labels'));
  } else {
    content.push(h('span', {class: 'muted'}, '—'));
  }
  replaceChildren(cell, content);
}

function renderItem(item) {
  const nameInput = h('input', {type: 'text', value: item.name, maxlength: 255, 'aria-label': `Name for ${item.file.name}`,
    oninput: (event) => { item.name = event.target.value; }});
  const row = h('tr', {class: 'item', dataset: {itemId: item.id}},
    h('td', {class: 'col-file'}, h('div', {class: 'item-file'}, item.file.name)),
    h('td', {class: 'col-name'}, nameInput),
    h('td', {class: 'col-labels'}),
    h('td', {class: 'col-size num'}, formatBytes(item.file.size)),
    h('td', {class: 'col-progress'},
      h('div', {class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
        'aria-label': `Progress of ${item.file.name}`}, h('div', {class: 'bar-fill'})),
      h('div', {class: 'item-state', 'aria-live': 'polite'})),
    h('td', {class: 'col-remove'},
      h('button', {type: 'button', class: 'btn btn-quiet btn-small btn-icon', title: 'Remove from the list',
        'aria-label': `Remove ${item.file.name}`, onclick: () => removeItem(item)}, icon('close', {size: 14}))));
  item.row = row;
  updateItem(item);
  return row;
}

function removeItem(item) {
  items.splice(items.indexOf(item), 1);
  item.row.remove();
  refreshControls();
}

function viewerLink(mosaic, text) {
  return h('a', {href: mosaic.viewer_url}, text);
}

function ingestJob(mosaic) {
  return (mosaic.active_jobs || []).find((job) => job.kind === 'ingest') || (mosaic.active_jobs || [])[0] || null;
}

/** Draw an item's bar and state line from its phase. */
function updateItem(item) {
  const row = item.row;
  row.dataset.phase = item.phase;
  const bar = row.querySelector('.bar');
  const fill = row.querySelector('.bar-fill');
  const state = row.querySelector('.item-state');
  const nameInput = row.querySelector('.col-name input');
  nameInput.disabled = item.phase !== 'pending';
  row.querySelector('.col-remove button').hidden = item.phase !== 'pending' && !FINISHED.has(item.phase);

  renderLabels(item);
  let fraction = null; // null: indeterminate
  let text = [];
  const labelsNote = labelsText(item);
  bar.classList.remove('bar-done', 'bar-error');
  switch (item.phase) {
    case 'pending':
      fraction = 0;
      text = ['Ready to upload'];
      break;
    case 'uploading': {
      fraction = item.loaded / item.file.size;
      text = [`Uploading · ${percent(fraction)} % · ${formatBytes(item.loaded)} of ${formatBytes(item.file.size)}`];
      break;
    }
    case 'checking':
      text = ['Checking the file…'];
      break;
    case 'ingesting': {
      const job = ingestJob(item.mosaic);
      if (job && job.state === 'running') {
        fraction = job.progress;
        text = [`${JOB_KIND_LABELS[job.kind] || job.kind} · ${job.message || 'Running'} · ${percent(job.progress)} %`];
      } else {
        text = [job && job.message ? job.message : 'Queued · waiting for a worker to build the pyramid'];
      }
      text.push(labelsNote);
      break;
    }
    case 'ready':
      fraction = 1;
      bar.classList.add('bar-done');
      text = [`Ready · ${formatPx(item.mosaic.width, item.mosaic.height)} · `, viewerLink(item.mosaic, 'Open in viewer'),
        labelsNote];
      break;
    case 'duplicate':
      fraction = 1;
      bar.classList.add('bar-done');
      text = [`Already uploaded as “${item.mosaic.name}” · `, viewerLink(item.mosaic, 'Open it'), labelsNote];
      break;
    case 'failed':
      fraction = 1;
      bar.classList.add('bar-error');
      text = ['Ingest failed: ', item.error || 'no reason given'];
      break;
    case 'rejected':
      fraction = 0;
      bar.classList.add('bar-error');
      text = ['Not accepted: ', item.error];
      break;
    case 'error':
      fraction = 0;
      bar.classList.add('bar-error');
      text = [item.error, ' ', h('button', {type: 'button', class: 'btn btn-small btn-quiet',
        onclick: () => { item.phase = 'pending'; item.error = ''; updateItem(item); refreshControls(); }}, 'Try again')];
      break;
    default:
      text = [item.phase];
  }
  bar.classList.toggle('bar-indeterminate', fraction === null);
  if (fraction === null) {
    fill.style.width = '';
    bar.removeAttribute('aria-valuenow');
  } else {
    fill.style.width = `${percent(fraction)}%`;
    bar.setAttribute('aria-valuenow', String(percent(fraction)));
  }
  replaceChildren(state, text);
}

/** What happened to the item's label map, once the server answered (empty before, or without one). */
function labelsText(item) {
  const result = item.labelsResult;
  if (!result) return '';
  const px = `${result.labelled_pixels.toLocaleString('en')} px labelled`;
  return result.created ? ` · Expert labels imported (${px})` : ` · These expert labels were already there (${px})`;
}

/** Pending items whose label map the browser already refuses: fix or remove the map before uploading. */
function labelProblems() {
  return items.filter((item) => item.phase === 'pending' && item.labelsError);
}

function refreshControls() {
  queueTable.hidden = items.length === 0;
  const pending = items.filter((item) => item.phase === 'pending').length;
  uploadButton.disabled = busy || pending === 0 || labelProblems().length > 0;
  uploadButton.textContent = busy ? 'Uploading…' : pending > 1 ? `Upload ${pending} files` : 'Upload';
  clearButton.hidden = !items.some((item) => FINISHED.has(item.phase));
  const counts = {};
  for (const item of items) counts[item.phase] = (counts[item.phase] || 0) + 1;
  const parts = [];
  if (counts.ready) parts.push(`${counts.ready} ready`);
  if (counts.ingesting) parts.push(`${counts.ingesting} ingesting`);
  if (counts.duplicate) parts.push(`${counts.duplicate} already there`);
  const problems = (counts.rejected || 0) + (counts.failed || 0) + (counts.error || 0);
  if (problems) parts.push(`${problems} with problems`);
  summary.textContent = parts.join(' · ');
}

/** The µm/px field: empty (use the file's tags) or a number in the allowed range. Returns [ok, value]. */
function readUmPerPx() {
  const raw = umInput.value.trim();
  let message = '';
  let value = null;
  if (raw !== '' || umInput.validity.badInput) {
    value = Number(raw);
    if (umInput.validity.badInput || !Number.isFinite(value) || value < umMin || value > umMax) {
      message = `Enter a pixel size between ${umMin} and ${umMax} µm/px, or leave the field empty.`;
    }
  }
  umError.hidden = !message;
  umError.textContent = message;
  umInput.setAttribute('aria-invalid', message ? 'true' : 'false');
  return [!message, value];
}

/**
 * The mapping field: empty (label values are the classes) or `file value=class` pairs (labelmaps.js has the syntax).
 * Returns [ok, mapping or null]; only checked when a label map is queued.
 */
function readMapping() {
  const needed = items.some((item) => item.phase === 'pending' && item.labels);
  const {mapping, message} = needed ? parseValueMapping(mappingInput.value) : {mapping: null, message: ''};
  showFieldError(mappingInput, mappingError, message);
  return [!message, mapping];
}

function settle(item, mosaic) {
  item.mosaic = mosaic;
  if (mosaic.status === 'ready') item.phase = 'ready';
  else if (mosaic.status === 'failed') {
    item.phase = 'failed';
    item.error = mosaic.failure_reason;
  } else item.phase = 'ingesting';
}

async function uploadOne(item, umPerPx, mapping) {
  const data = new FormData();
  data.append('file', item.file, item.file.name);
  data.append('name', item.name.trim());
  if (umPerPx !== null) data.append('um_per_px', String(umPerPx));
  if (item.labels) {
    data.append('labels', item.labels, item.labels.name);
    if (mapping) data.append('value_mapping', JSON.stringify(mapping));
  }
  item.phase = 'uploading';
  item.loaded = 0;
  updateItem(item);
  try {
    const {status, data: mosaic} = await uploadWithProgress(uploadUrl, data, {
      onProgress: (loaded) => {
        item.loaded = loaded;
        updateItem(item);
      },
      onSent: () => {
        item.phase = 'checking';
        updateItem(item);
      },
    });
    item.labelsResult = mosaic.labels || null;
    if (status === 200) {
      item.mosaic = mosaic;
      item.phase = 'duplicate';
    } else {
      settle(item, mosaic);
    }
  } catch (error) {
    const labelsReason = error instanceof ApiError && error.data && error.data.labels;
    item.error = labelsReason ? `label map ${item.labels.name}: ${[].concat(labelsReason).join(' ')}` : error.message;
    item.phase = error instanceof ApiError && error.status >= 400 && error.status < 500 ? 'rejected' : 'error';
  }
  updateItem(item);
  refreshControls();
  if (item.phase === 'ingesting') ingestPoller.poke();
}

async function uploadAll() {
  const [ok, umPerPx] = readUmPerPx();
  if (!ok) {
    umInput.focus();
    return;
  }
  const [mappingOk, mapping] = readMapping();
  if (!mappingOk) {
    mappingInput.focus();
    return;
  }
  busy = true;
  refreshControls();
  try {
    let item;
    while ((item = items.find((candidate) => candidate.phase === 'pending'))) {
      await uploadOne(item, umPerPx, mapping);
    }
  } finally {
    busy = false;
    refreshControls();
  }
}

const ingestPoller = new Poller(async () => {
  const following = items.filter((item) => item.phase === 'ingesting');
  await Promise.all(following.map(async (item) => {
    const mosaic = await getJSON(apiUrl(`mosaics/${item.mosaic.id}/`));
    settle(item, mosaic);
    updateItem(item);
  }));
  refreshControls();
  return items.some((item) => item.phase === 'ingesting');
}, {
  onError: (error) => {
    summary.textContent = `${error.message} Retrying…`;
  },
});

// ---- wiring ----------------------------------------------------------------------------------------
dropzone.addEventListener('click', () => fileInput.click());
dropzone.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' || event.key === ' ') {
    event.preventDefault();
    fileInput.click();
  }
});
fileInput.addEventListener('change', () => {
  addFiles([...fileInput.files]);
  fileInput.value = '';
});
for (const type of ['dragenter', 'dragover']) {
  dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add('dragging');
  });
}
for (const type of ['dragleave', 'drop']) {
  dropzone.addEventListener(type, () => dropzone.classList.remove('dragging'));
}
dropzone.addEventListener('drop', (event) => {
  event.preventDefault();
  addFiles([...event.dataTransfer.files]);
});
// A file dropped next to the zone must not make the browser navigate away from the page.
window.addEventListener('dragover', (event) => event.preventDefault());
window.addEventListener('drop', (event) => event.preventDefault());

// Checked when the field is left; an error shown goes away while the value is corrected (not on leaving the field,
// which would move the Upload button under a click that is on its way).
for (const [input, error, check] of [[umInput, umError, readUmPerPx], [mappingInput, mappingError, readMapping]]) {
  input.addEventListener('change', check);
  input.addEventListener('input', () => {
    if (!error.hidden) check();
  });
}
labelsInput.addEventListener('change', () => {
  const file = labelsInput.files[0];
  labelsInput.value = '';
  if (file && labelsFor && labelsFor.phase === 'pending') setLabels(labelsFor, file);
  labelsFor = null;
});
form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (!busy) uploadAll();
});
clearButton.addEventListener('click', () => {
  for (const item of items.filter((candidate) => FINISHED.has(candidate.phase))) removeItem(item);
});
window.addEventListener('beforeunload', (event) => {
  if (items.some((item) => item.phase === 'uploading' || item.phase === 'checking')) event.preventDefault();
});
