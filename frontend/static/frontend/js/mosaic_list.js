// Mosaic list page: renders /api/mosaics/ and keeps job progress and statuses live while anything runs.

import {apiUrl, getJSON} from './api.js';
import {h, icon, replaceChildren} from './dom.js';
import {STATUS_LABELS, UM_SOURCE_LABELS, formatDate, formatMm, formatPx, formatUmPerPx} from './format.js';
import {Poller, mosaicIsActive, syncJobs} from './jobs.js';

// Rows per page: a day's worth of uploads fits, and a page of rows with their jobs stays a small poll.
const PAGE_SIZE = 25;

const root = document.getElementById('mosaic-list');
const tbody = document.getElementById('mosaic-rows');
const table = root.querySelector('table');
const empty = document.getElementById('mosaic-empty');
const pager = document.getElementById('mosaic-pager');
const count = document.getElementById('mosaic-count');
const banner = document.getElementById('live-banner');

let offset = Math.max(0, Number(new URLSearchParams(location.search).get('offset')) || 0);

function statusBadge(status) {
  return h('span', {class: `status status-${status}`}, STATUS_LABELS[status] || status);
}

function thumbnail(mosaic) {
  if (mosaic.thumbnail_url) {
    return h('img', {src: mosaic.thumbnail_url, alt: '', loading: 'lazy', width: 64, height: 64});
  }
  return h('span', {class: `thumb-placeholder thumb-${mosaic.status}`},
    icon(mosaic.status === 'failed' ? 'warning' : 'image', {size: 22}));
}

/** The parts of a row that only change when the row is rebuilt (everything but job progress). */
function signature(m) {
  return JSON.stringify([m.name, m.original_filename, m.width, m.height, m.um_per_px, m.um_per_px_source,
    m.status, m.failure_reason, m.thumbnail_url, m.uploaded_by, m.created_at]);
}

function renderRow(m) {
  const jobs = h('div', {class: 'jobs'});
  syncJobs(jobs, m.active_jobs || []);
  const row = h('tr', {class: `mosaic-row row-${m.status}`, dataset: {mosaicId: m.id, signature: signature(m)}},
    h('td', {class: 'col-thumb'}, h('a', {href: m.viewer_url, tabindex: -1, 'aria-hidden': 'true', class: 'thumb'},
      thumbnail(m))),
    h('td', {class: 'col-name'},
      h('a', {href: m.viewer_url, class: 'mosaic-name'}, m.name),
      h('div', {class: 'sub', title: 'Uploaded file'}, m.original_filename)),
    h('td', {class: 'col-size num'},
      h('div', {}, formatPx(m.width, m.height)),
      h('div', {class: 'sub'}, formatMm(m.width_mm, m.height_mm))),
    h('td', {class: 'col-um num'},
      h('div', {}, formatUmPerPx(m.um_per_px)),
      h('div', {class: 'sub'}, UM_SOURCE_LABELS[m.um_per_px_source] || m.um_per_px_source)),
    h('td', {class: 'col-status'},
      statusBadge(m.status),
      m.status === 'failed' && m.failure_reason ? h('p', {class: 'failure-reason'}, m.failure_reason) : null,
      jobs),
    h('td', {class: 'col-uploaded'},
      h('div', {}, formatDate(m.created_at)),
      m.uploaded_by ? h('div', {class: 'sub'}, `by ${m.uploaded_by}`) : null),
    h('td', {class: 'col-open'},
      h('a', {href: m.viewer_url, class: `btn btn-small ${m.status === 'ready' ? 'btn-secondary' : 'btn-quiet'}`},
        m.status === 'ready' ? 'Open' : 'Details')));
  return row;
}

/** Reconcile rows by mosaic id: rebuild changed rows, move job bars in place for the rest. */
function renderRows(mosaics) {
  const existing = new Map([...tbody.querySelectorAll('tr.mosaic-row')].map((tr) => [tr.dataset.mosaicId, tr]));
  const rows = mosaics.map((m) => {
    const tr = existing.get(String(m.id));
    if (tr && tr.dataset.signature === signature(m)) {
      syncJobs(tr.querySelector('.jobs'), m.active_jobs || []);
      return tr;
    }
    return renderRow(m);
  });
  replaceChildren(tbody, rows);
}

function renderPager(total) {
  const pageCount = Math.ceil(total / PAGE_SIZE);
  pager.hidden = pageCount <= 1;
  if (pager.hidden) return;
  const go = (to) => () => {
    offset = to;
    history.replaceState(null, '', to ? `?offset=${to}` : location.pathname);
    poller.poke();
  };
  replaceChildren(pager,
    h('button', {type: 'button', class: 'btn btn-quiet btn-small', disabled: offset === 0,
      onclick: go(Math.max(0, offset - PAGE_SIZE))}, '← Newer'),
    h('span', {class: 'muted'}, `${offset + 1}–${Math.min(total, offset + PAGE_SIZE)} of ${total}`),
    h('button', {type: 'button', class: 'btn btn-quiet btn-small', disabled: offset + PAGE_SIZE >= total,
      onclick: go(offset + PAGE_SIZE)}, 'Older →'));
}

function showBanner(text, kind = 'warning') {
  banner.hidden = !text;
  banner.className = `banner banner-${kind}`;
  banner.textContent = text || '';
}

async function refresh() {
  const data = await getJSON(apiUrl(`mosaics/?limit=${PAGE_SIZE}&offset=${offset}`));
  if (data.count > 0 && data.results.length === 0 && offset > 0) {
    offset = 0; // the page we were on is gone (mosaics deleted): show the first
    return true;
  }
  root.dataset.state = data.count ? 'list' : 'empty';
  table.hidden = data.count === 0;
  empty.hidden = data.count !== 0;
  count.textContent = data.count === 0 ? '' : data.count === 1 ? '1 mosaic' : `${data.count} mosaics`;
  renderRows(data.results);
  renderPager(data.count);
  return data.results.some(mosaicIsActive);
}

const poller = new Poller(refresh, {
  onLive: (live) => {
    root.dataset.live = live ? 'on' : 'off';
  },
  onError: (error) => {
    if (error.sessionEnded) showBanner('Your session ended. Reload the page to log in again.', 'error');
    else showBanner(`${error.message} Retrying…`);
  },
  onRecover: () => showBanner(''),
});

// Clicking anywhere on a row opens the viewer (the name stays the real, focusable link).
tbody.addEventListener('click', (event) => {
  if (event.target.closest('a, button')) return;
  const row = event.target.closest('tr.mosaic-row');
  if (row) row.querySelector('a.mosaic-name').click();
});

poller.poke();
// Idle lists refresh when the tab gets focus again (e.g. after uploading in another tab).
window.addEventListener('focus', () => poller.poke());
