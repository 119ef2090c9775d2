// Agreement page of a mosaic: one review against the model (overall figures, the per-class table of the paper's
// Table 1, the confusion-matrix plot), every model version against the pooled expert layers (with the change from
// the version it was fine-tuned from, each layer's own figures and the pooled plot), and expert against expert.
// Everything comes from the API: /api/reviews/?mosaic=, /api/reviews/{id}/agreement/ (+ plot/),
// /api/mosaics/{id}/agreement/ (+ plot/?version=).

import {apiUrl, getJSON} from './api.js';
import {h, replaceChildren} from './dom.js';
import {formatDate, formatInt} from './format.js';
import {deltaKappa, deltaPoints, isNum, kappa, pct, pixelsToMm2} from './figures.js';

// Reviews listed in the picker: the newest first, as many as an expert could have made on one mosaic and more.
const REVIEWS_LIMIT = 200;
const SOURCE_LABELS = {import: 'Imported', review: 'Review', trainee: 'Trainee'};
const STATE_LABELS = {in_progress: 'In progress', submitted: 'Submitted'};

const page = document.getElementById('agreement-page');
const mosaicId = Number(page.dataset.mosaicId);
const username = page.dataset.username;
const isAdmin = page.dataset.isAdmin === 'true';
const umPerPx = Number(page.dataset.workingUmPerPx);
const $ = (id) => document.getElementById(id);

const state = {classes: [], reviews: [], versions: [], selectedVersion: null};

function banner(message) {
  const el = $('agreement-banner');
  el.hidden = !message;
  el.textContent = message || '';
}

function cell(text, {num = true, title = null, cls = null} = {}) {
  return h('td', {class: [num ? 'num' : null, cls].filter(Boolean).join(' ') || null, title}, text);
}

/** "▲ 3.4 pp" / "▼ 1.2 pp" beside a figure, coloured by its sign. */
function change(text, value) {
  if (!text) return null;
  const cls = !isNum(value) || Math.abs(value) < 5e-4 ? 'delta delta-flat' : (value > 0 ? 'delta delta-up' : 'delta delta-down');
  return h('span', {class: cls, title: 'Change from the parent version'}, text);
}

function layerName(info) {
  const who = info.author ? ` · ${info.author}` : '';
  const what = info.source === 'review' ? `Review #${info.review}` : (SOURCE_LABELS[info.source] || info.source);
  const state_ = info.review_state ? ` (${(STATE_LABELS[info.review_state] || info.review_state).toLowerCase()})` : '';
  return `${what}${who}${state_}`;
}

// ---- one review -------------------------------------------------------------------------------------------------
function figure(value, label, note = null) {
  return h('div', {class: 'figure'}, h('div', {class: 'figure-value num'}, value), h('div', {class: 'figure-label'}, label),
    note ? h('div', {class: 'figure-note'}, note) : null);
}

function classTable(report) {
  const cm = report.confusion || [];
  const rows = state.classes.map((item) => {
    const expert = (cm[item.value] || []).reduce((a, b) => a + b, 0);
    const model = cm.reduce((sum, row) => sum + (row[item.value] || 0), 0);
    return h('tr', {dataset: {key: item.key}},
      h('th', {scope: 'row'}, h('span', {class: 'swatch', style: {background: item.colour}}), ' ', item.name),
      cell(pct(report.sensitivity[item.key])), cell(pct(report.specificity[item.key])),
      cell(pct(report.dice[item.key])), cell(pct(report.precision[item.key])),
      cell(formatInt(expert), {cls: 'muted'}), cell(formatInt(model), {cls: 'muted'}));
  });
  return h('table', {class: 'table class-figures'},
    h('thead', {}, h('tr', {}, ['Class', 'Sensitivity', 'Specificity', 'Dice', 'Precision', 'Expert px', 'Model px']
      .map((text, i) => h('th', {scope: 'col', class: i ? 'num' : null}, text)))),
    h('tbody', {}, rows));
}

