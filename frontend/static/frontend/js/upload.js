// Upload page: queue files (picker or drag and drop), send them one at a time with a progress bar,
// then follow each mosaic's ingest job until it is ready (or say clearly why not).

import {ApiError, apiUrl, getJSON, uploadWithProgress} from './api.js';
import {h, icon, replaceChildren} from './dom.js';
import {JOB_KIND_LABELS, formatBytes, formatPx, percent} from './format.js';
import {Poller} from './jobs.js';

const form = document.getElementById('upload-form');
const dropzone = document.getElementById('dropzone');
const fileInput = document.getElementById('file-input');
const umInput = document.getElementById('um-input');
const umError = document.getElementById('um-error');
const queueTable = document.getElementById('queue');
const queueRows = document.getElementById('queue-rows');
const uploadButton = document.getElementById('upload-button');
const clearButton = document.getElementById('clear-button');
const summary = document.getElementById('queue-summary');

const uploadUrl = form.dataset.apiUrl;
const maxBytes = Number(form.dataset.maxBytes);
const accepted = fileInput.accept.split(',').map((ext) => ext.trim().toLowerCase());
const umMin = Number(umInput.min);
const umMax = Number(umInput.max);

const FINISHED = new Set(['ready', 'duplicate', 'rejected', 'failed', 'error']);
const items = [];
let nextId = 1;
let busy = false;

function stem(filename) {
  const dot = filename.lastIndexOf('.');
  return dot > 0 ? filename.slice(0, dot) : filename;
}

function extension(filename) {
  const dot = filename.lastIndexOf('.');
  return dot >= 0 ? filename.slice(dot).toLowerCase() : '';
}

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

function addFiles(files) {
  for (const file of files) {
    const item = {id: nextId++, file, name: stem(file.name), phase: 'pending', loaded: 0, mosaic: null, error: ''};
    const problem = precheck(file);
    if (problem) {
      item.phase = 'rejected';
      item.error = problem;
    }
    items.push(item);
    queueRows.append(renderItem(item));
  }
  refreshControls();
}

function renderItem(item) {
  const nameInput = h('input', {type: 'text', value: item.name, maxlength: 255, 'aria-label': `Name for ${item.file.name}`,
    oninput: (event) => { item.name = event.target.value; }});
  const row = h('tr', {class: 'item', dataset: {itemId: item.id}},
    h('td', {class: 'col-file'}, h('div', {class: 'item-file'}, item.file.name)),
    h('td', {class: 'col-name'}, nameInput),
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

  let fraction = null; // null: indeterminate
  let text = [];
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
      break;
    }
    case 'ready':
      fraction = 1;
      bar.classList.add('bar-done');
      text = [`Ready · ${formatPx(item.mosaic.width, item.mosaic.height)} · `, viewerLink(item.mosaic, 'Open in viewer')];
      break;
    case 'duplicate':
      fraction = 1;
      bar.classList.add('bar-done');
      text = [`Already uploaded as “${item.mosaic.name}” · `, viewerLink(item.mosaic, 'Open it')];
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

function refreshControls() {
  queueTable.hidden = items.length === 0;
  const pending = items.filter((item) => item.phase === 'pending').length;
  uploadButton.disabled = busy || pending === 0;
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

function settle(item, mosaic) {
  item.mosaic = mosaic;
  if (mosaic.status === 'ready') item.phase = 'ready';
  else if (mosaic.status === 'failed') {
    item.phase = 'failed';
    item.error = mosaic.failure_reason;
  } else item.phase = 'ingesting';
}

async function uploadOne(item, umPerPx) {
  const data = new FormData();
  data.append('file', item.file, item.file.name);
  data.append('name', item.name.trim());
  if (umPerPx !== null) data.append('um_per_px', String(umPerPx));
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
    if (status === 200) {
      item.mosaic = mosaic;
      item.phase = 'duplicate';
    } else {
      settle(item, mosaic);
    }
  } catch (error) {
    item.error = error.message;
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
  busy = true;
  refreshControls();
  try {
    let item;
    while ((item = items.find((candidate) => candidate.phase === 'pending'))) {
      await uploadOne(item, umPerPx);
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

umInput.addEventListener('change', readUmPerPx);
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