async function showReview(review) {
  const sub = $('review-sub');
  sub.textContent = `${review.expert} · ${STATE_LABELS[review.state] || review.state} · against `
    + `${review.model_name ? `model ${review.model_name} (v${review.model_version})` : 'no prediction'} · `
    + `${formatInt(review.labelled_pixels)} px labelled (${pixelsToMm2(review.labelled_pixels, umPerPx)}) · `
    + `updated ${formatDate(review.updated_at)}`;
  $('review-select').value = String(review.id);
  const body = $('review-body');
  const empty = $('review-empty');
  const data = await getJSON(apiUrl(`reviews/${review.id}/agreement/`));
  const report = data.report;
  if (!report || !report.labelled_pixels) {
    body.hidden = true;
    empty.hidden = false;
    empty.textContent = report ? 'This review has no labelled pixel yet: nothing to compare.'
      : 'This review has no model prediction to compare with.';
    return;
  }
  empty.hidden = true;
  body.hidden = false;
  replaceChildren($('review-figures'),
    figure(pct(report.accuracy), 'pixel agreement'),
    figure(kappa(report.kappa), 'Cohen’s κ'),
    figure(pct(report.mean_dice), 'mean Dice'),
    figure(formatInt(report.labelled_pixels), 'pixels compared', pixelsToMm2(report.labelled_pixels, umPerPx)));
  replaceChildren($('class-table'), classTable(report));
  $('review-plot').src = apiUrl(`reviews/${review.id}/agreement/plot/?r=${review.revision}`);
  const url = new URL(location.href);
  url.searchParams.set('review', review.id);
  history.replaceState(null, '', url);
}

function setupReviews(reviews) {
  state.reviews = reviews;
  const picker = $('review-picker');
  const select = $('review-select');
  const empty = $('review-empty');
  if (!reviews.length) {
    picker.hidden = true;
    empty.hidden = false;
    empty.textContent = isAdmin ? 'Nobody has reviewed this mosaic yet.'
      : 'You have not reviewed this mosaic yet. Start a review in the viewer; its figures appear here.';
    return null;
  }
  replaceChildren(select, reviews.map((r) => h('option', {value: r.id},
    `#${r.id} · ${r.expert} · ${STATE_LABELS[r.state] || r.state}`)));
  picker.hidden = reviews.length < 2;
  select.onchange = () => showReview(reviews.find((r) => String(r.id) === select.value)).catch((e) => banner(e.message));
  const wanted = Number(new URLSearchParams(location.search).get('review'));
  return reviews.find((r) => r.id === wanted)
    || reviews.find((r) => r.expert === username && r.state === 'in_progress')
    || reviews.find((r) => r.expert === username) || reviews[0];
}

// ---- model versions ---------------------------------------------------------------------------------------------
function showVersions(data) {
  state.versions = data.versions;
  const table = $('versions-table');
  $('versions-empty').hidden = data.versions.length > 0;
  table.hidden = data.versions.length === 0;
  replaceChildren($('version-rows'), data.versions.map((v) => {
    const d = v.delta_vs_parent;
    const r = v.report;
    const parent = data.versions.find((other) => other.model_version === v.parent);
    return h('tr', {dataset: {version: v.model_version}, class: 'version-row'},
      h('td', {},
        h('div', {class: 'version-name'}, v.name, ' ', h('span', {class: 'vtag'}, `v${v.model_version}`), ' ',
          h('span', {class: `status status-${v.status}`}, v.status)),
        h('div', {class: 'sub'}, parent ? `fine-tuned from ${parent.name} (v${parent.model_version})`
          : (v.parent ? `parent v${v.parent} has no prediction here` : 'no parent'))),
      h('td', {class: 'num'}, pct(r.accuracy), d ? change(deltaPoints(d.accuracy), d.accuracy) : null),
      h('td', {class: 'num'}, kappa(r.kappa), d ? change(deltaKappa(d.kappa), d.kappa) : null),
      h('td', {class: 'num'}, pct(r.mean_dice), d ? change(deltaPoints(d.mean_dice), d.mean_dice) : null),
      h('td', {class: 'num'}, formatInt(r.labelled_pixels)),
      h('td', {}, h('button', {type: 'button', class: 'btn btn-quiet btn-small', 'data-action': 'show-version',
        onclick: () => showVersion(v.model_version)}, 'Details')));
  }));
  const other = $('other-layers');
  other.hidden = !data.other_layers;
  other.textContent = data.other_layers ? `${data.other_layers} other expert layer${data.other_layers === 1 ? '' : 's'} `
    + '(other experts’ reviews) count in the pooled figures but are not listed.' : '';
  if (data.versions.length) showVersion((data.versions.find((v) => v.status === 'active') || data.versions[0]).model_version);
}

function showVersion(versionId) {
  const v = state.versions.find((item) => item.model_version === versionId);
  if (!v) return;
  state.selectedVersion = versionId;
  for (const row of document.querySelectorAll('.version-row')) {
    row.classList.toggle('selected', Number(row.dataset.version) === versionId);
  }
  $('version-detail').hidden = false;
  $('version-detail-title').textContent = `Expert layers against ${v.name} (v${v.model_version})`;
  $('version-plot').src = apiUrl(`mosaics/${mosaicId}/agreement/plot/?version=${versionId}`);
  $('version-plot-caption').textContent = `All expert layers pooled against ${v.name}: `
    + `${pct(v.report.accuracy)} agreement, κ ${kappa(v.report.kappa)}.`;
  replaceChildren($('layer-table'), v.layers.length ? h('table', {class: 'table layer-figures'},
    h('thead', {}, h('tr', {}, ['Layer', 'Labelled', 'Agreement', 'Kappa', 'Mean Dice']
      .map((text, i) => h('th', {scope: 'col', class: i ? 'num' : null}, text)))),
    h('tbody', {}, v.layers.map((layer) => h('tr', {dataset: {layer: layer.layer}},
      h('td', {}, layerName(layer)), cell(formatInt(layer.labelled_pixels)), cell(pct(layer.report.accuracy)),
      cell(kappa(layer.report.kappa)), cell(pct(layer.report.mean_dice))))))
    : h('p', {class: 'muted'}, 'No expert layer you may see on this mosaic.'));
}

// ---- expert pairs -----------------------------------------------------------------------------------------------
function showPairs(pairs) {
  $('pairs-empty').hidden = pairs.length > 0;
  $('pairs-table').hidden = pairs.length === 0;
  replaceChildren($('pair-rows'), pairs.map((p) => h('tr', {},
    h('td', {}, layerName(p.a)), h('td', {}, layerName(p.b)),
    cell(formatInt(p.overlap_pixels), {title: pixelsToMm2(p.overlap_pixels, umPerPx)}),
    cell(pct(p.report.accuracy)), cell(kappa(p.report.kappa)), cell(pct(p.report.mean_dice)))));
}

async function main() {
  try {
    const [classes, reviewsPage, mosaicAgreement] = await Promise.all([
      getJSON(apiUrl('label-classes/')),
      getJSON(apiUrl(`reviews/?mosaic=${mosaicId}&limit=${REVIEWS_LIMIT}`)),
      getJSON(apiUrl(`mosaics/${mosaicId}/agreement/`))]);
    state.classes = [...classes].sort((a, b) => a.value - b.value);
    const reviews = (Array.isArray(reviewsPage) ? reviewsPage : reviewsPage.results || [])
      .sort((a, b) => (b.updated_at || '').localeCompare(a.updated_at || ''));
    const chosen = setupReviews(reviews);
    showVersions(mosaicAgreement);
    showPairs(mosaicAgreement.expert_pairs);
    if (chosen) await showReview(chosen);
    page.dataset.state = 'ready';
  } catch (error) {
    banner(error.sessionEnded ? 'Your session ended. Reload the page to log in again.'
      : `The agreement could not be loaded: ${error.message}`);
    page.dataset.state = 'failed';
  }
}

main();
