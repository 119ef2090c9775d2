// Models page: model versions with their held-out figures, the live fine-tuning round (progress, loss curve,
// cancel), the comparison of a version with its parent, promotion with the re-prediction of every mosaic, and
// (admins) the launch form and the held-out mosaic set. Everything comes from the REST API; the page polls only
// while a round or a re-prediction runs.

import {ApiError, apiUrl, csrfToken, errorText, getJSON, request} from './api.js';
import {GroupedBarChart, LineChart} from './charts.js';
import {h, replaceChildren} from './dom.js';
import {formatDate, formatInt, percent} from './format.js';
import {ACTIVE_JOB_STATES, Poller, jobProgress, updateJobProgress} from './jobs.js';

// Re-prediction jobs read per poll: one per ready mosaic; more than this many mosaics and the count is a floor.
const PREDICT_JOBS_LIMIT = 1000;
// Mosaics listed for the held-out set and for naming training mosaics: pages of this size, up to the cap.
const MOSAIC_PAGE = 200;
const MOSAIC_CAP = 2000;
// Above this many mosaics the held-out list gets a name filter.
const FILTER_FROM = 8;
// The loss trend line averages 2k + 1 steps with k = steps / this: about 1/15 of the curve, so a 2000-step curve
// (the most a job keeps) is averaged over ~130 steps; under 30 steps the raw loss is shown alone.
const SMOOTHING_POINTS_PER_HALF_WINDOW = 30;

const STATUS_LABELS = {
  training: 'Training', candidate: 'Candidate', active: 'Active', retired: 'Retired', discarded: 'Discarded',
};
const JOB_STATE_LABELS = {
  queued: 'Queued', running: 'Running', succeeded: 'Done', failed: 'Failed', cancelled: 'Cancelled',
};
const LABEL_SOURCE_TEXT = {
  all: 'all labels (imported and submitted reviews)', imported: 'imported labels', reviews: 'submitted reviews',
};
// Chart colours that read on white beside the class colours (loss in blue, Dice in green, validation loss orange).
const COLOURS = {loss: '#1f6fb2', lossRaw: '#9cc3e6', valLoss: '#d9822b', dice: '#1d7a4c'};

const page = document.getElementById('models-page');
const canManage = page.dataset.canManage === 'true';
const banner = document.getElementById('models-banner');
const activeSummary = document.getElementById('active-summary');
const versionRows = document.getElementById('version-rows');
const versionsTable = document.querySelector('.versions-table');
const versionsEmpty = document.getElementById('versions-empty');
const showDiscarded = document.getElementById('show-discarded');
const comparison = document.getElementById('comparison');
const compareSelect = document.getElementById('compare-select');
const comparisonBody = document.getElementById('comparison-body');
const comparisonSub = document.getElementById('comparison-sub');
const repredict = document.getElementById('repredict');
const dialog = document.getElementById('confirm-dialog');

const state = {
  versions: [],
  classes: [],
  mosaics: new Map(),
  trainJob: null,
  predictJobs: [],
  compareId: Number((location.hash.match(/^#compare-(\d+)$/) || [])[1]) || null,
  watchedTrainJob: null, // id of a round this page saw queued or running (its end selects the candidate)
  promoted: null, // id of the version promoted from this page (its re-prediction stays shown when done)
  repredictHidden: false,
  busy: new Set(), // version ids with an action in flight
};

// ---- small formats ------------------------------------------------------------------------------------------

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const pct = (v) => (isNum(v) ? `${(100 * v).toFixed(1)} %` : '—');
const dec = (v, digits = 3) => (isNum(v) ? v.toFixed(digits) : '—');
const plural = (n, one, many = `${one}s`) => `${formatInt(n)} ${n === 1 ? one : many}`;

function formatLr(value) {
  if (!isNum(value)) return '—';
  return value >= 0.001 ? String(value) : value.toExponential(0).replace('e-', 'e−');
}

/** A change against the parent: "▲ 3.4 pp" (green) / "▼ 1.2 pp" (red); kappa in plain units. */
function delta(value, parent, {points = true, quietWhenSame = false} = {}) {
  if (!isNum(value) || !isNum(parent)) return null;
  const diff = value - parent;
  const size = points ? Math.abs(100 * diff).toFixed(1) : Math.abs(diff).toFixed(3);
  const flat = points ? size === '0.0' : size === '0.000';
  if (flat && quietWhenSame) return null;
  const kind = flat ? 'same' : diff > 0 ? 'up' : 'down';
  const arrow = flat ? 'same' : diff > 0 ? '▲' : '▼';
  const unit = points ? ' pp' : '';
  const said = flat ? 'same as the parent' : `${diff > 0 ? 'up' : 'down'} ${size}${unit} on the parent`;
  return h('span', {class: `delta delta-${kind}`, title: said},
    h('span', {'aria-hidden': 'true'}, `${arrow} ${flat ? '' : size + unit}`.trim()),
    h('span', {class: 'visually-hidden'}, ` (${said})`));
}

function statusBadge(status, labels = STATUS_LABELS) {
  return h('span', {class: `status status-${status}`}, labels[status] || status);
}

function versionTag(id) {
  return h('span', {class: 'vtag'}, `v${id}`);
}

function versionById(id) {
  return state.versions.find((v) => v.id === id) || null;
}

function mosaicName(id) {
  const mosaic = state.mosaics.get(id);
  return mosaic ? mosaic.name : `Mosaic ${id}`;
}

function classFor(key, index) {
  return state.classes.find((c) => c.key === key) || state.classes[index] ||
    {key, name: key, colour: '#8a96a3', value: index};
}

function showBanner(text, kind = 'warning') {
  banner.hidden = !text;
  banner.className = `banner banner-${kind}`;
  banner.textContent = text || '';
}

/** Held-out figures of a version, or the figures its weights came with (demo or CLI-trained weights). */
function heldOut(version) {
  const held = version.metrics && version.metrics.held_out;
  return held && Object.keys(held).length ? held : null;
}

function ownMetrics(version) {
  const m = version.metrics || {};
  if (heldOut(version)) return null;
  return ['mean_dice', 'accuracy', 'kappa'].some((k) => isNum(m[k])) ? m : null;
}

/** Something to show in the comparison: held-out figures, figures of the weights file, or a training summary. */
function hasFigures(version) {
  const m = version.metrics || {};
  return Boolean(heldOut(version) || Object.values(m).some(isNum) ||
    Object.keys(version.training_summary || {}).length);
}

/** POST JSON and resolve {status, data}: the launch tells a new round (202) from the one already running (200). */
async function postWithStatus(url, body) {
  let response;
  try {
    response = await fetch(url, {method: 'POST', credentials: 'same-origin', body: JSON.stringify(body),
      headers: {'Accept': 'application/json', 'Content-Type': 'application/json', 'X-CSRFToken': csrfToken()}});
  } catch {
    throw new ApiError('Cannot reach the server. Check the connection and try again.', 0);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(errorText(data, response.status), response.status, data);
  return {status: response.status, data};
}

// ---- confirmation dialog ------------------------------------------------------------------------------------

function confirmAction({title, body, confirm, danger = false}) {
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-body').textContent = body;
  const ok = document.getElementById('confirm-ok');
  ok.textContent = confirm;
  ok.className = `btn ${danger ? 'btn-danger' : 'btn-primary'}`;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), {once: true});
  });
}

// ---- versions table -----------------------------------------------------------------------------------------

function metricCell(version, key, {points = true} = {}) {
  const held = heldOut(version);
  const parent = version.metrics && version.metrics.parent_held_out;
  if (held) {
    const value = held[key];
    return h('td', {class: 'num metric'},
      h('div', {class: 'metric-value'}, points ? pct(value) : dec(value)),
      parent ? h('div', {class: 'metric-delta'}, delta(value, parent[key], {points, quietWhenSame: true})) : null);
  }
  const own = ownMetrics(version);
  if (own && isNum(own[key])) {
    return h('td', {class: 'num metric metric-own', title: 'Recorded with the weights (their own validation), ' +
      'not measured on this site’s held-out mosaics'}, points ? pct(own[key]) : dec(own[key]), h('sup', {}, '*'));
  }
  return h('td', {class: 'num metric muted'}, '—');
}

function actionButtons(version) {
  const busy = state.busy.has(version.id);
  const buttons = [];
  const trainable = ['active', 'candidate', 'retired'].includes(version.status);
  if (trainable) {
    buttons.push(h('button', {type: 'button', class: 'btn btn-small btn-quiet', disabled: busy,
      onclick: () => fineTuneFrom(version), title: 'Use this version as the base of a new round'}, 'Fine-tune'));
  }
  if (['candidate', 'retired'].includes(version.status)) {
    buttons.push(h('button', {type: 'button', class: 'btn btn-small btn-secondary', disabled: busy,
      onclick: () => promote(version), dataset: {action: 'promote'}}, 'Promote'));
    buttons.push(h('button', {type: 'button', class: 'btn btn-small btn-danger-quiet', disabled: busy,
      onclick: () => discard(version), dataset: {action: 'discard'}}, 'Discard'));
  }
  return h('td', {class: 'col-actions'}, h('div', {class: 'row-actions'}, buttons));
}

function renderVersionRow(version) {
  const selected = version.id === state.compareId;
  const parent = version.parent
    ? h('td', {class: 'col-parent'},
      h('span', {class: 'lineage'}, h('span', {class: 'lineage-arrow', 'aria-hidden': 'true'}, '↳'),
        version.parent_name || 'parent', ' ', versionTag(version.parent)))
    : h('td', {class: 'col-parent muted'}, 'none');
  const status = h('td', {class: 'col-status'}, statusBadge(version.status),
    version.status === 'active' && version.activated_at
      ? h('div', {class: 'sub'}, `since ${formatDate(version.activated_at)}`) : null);
  const name = hasFigures(version)
    ? h('button', {type: 'button', class: 'link-button version-name', 'aria-pressed': String(selected),
      title: 'Show its figures beside its parent’s', onclick: () => selectCompare(version.id, {scroll: true})},
    version.name)
    : h('span', {class: 'version-name'}, version.name);
  return h('tr', {class: `version-row row-${version.status}${selected ? ' is-selected' : ''}`,
    dataset: {versionId: version.id, status: version.status}},
  h('td', {class: 'col-name'}, h('div', {class: 'name-line'}, name, versionTag(version.id)),
    h('div', {class: 'sub'}, `created ${formatDate(version.created_at)}`,
      version.created_by ? ` by ${version.created_by}` : ''),
    version.notes ? h('div', {class: 'sub notes', title: version.notes}, version.notes) : null),
  status, parent,
  metricCell(version, 'mean_dice'), metricCell(version, 'accuracy'), metricCell(version, 'kappa', {points: false}),
  canManage ? actionButtons(version) : null);
}

function renderVersions() {
  const visible = state.versions.filter((v) => showDiscarded.checked || v.status !== 'discarded');
  const discarded = state.versions.length - state.versions.filter((v) => v.status !== 'discarded').length;
  showDiscarded.closest('label').hidden = discarded === 0;
  versionsTable.hidden = state.versions.length === 0;
  versionsEmpty.hidden = state.versions.length !== 0;
  replaceChildren(versionRows, visible.map(renderVersionRow));
  const footnote = visible.some((v) => ownMetrics(v));
  let note = document.getElementById('versions-footnote');
  if (footnote && !note) {
    note = h('p', {id: 'versions-footnote', class: 'table-note hint'}, '* Recorded with the weights file (their own ' +
      'validation), not measured on this site’s held-out mosaics.');
    versionsTable.parentElement.after(note);
  } else if (!footnote && note) {
    note.remove();
  }
  const active = state.versions.find((v) => v.status === 'active');
  replaceChildren(activeSummary, active
    ? ['Active: ', h('strong', {}, active.name), ' ', versionTag(active.id)]
    : state.versions.length ? h('span', {class: 'warn-text'}, 'No active version: predictions are paused.') : '');
}

// ---- actions ------------------------------------------------------------------------------------------------

async function runAction(version, work) {
  state.busy.add(version.id);
  renderVersions();
  try {
    await work();
    showBanner('');
  } catch (error) {
    showBanner(error.message, 'error');
  } finally {
    state.busy.delete(version.id);
    await refreshNow();
  }
}

async function promote(version) {
  const mosaics = [...state.mosaics.values()].filter((m) => m.status === 'ready').length;
  const ok = await confirmAction({
    title: `Promote “${version.name}”?`,
    body: `It becomes the active version and the current one is retired (it can be promoted again later). ` +
      `Every ready mosaic${mosaics ? ` (${formatInt(mosaics)})` : ''} is predicted again with it; experts see its ` +
      'overlay as each prediction finishes.',
    confirm: 'Promote',
  });
  if (!ok) return;
  await runAction(version, async () => {
    await request('POST', apiUrl(`model-versions/${version.id}/activate/`));
    state.promoted = version.id;
    state.repredictHidden = false;
  });
}

async function discard(version) {
  const ok = await confirmAction({
    title: `Discard “${version.name}”?`,
    body: 'It leaves the list of versions that can be promoted or fine-tuned. Its weights and figures are kept for ' +
      'the record.',
    confirm: 'Discard', danger: true,
  });
  if (!ok) return;
  await runAction(version, () => request('POST', apiUrl(`model-versions/${version.id}/discard/`)));
}

function fineTuneFrom(version) {
  const select = document.getElementById('base-select');
  select.value = String(version.id);
  select.dataset.chosen = 'true';
  document.getElementById('launch').scrollIntoView({behavior: 'smooth', block: 'start'});
  select.focus({preventScroll: true});
}

// ---- running round ------------------------------------------------------------------------------------------

const training = document.getElementById('training');
let lossChart = null;
let lossSignature = '';

function trainSteps(job) {
  return (job.info && job.info.steps) || [];
}

function trainHistory(job) {
  return (job.info && job.info.history) || [];
}

/** Steps per epoch actually run: the largest step of a finished epoch, else the requested number. */
function stepsPerEpoch(job) {
  const finished = new Set(trainHistory(job).map((row) => row.epoch));
  const steps = trainSteps(job);
  const done = steps.filter((row) => finished.has(row.epoch)).map((row) => row.step);
  if (done.length) return Math.max(...done);
  return Math.max(1, Number(job.params.steps_per_epoch) || 1, ...steps.map((row) => row.step));
}

/** Centred moving average over 2k + 1 points (fewer at the ends): a trend without the lag of a running mean. */
function movingAverage(points, k) {
  const sums = [0];
  for (const [, y] of points) sums.push(sums.at(-1) + y);
  return points.map(([x], i) => {
    const lo = Math.max(0, i - k);
    const hi = Math.min(points.length, i + k + 1);
    return [x, (sums[hi] - sums[lo]) / (hi - lo)];
  });
}

function lossSeries(job) {
  const per = stepsPerEpoch(job);
  const raw = trainSteps(job).map((row) => [(row.epoch - 1) + row.step / per, row.loss]);
  const k = Math.floor(raw.length / SMOOTHING_POINTS_PER_HALF_WINDOW);
  const history = trainHistory(job);
  const loss = k >= 1
    ? [{key: 'loss-raw', label: 'Loss per step', colour: COLOURS.lossRaw, points: raw, width: 1},
      {key: 'loss', label: `Loss, mean of ${2 * k + 1} steps`, colour: COLOURS.loss, points: movingAverage(raw, k),
        width: 2}]
    : [{key: 'loss-raw', label: 'Loss per step', colour: COLOURS.loss, points: raw, width: 2, dots: true,
      radius: 2.5}];
  return [
    ...loss,
    {key: 'val-loss', label: 'Validation loss', colour: COLOURS.valLoss, dash: '5 4', dots: true,
      points: history.filter((row) => isNum(row.val_loss)).map((row) => [row.epoch, row.val_loss])},
    {key: 'val-dice', label: 'Validation mean Dice', colour: COLOURS.dice, axis: 'right', dots: true, width: 2,
      points: history.filter((row) => isNum(row.val_mean_dice)).map((row) => [row.epoch, row.val_mean_dice])},
  ];
}

function legend(series) {
  return h('ul', {class: 'chart-legend'}, series.filter((one) => one.points.length).map((one) =>
    h('li', {}, h('span', {class: `swatch swatch-${one.dash ? 'dash' : one.line === false ? 'dot' : 'line'}`,
      style: `--swatch: ${one.colour}`}), one.label)));
}

function drawLossChart(job) {
  const epochs = Math.max(1, Number(job.params.epochs) || 1);
  const steps = trainSteps(job);
  const history = trainHistory(job);
  const signature = JSON.stringify([job.id, steps.length, steps.at(-1), history.length, epochs]);
  if (signature === lossSignature) return;
  lossSignature = signature;
  const container = document.getElementById('loss-chart');
  if (!lossChart) {
    lossChart = new LineChart(container, {
      height: 260, label: 'Fine-tuning loss curve', xLabel: 'Epoch', leftLabel: 'Loss',
      rightLabel: 'Validation mean Dice', rightDomain: [0, 1], rightFormat: (v) => `${Math.round(v * 100)} %`,
      emptyText: 'The curve starts with the first training step',
    });
  }
  const series = lossSeries(job);
  const ticks = Array.from({length: epochs + 1}, (_, i) => i).filter((i) => epochs <= 12 || i % Math.ceil(epochs / 12) === 0);
  lossChart.update({series, xDomain: [0, epochs], xTicks: ticks, xFormat: (v) => String(v)});
  container.dataset.steps = String(steps.length);
  container.dataset.epochs = String(history.length);
  const old = container.parentElement.querySelector('.chart-legend');
  if (old) old.remove();
  container.after(legend(series));
  const last = steps.at(-1);
  const lastEpoch = history.at(-1);
  document.getElementById('loss-latest').textContent = [
    last ? `last step loss ${last.loss.toFixed(4)}` : '',
    lastEpoch && isNum(lastEpoch.val_mean_dice) ? `validation mean Dice ${pct(lastEpoch.val_mean_dice)}` : '',
  ].filter(Boolean).join(' · ');
  const note = document.getElementById('loss-note');
  const noValidation = history.length > 0 && !history.some((row) => isNum(row.val_mean_dice));
  note.hidden = !noValidation;
  note.textContent = noValidation ? 'No validation figures: a fifth of the training mosaics is kept aside for ' +
    'validation, and this round had too few mosaics for that (at least five are needed).' : '';
}

function progressJob(job) {
  // The shared progress block, with a message that says where training stands.
  const steps = trainSteps(job);
  const last = steps.at(-1);
  const epochs = Number(job.params.epochs) || 1;
  let message = job.message;
  if (job.state === 'queued') {
    message = job.attempts > 0 ? `Waiting to resume (attempt ${job.attempts + 1} of ${job.max_attempts})`
      : 'Waiting for a training worker';
  } else if (job.state === 'running' && job.info && job.info.phase === 'evaluating') {
    message = job.message || 'Evaluating on the held-out mosaics';
  } else if (job.state === 'running' && last) {
    message = `Epoch ${last.epoch} of ${epochs} · step ${last.step} of ${stepsPerEpoch(job)} · loss ${last.loss.toFixed(4)}`;
  } else if (job.state === 'running') {
    message = job.message || 'Preparing the training data';
  }
  return {...job, kind: 'train', message};
}

function renderTraining(job) {
  if (!training) return;
  training.hidden = !job;
  if (!job) return;
  const active = ACTIVE_JOB_STATES.has(job.state);
  training.dataset.state = job.state;
  training.dataset.jobId = String(job.id);
  const base = versionById(Number(job.params.base_version));
  const candidate = versionById(Number(job.params.candidate));
  document.getElementById('training-title').textContent = active ? 'Fine-tuning in progress' : 'Latest fine-tuning round';
  replaceChildren(document.getElementById('training-sub'),
    `Round #${job.id} from `, base ? h('strong', {}, base.name) : 'its base', base ? [' ', versionTag(base.id)] : null,
    ` · ${LABEL_SOURCE_TEXT[job.params.labels] || job.params.labels} · ${plural(Number(job.params.epochs), 'epoch')}` +
    ` × ${plural(Number(job.params.steps_per_epoch), 'step')} · learning rate ${formatLr(Number(job.params.lr))}` +
    ` · ${job.state === 'queued' ? 'queued' : 'started'} ${formatDate(job.started_at || job.created_at)}`);
  replaceChildren(document.getElementById('training-state'), statusBadge(job.state, JOB_STATE_LABELS));
  document.getElementById('training-cancel').hidden = !active;

  const holder = document.getElementById('training-progress');
  const shown = progressJob(job);
  let block = holder.querySelector('.job');
  if (!block || block.dataset.jobId !== String(job.id)) {
    block = jobProgress(shown);
    replaceChildren(holder, block);
  } else {
    updateJobProgress(block, shown);
  }
  block.hidden = job.state === 'succeeded';
  drawLossChart(job);

  const outcome = document.getElementById('training-outcome');
  if (job.state === 'failed') {
    replaceChildren(outcome, h('div', {class: 'alert alert-error outcome'},
      h('p', {}, h('strong', {}, 'The round failed. '), job.error || 'No reason was recorded.'),
      h('p', {class: 'small'}, 'Its candidate was discarded. Fix the cause and start a new round below.')));
  } else if (job.state === 'cancelled') {
    replaceChildren(outcome, h('div', {class: 'alert outcome'},
      h('p', {}, h('strong', {}, 'Cancelled. '), 'The round was stopped and its candidate discarded.')));
  } else if (job.state === 'succeeded') {
    const held = candidate && heldOut(candidate);
    const parent = candidate && candidate.metrics && candidate.metrics.parent_held_out;
    replaceChildren(outcome, h('div', {class: 'alert alert-success outcome'},
      h('p', {}, h('strong', {}, candidate ? `Candidate “${candidate.name}” ` : 'Candidate '),
        candidate ? versionTag(candidate.id) : null,
        held && isNum(held.mean_dice) ? [` is ready: held-out mean Dice ${pct(held.mean_dice)}`,
          parent && isNum(parent.mean_dice) ? ` (parent ${pct(parent.mean_dice)})` : '', '.']
          : ' is ready. No mosaic is held out, so it has no held-out figures.'),
      candidate ? h('div', {class: 'outcome-actions'},
        h('button', {type: 'button', class: 'btn btn-small btn-secondary',
          onclick: () => selectCompare(candidate.id, {scroll: true})}, 'Compare with its parent'),
        canManage && candidate.status === 'candidate' ? h('button', {type: 'button', class: 'btn btn-small btn-primary',
          onclick: () => promote(candidate)}, 'Promote') : null,
        candidate.status !== 'candidate' ? h('span', {class: 'muted small'}, `Now ${STATUS_LABELS[candidate.status]
          .toLowerCase()}.`) : null) : null));
  } else {
    replaceChildren(outcome);
  }
}

document.getElementById('training-cancel')?.addEventListener('click', async () => {
  const job = state.trainJob;
  if (!job) return;
  const ok = await confirmAction({
    title: 'Cancel this fine-tuning round?',
    body: 'Training stops at its next step and the unfinished candidate is discarded. The base version is not ' +
      'touched.',
    confirm: 'Cancel round', danger: true,
  });
  if (!ok) return;
  try {
    await request('POST', apiUrl(`jobs/${job.id}/cancel/`));
    showBanner('');
  } catch (error) {
    showBanner(error.message, 'error');
  }
  await refreshNow();
});

// ---- re-prediction after a promotion ------------------------------------------------------------------------

function currentPredictJobs(active) {
  if (!active || !active.activated_at) return [];
  const since = new Date(active.activated_at).getTime();
  return state.predictJobs.filter((job) => new Date(job.created_at).getTime() >= since - 1000);
}

function renderRepredict() {
  const active = state.versions.find((v) => v.status === 'active');
  const jobs = currentPredictJobs(active);
  const running = jobs.filter((job) => ACTIVE_JOB_STATES.has(job.state));
  const show = !state.repredictHidden && active && jobs.length > 0 && (running.length > 0 || state.promoted === active.id);
  repredict.hidden = !show;
  if (!show) return;
  const done = jobs.filter((job) => job.state === 'succeeded').length;
  const failed = jobs.filter((job) => job.state === 'failed' || job.state === 'cancelled');
  repredict.dataset.state = running.length ? 'running' : 'done';
  document.getElementById('repredict-title').textContent = running.length
    ? `Predicting every mosaic with “${active.name}”` : `Every mosaic predicted with “${active.name}”`;
  document.getElementById('repredict-sub').textContent = running.length
    ? `${done} of ${plural(jobs.length, 'mosaic')} done. Experts see the new overlay on each mosaic as soon as its ` +
      'prediction is stored.'
    : `${done} of ${plural(jobs.length, 'mosaic')} predicted${failed.length ? `, ${failed.length} failed` : ''}. ` +
      'Experts opening a mosaic now see this version’s overlay.';
  document.getElementById('repredict-dismiss').hidden = running.length > 0;
  const overall = document.getElementById('repredict-overall');
  const fraction = jobs.length ? jobs.reduce((sum, job) => sum + (job.state === 'succeeded' ? 1
    : ACTIVE_JOB_STATES.has(job.state) ? job.progress || 0 : 1), 0) / jobs.length : 1;
  const value = percent(fraction);
  replaceChildren(overall, h('div', {class: `bar bar-large${running.length ? '' : failed.length ? ' bar-error' : ' bar-done'}`,
    role: 'progressbar', 'aria-label': 'Re-prediction progress', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': value}, h('div', {class: 'bar-fill', style: {width: `${value}%`}})));
  const list = document.getElementById('repredict-jobs');
  const existing = new Map([...list.querySelectorAll(':scope > .repredict-job')].map((el) => [el.dataset.jobId, el]));
  const rows = [...running, ...failed].map((job) => {
    const shown = {...job, message: job.state === 'failed' ? job.error || 'Failed' : job.message};
    let row = existing.get(String(job.id));
    if (row) {
      updateJobProgress(row.querySelector('.job'), shown);
    } else {
      row = h('div', {class: 'repredict-job', dataset: {jobId: job.id}},
        h('span', {class: 'repredict-name'}, mosaicName(job.mosaic)), jobProgress(shown));
    }
    row.querySelector('.job-kind').textContent = '';
    return row;
  });
  replaceChildren(list, rows);
}

document.getElementById('repredict-dismiss').addEventListener('click', () => {
  state.repredictHidden = true;
  renderRepredict();
});

// ---- comparison ---------------------------------------------------------------------------------------------

let diceChart = null;
let historyChart = null;

function comparable() {
  return state.versions.filter((v) => hasFigures(v) && v.status !== 'training');
}

function defaultCompare() {
  const list = comparable();
  const byPriority = (v) => (v.metrics.parent_held_out && heldOut(v) ? 0 : heldOut(v) ? 1 : 2);
  const candidates = list.filter((v) => v.status === 'candidate');
  const pick = (pool) => [...pool].sort((a, b) => byPriority(a) - byPriority(b))[0];
  return (pick(candidates) || list.find((v) => v.status === 'active') || pick(list) || {}).id || null;
}

function selectCompare(id, {scroll = false} = {}) {
  state.compareId = id;
  history.replaceState(null, '', id ? `#compare-${id}` : location.pathname + location.search);
  renderVersions();
  renderComparison();
  if (scroll) comparison.scrollIntoView({behavior: 'smooth', block: 'start'});
}

compareSelect.addEventListener('change', () => selectCompare(Number(compareSelect.value)));

function tile(label, value, parentValue, {points = true, hint = '', foot = null} = {}) {
  return h('div', {class: 'tile', title: hint || null},
    h('div', {class: 'tile-label'}, label),
    h('div', {class: 'tile-value'}, points ? pct(value) : dec(value)),
    h('div', {class: 'tile-foot'}, foot || (isNum(parentValue)
      ? [`parent ${points ? pct(parentValue) : dec(parentValue)} `, delta(value, parentValue, {points})]
      : h('span', {class: 'muted'}, 'no parent figure'))));
}

function perClassTable(report, parent) {
  const metrics = [['dice', 'Dice'], ['sensitivity', 'Sensitivity'], ['specificity', 'Specificity'],
    ['precision', 'Precision']].filter(([key]) => report[key] && typeof report[key] === 'object');
  if (!metrics.length) return null;
  const keys = Object.keys(report[metrics[0][0]]);
  const twoCols = Boolean(parent);
  const head = h('thead', {},
    h('tr', {}, h('th', {scope: 'col', rowspan: twoCols ? 2 : 1}, 'Class'),
      metrics.map(([, label]) => h('th', {scope: 'colgroup', colspan: twoCols ? 2 : 1, class: 'num group-start'},
        label))),
    twoCols ? h('tr', {class: 'subhead'}, metrics.map(() => [h('th', {scope: 'col', class: 'num group-start'}, 'This'),
      h('th', {scope: 'col', class: 'num'}, 'Parent')])) : null);
  const body = h('tbody', {}, keys.map((key, index) => {
    const cls = classFor(key, index);
    return h('tr', {dataset: {classKey: key}},
      h('th', {scope: 'row', class: 'class-cell'}, h('span', {class: 'class-swatch', style: {background: cls.colour}}),
        cls.name),
      metrics.map(([metric]) => {
        const value = report[metric][key];
        const before = parent && parent[metric] ? parent[metric][key] : null;
        return [h('td', {class: 'num group-start'}, h('span', {}, pct(value)),
          twoCols ? delta(value, before, {quietWhenSame: true}) : null),
          twoCols ? h('td', {class: 'num muted'}, pct(before)) : null];
      }));
  }));
  return h('div', {class: 'table-scroll'}, h('table', {class: 'table per-class-table'}, head, body));
}

function diceBars(report, parent, version) {
  if (!report.dice || typeof report.dice !== 'object') return null;
  const keys = Object.keys(report.dice);
  const figure = h('figure', {class: 'chart-figure'},
    h('figcaption', {class: 'chart-caption'}, h('span', {}, 'Dice per class on the held-out mosaics')));
  const holder = h('div', {class: 'chart', id: 'dice-chart'});
  figure.append(holder);
  const groups = keys.map((key, i) => {
    const cls = classFor(key, i);
    return {label: cls.name, colour: cls.colour};
  });
  const series = [{key: 'this', label: `${version.name} (v${version.id})`, values: keys.map((k) => report.dice[k])}];
  if (parent && parent.dice) {
    series.push({key: 'parent', label: `Parent (v${version.parent})`, style: 'light',
      values: keys.map((k) => parent.dice[k] ?? null)});
  }
  figure.append(h('ul', {class: 'chart-legend'},
    h('li', {}, h('span', {class: 'swatch swatch-bar'}), series[0].label),
    series[1] ? h('li', {}, h('span', {class: 'swatch swatch-bar swatch-light'}), series[1].label) : null,
    series.some((one) => one.values.some((v) => !isNum(v)))
      ? h('li', {class: 'muted'}, 'n/a: class absent from the held-out labels and predictions') : null));
  if (diceChart) diceChart.disconnect();
  diceChart = new GroupedBarChart(holder, {height: 270, label: 'Dice per class', yLabel: 'Dice',
    format: (v) => `${Math.round(v * 100)} %`, valueFormat: (v) => (100 * v).toFixed(0)});
  diceChart.update({groups, series});
  return figure;
}

// ---- agreement with the experts' reviews ----------------------------------------------------------------------

// Where a review's mosaic stood in the round (inference.services.training.REVIEW_SPLITS), in the order shown.
const REVIEW_SPLITS = {
  held_out: {label: 'Held-out mosaics', short: 'held out', note: 'never trained on', colour: '#1d7a4c'},
  trained: {label: 'Trained-on mosaics', short: 'trained on', colour: '#c07a12',
    note: 'optimistic: the candidate was trained on these mosaics’ labels'},
  validation: {label: 'Validation mosaics', short: 'validation', note: 'they picked the best epoch',
    colour: '#6b5fb5'},
  not_used: {label: 'Mosaics not used', short: 'not used', note: 'their labels were not chosen for this round',
    colour: '#5a6b7b'},
};
// Figures shown per split: key, label, shown as a percentage.
const REVIEW_FIGURES = [['accuracy', 'Agreement', true], ['kappa', 'Kappa', false], ['mean_dice', 'Mean Dice', true]];

let reviewChart = null;

function pairCells(value, parent, points) {
  return [h('td', {class: 'num group-start'}, h('span', {}, points ? pct(value) : dec(value)),
    delta(value, parent, {points, quietWhenSame: true})),
  h('td', {class: 'num muted'}, points ? pct(parent) : dec(parent))];
}

function pairHead(labels) {
  return h('thead', {},
    h('tr', {}, labels.map(([label, span, {title = null, num = false} = {}]) => h('th', {
      scope: span > 1 ? 'colgroup' : 'col', colspan: span, rowspan: span > 1 ? null : 2, title,
      class: span > 1 ? 'num group-start' : num ? 'num' : 'text'}, label))),
    h('tr', {class: 'subhead'}, labels.filter(([, span]) => span > 1).map(() => [
      h('th', {scope: 'col', class: 'num group-start'}, 'This'), h('th', {scope: 'col', class: 'num'}, 'Parent')])));
}

function reviewSplitTable(reviews, splits) {
  const titles = {accuracy: 'Share of the expert’s labelled pixels where the model gives the same class',
    kappa: 'Cohen’s kappa of the expert and the model', mean_dice: 'Mean Dice over the classes the expert labelled'};
  const head = pairHead([['Reviews on', 1], ['Reviews', 1, {num: true}], ['Labelled px', 1, {num: true}],
    ...REVIEW_FIGURES.map(([key, label]) => [label, 2, {title: titles[key]}])]);
  const body = h('tbody', {}, splits.map((key) => {
    const pool = reviews.splits[key];
    const split = REVIEW_SPLITS[key];
    return h('tr', {dataset: {split: key}},
      h('th', {scope: 'row'}, h('div', {class: 'split-cell'},
        h('span', {class: 'class-swatch', style: {background: split.colour}}),
        h('span', {}, split.label, h('span', {class: `split-note${key === 'trained' ? ' warn-text' : ''}`},
          split.note)))),
      h('td', {class: 'num'}, formatInt(pool.reviews.length)),
      h('td', {class: 'num'}, formatInt(pool.labelled_pixels)),
      REVIEW_FIGURES.map(([figure, , points]) => pairCells(pool.candidate[figure], pool.parent[figure], points)));
  }));
  return h('div', {class: 'table-scroll'}, h('table', {class: 'table pair-table review-table'}, head, body));
}

function reviewBars(reviews, splits, version) {
  const figure = h('figure', {class: 'chart-figure'},
    h('figcaption', {class: 'chart-caption'}, h('span', {}, 'This version beside its parent on the reviews')));
  const holder = h('div', {class: 'chart', id: 'review-chart'});
  figure.append(holder);
  const groups = [];
  const values = {this: [], parent: []};
  for (const key of splits) {
    for (const [figureKey, label] of REVIEW_FIGURES) {
      groups.push({label: `${label} (${REVIEW_SPLITS[key].short})`, colour: REVIEW_SPLITS[key].colour});
      values.this.push(reviews.splits[key].candidate[figureKey] ?? null);
      values.parent.push(reviews.splits[key].parent[figureKey] ?? null);
    }
  }
  const series = [{key: 'this', label: `${version.name} (v${version.id})`, values: values.this},
    {key: 'parent', label: `Parent (v${reviews.parent})`, style: 'light', values: values.parent}];
  figure.append(h('ul', {class: 'chart-legend'},
    h('li', {}, h('span', {class: 'swatch swatch-bar'}), series[0].label),
    h('li', {}, h('span', {class: 'swatch swatch-bar swatch-light'}), series[1].label),
    splits.map((key) => h('li', {},
      h('span', {class: 'swatch swatch-bar', style: {background: REVIEW_SPLITS[key].colour}}),
      REVIEW_SPLITS[key].label.toLowerCase())),
    h('li', {class: 'muted'}, 'a kappa below 0 is drawn at 0')));
  if (reviewChart) reviewChart.disconnect();
  reviewChart = new GroupedBarChart(holder, {height: 250, label: 'Agreement with the experts’ reviews',
    yLabel: 'Agreement, kappa, Dice', format: (v) => v.toFixed(1), valueFormat: (v) => v.toFixed(2)});
  reviewChart.update({groups, series});
  return figure;
}

function perReviewTable(reviews) {
  const rows = reviews.per_review || [];
  const head = pairHead([['Review', 1], ['Mosaic', 1], ['Expert', 1], ['Mosaic was', 1],
    ['Labelled px', 1, {num: true}],
    ...REVIEW_FIGURES.map(([, label]) => [label, 2])]);
  const body = h('tbody', {}, rows.map((row) => h('tr', {dataset: {review: row.review, split: row.split}},
    h('th', {scope: 'row'}, `#${row.review}`),
    h('td', {}, h('a', {href: `/mosaics/${row.mosaic}/`}, row.mosaic_name || mosaicName(row.mosaic))),
    h('td', {}, row.expert || '—'),
    h('td', {class: row.split === 'trained' ? 'warn-text' : null}, (REVIEW_SPLITS[row.split] || {}).short || row.split),
    h('td', {class: 'num'}, formatInt(row.labelled_pixels)),
    REVIEW_FIGURES.map(([figure, , points]) => pairCells(row.candidate[figure], row.parent[figure], points)))));
  return h('div', {class: 'table-scroll'}, h('table', {class: 'table pair-table per-review-table'}, head, body));
}

function reviewClassDice(reviews, splits) {
  const keys = Object.keys(reviews.splits[splits[0]].candidate.dice || {});
  if (!keys.length) return null;
  const head = pairHead([['Class', 1], ...splits.map((key) => [`Dice, ${REVIEW_SPLITS[key].short}`, 2])]);
  const body = h('tbody', {}, keys.map((key, index) => {
    const cls = classFor(key, index);
    return h('tr', {dataset: {classKey: key}},
      h('th', {scope: 'row', class: 'class-cell'}, h('span', {class: 'class-swatch', style: {background: cls.colour}}),
        cls.name),
      splits.map((split) => pairCells(reviews.splits[split].candidate.dice[key],
        reviews.splits[split].parent.dice[key], true)));
  }));
  return h('div', {class: 'table-scroll'}, h('table', {class: 'table pair-table review-dice-table'}, head, body));
}

/** The candidate beside its parent on the submitted reviews compared after its round (metrics.reviews). */
function reviewAgreement(version) {
  const reviews = version.metrics && version.metrics.reviews;
  if (!reviews || typeof reviews !== 'object') return null;
  const splits = Object.keys(REVIEW_SPLITS).filter((key) => reviews.splits && reviews.splits[key]);
  const section = h('section', {class: 'subsection review-agreement', id: 'review-agreement',
    'aria-labelledby': 'reviews-title'}, h('h3', {id: 'reviews-title'}, 'Agreement with the experts’ reviews'));
  if (!splits.length) {
    section.append(h('p', {class: 'muted small'}, 'No submitted review with labelled pixels existed when this round ' +
      'ran, so nothing was compared.'));
    return section;
  }
  const capped = reviews.submitted > reviews.compared;
  const stored = (reviews.per_review || []).some((row) => row.parent_prediction &&
    row.parent_prediction.source === 'stored' && row.parent_prediction.mode !== 'fast');
  section.append(h('p', {class: 'muted small review-intro'},
    `${capped ? `The newest ${formatInt(reviews.compared)} of ${plural(reviews.submitted, 'submitted review')}`
      : plural(reviews.compared, 'submitted review')}, each scored on the pixels its expert labelled: this version ` +
    'beside its parent (v' + reviews.parent + '). Reviews on trained-on mosaics flatter the candidate; the ' +
    `held-out rows are the fair comparison.${stored ? ' The parent’s stored predictions were reused; some were ' +
      'made in paper mode.' : ''}`));
  section.append(h('div', {class: 'review-grid'}, reviewSplitTable(reviews, splits),
    reviewBars(reviews, splits, version)));
  const dice = reviewClassDice(reviews, splits);
  section.append(h('details', {class: 'review-details'},
    h('summary', {}, `Per review (${formatInt((reviews.per_review || []).length)})`), perReviewTable(reviews)));
  if (dice) section.append(h('details', {class: 'review-details'}, h('summary', {}, 'Dice per class'), dice));
  return section;
}

function mosaicList(ids) {
  if (!ids || !ids.length) return h('span', {class: 'muted'}, 'none');
  const names = ids.map((id, i) => [i ? ', ' : '', mosaicName(id)]);
  return ids.length === 1 ? h('span', {}, names) : h('span', {}, `${ids.length} mosaics: `, names);
}

function trainingData(version) {
  const summary = version.training_summary || {};
  if (!summary.train_mosaics && !summary.labelled_pixels_per_class) return null;
  const pixels = summary.labelled_pixels_per_class || {};
  const total = Object.values(pixels).reduce((sum, n) => sum + Number(n || 0), 0);
  const largest = Math.max(1, ...Object.values(pixels).map(Number));
  const rows = state.classes.length ? state.classes.map((c) => [c, Number(pixels[String(c.value)] || 0)])
    : Object.entries(pixels).map(([value, n]) => [{name: `Class ${value}`, colour: '#8a96a3', value}, Number(n)]);
  return h('section', {class: 'subsection', 'aria-labelledby': 'data-title'},
    h('h3', {id: 'data-title'}, 'Training data'),
    h('div', {class: 'data-grid'},
      h('dl', {class: 'facts'},
        h('dt', {}, 'Labels'), h('dd', {}, LABEL_SOURCE_TEXT[summary.labels] || summary.labels || '—'),
        h('dt', {}, 'Trained on'), h('dd', {class: 'mosaic-names', dataset: {role: 'train'}},
          mosaicList(summary.train_mosaics)),
        h('dt', {}, 'Validation'), h('dd', {class: 'mosaic-names'}, mosaicList(summary.validation_mosaics)),
        h('dt', {}, 'Held out'), h('dd', {class: 'mosaic-names'}, mosaicList(summary.held_out_mosaics)),
        h('dt', {}, 'Schedule'), h('dd', {}, [
          isNum(summary.epochs) ? plural(summary.epochs, 'epoch') : null,
          isNum(summary.steps_per_epoch) ? `${plural(summary.steps_per_epoch, 'step')} each` : null,
          isNum(summary.lr) ? `learning rate ${formatLr(summary.lr)}` : null].filter(Boolean).join(' · ') || '—')),
      h('div', {class: 'pixel-bars', role: 'table', 'aria-label': 'Labelled training pixels per class'},
        h('div', {class: 'pixel-total muted small'}, `${formatInt(total)} labelled training pixels`),
        rows.map(([cls, n]) => h('div', {class: 'pixel-row', role: 'row'},
          h('span', {class: 'pixel-name', role: 'rowheader'}, h('span', {class: 'class-swatch',
            style: {background: cls.colour}}), cls.name),
          h('span', {class: 'pixel-track', 'aria-hidden': 'true'}, h('span', {class: 'pixel-fill',
            style: {width: `${(100 * n) / largest}%`, background: cls.colour}})),
          h('span', {class: 'pixel-count num', role: 'cell'}, formatInt(n),
            h('span', {class: 'muted'}, total ? ` · ${((100 * n) / total).toFixed(1)} %` : '')))))));
}

function epochHistory(version) {
  const rows = (version.training_summary || {}).history || [];
  if (!rows.length) return null;
  const holder = h('div', {class: 'chart chart-small', id: 'history-chart'});
  const section = h('section', {class: 'subsection', 'aria-labelledby': 'history-title'},
    h('h3', {id: 'history-title'}, 'Epochs'),
    h('div', {class: 'history-grid'},
      h('div', {class: 'table-scroll'}, h('table', {class: 'table history-table'},
        h('thead', {}, h('tr', {}, ['Epoch', 'Train loss', 'Val. loss', 'Val. mean Dice', 'Val. accuracy']
          .map((label, i) => h('th', {scope: 'col', class: i ? 'num' : null}, label)))),
        h('tbody', {}, rows.map((row) => h('tr', {},
          h('td', {}, String(row.epoch)), h('td', {class: 'num'}, dec(row.train_loss, 4)),
          h('td', {class: 'num'}, dec(row.val_loss, 4)), h('td', {class: 'num'}, pct(row.val_mean_dice)),
          h('td', {class: 'num'}, pct(row.val_accuracy))))))),
      rows.length > 1 ? h('figure', {class: 'chart-figure'}, holder) : null));
  if (rows.length > 1) {
    if (historyChart) historyChart.disconnect();
    historyChart = new LineChart(holder, {height: 200, label: 'Loss and validation Dice per epoch', xLabel: 'Epoch',
      leftLabel: 'Loss', rightLabel: 'Val. Dice', rightDomain: [0, 1], rightFormat: (v) => `${Math.round(v * 100)} %`});
    const series = [
      {key: 'train', label: 'Train loss', colour: COLOURS.loss, dots: true, width: 2,
        points: rows.map((r) => [r.epoch, isNum(r.train_loss) ? r.train_loss : null])},
      {key: 'val-loss', label: 'Validation loss', colour: COLOURS.valLoss, dash: '5 4', dots: true,
        points: rows.map((r) => [r.epoch, isNum(r.val_loss) ? r.val_loss : null])},
      {key: 'val-dice', label: 'Validation mean Dice', colour: COLOURS.dice, axis: 'right', dots: true, width: 2,
        points: rows.map((r) => [r.epoch, isNum(r.val_mean_dice) ? r.val_mean_dice : null])},
    ].filter((one) => one.points.some(([, y]) => y !== null));
    historyChart.update({series, xDomain: [1, rows.length], xTicks: rows.map((r) => r.epoch)});
    holder.after(legend(series));
  }
  return section;
}

function otherFigures(metrics) {
  const rows = Object.entries(metrics || {}).filter(([key, v]) => isNum(v) &&
    !['mean_dice', 'accuracy', 'kappa'].includes(key));
  if (!rows.length) return null;
  return h('dl', {class: 'facts facts-inline'}, rows.map(([key, v]) => [h('dt', {}, key.replaceAll('_', ' ')),
    h('dd', {class: 'num'}, Math.abs(v) <= 1 ? dec(v, 4) : formatInt(v))]));
}

function renderComparison() {
  const list = comparable();
  comparison.hidden = list.length === 0;
  if (!list.length) return;
  if (!list.some((v) => v.id === state.compareId)) state.compareId = defaultCompare();
  const version = versionById(state.compareId);
  replaceChildren(compareSelect, list.map((v) => h('option', {value: v.id, selected: v.id === state.compareId},
    `v${v.id} (${(STATUS_LABELS[v.status] || v.status).toLowerCase()}) · ${v.name}`)));
  comparison.dataset.versionId = String(version.id);
  const held = heldOut(version);
  const parent = held && version.metrics.parent_held_out && Object.keys(version.metrics.parent_held_out).length
    ? version.metrics.parent_held_out : null;
  const parentVersion = version.parent ? versionById(version.parent) : null;
  document.getElementById('comparison-title').textContent = parent ? 'Compare with its parent' : 'Figures';
  replaceChildren(comparisonSub, statusBadge(version.status), ' ', h('strong', {}, version.name), ' ',
    versionTag(version.id),
    version.parent ? [' fine-tuned from ', h('strong', {}, version.parent_name || 'its parent'), ' ',
      versionTag(version.parent), parentVersion ? ` (${(STATUS_LABELS[parentVersion.status] || '').toLowerCase()})`
        : ''] : '',
    held ? ((held.mosaics || []).length ? ` · scored on ${plural(held.mosaics.length, 'held-out mosaic')}`
      : ' · scored on held-out data recorded with its weights') +
      (isNum(held.labelled_pixels) ? `, ${formatInt(held.labelled_pixels)} labelled pixels` : '') : '');

  const parts = [];
  if (held) {
    parts.push(h('div', {class: 'tiles'},
      tile('Mean Dice', held.mean_dice, parent && parent.mean_dice,
        {hint: 'Mean of the per-class Dice over the classes present in the held-out labels'}),
      tile('Overall accuracy', held.accuracy, parent && parent.accuracy),
      tile('Cohen’s kappa', held.kappa, parent && parent.kappa, {points: false})));
    const layout = h('div', {class: 'comparison-grid'});
    const bars = diceBars(held, parent, version);
    const table = perClassTable(held, parent);
    if (bars) layout.append(bars);
    if (table) layout.append(h('div', {}, h('h3', {}, 'Per class'), table));
    parts.push(layout);
    if (!parent && version.parent) {
      parts.push(h('p', {class: 'hint'}, 'The parent has no figures on these mosaics.'));
    }
  } else {
    const own = version.metrics || {};
    const roundWithoutHeldOut = 'held_out' in own;
    parts.push(h('div', {class: 'alert'}, h('p', {}, h('strong', {}, 'No held-out figures. '), roundWithoutHeldOut
      ? 'No mosaic was held out when this round ran, so nothing scored it. Mark a few well-labelled mosaics as ' +
        'held out and fine-tune again to compare versions.'
      : Object.values(own).some(isNum)
        ? 'The figures below were recorded with the weights file (their own validation), not on this site’s ' +
          'held-out mosaics; fine-tune this version to score a candidate and it on the held-out set.'
        : 'Fine-tune this version to score a candidate and it on the held-out mosaics.')));
    const foot = h('span', {class: 'muted'}, 'recorded with the weights');
    const ownTiles = [['mean_dice', 'Mean Dice', true], ['accuracy', 'Overall accuracy', true],
      ['kappa', 'Cohen’s kappa', false]].filter(([key]) => isNum(own[key]))
      .map(([key, label, points]) => tile(label, own[key], null, {points, foot: foot.cloneNode(true)}));
    if (ownTiles.length) parts.push(h('div', {class: 'tiles'}, ownTiles));
    const table = perClassTable(own, null);
    if (table) parts.push(h('div', {}, h('h3', {}, 'Per class'), table));
    const other = otherFigures(own);
    if (other) parts.push(other);
  }
  const agreement = reviewAgreement(version);
  if (agreement) parts.push(h('div', {class: 'subsections'}, agreement));
  const data = trainingData(version);
  const epochs = epochHistory(version);
  if (data || epochs) parts.push(h('div', {class: 'subsections'}, data, epochs));
  replaceChildren(comparisonBody, parts);
}

// ---- launch form and held-out set (admins) ------------------------------------------------------------------

const form = document.getElementById('launch-form');

function renderLaunchForm() {
  if (!form) return;
  const select = document.getElementById('base-select');
  const choices = state.versions.filter((v) => ['active', 'candidate', 'retired'].includes(v.status));
  const previous = select.value;
  const active = choices.find((v) => v.status === 'active');
  replaceChildren(select, choices.map((v) => h('option', {value: v.id},
    `v${v.id} (${STATUS_LABELS[v.status].toLowerCase()}) · ${v.name}`)));
  // The active version, unless the admin picked another one (that choice stays while it can be fine-tuned).
  if (select.dataset.chosen && choices.some((v) => String(v.id) === previous)) select.value = previous;
  else if (active) select.value = String(active.id);
  const job = state.trainJob;
  const running = job && ACTIVE_JOB_STATES.has(job.state);
  const note = document.getElementById('launch-running');
  note.hidden = !running;
  if (running) {
    replaceChildren(note, `Round #${job.id} is ${job.state}: it is shown at the top of the page. One round runs at a ` +
      'time; this form opens again when it ends.');
  }
  const none = choices.length === 0;
  document.getElementById('launch-fields').disabled = Boolean(running) || none;
  document.getElementById('launch-button').disabled = Boolean(running) || none;
  const held = [...state.mosaics.values()].filter((m) => m.status === 'ready' && m.held_out).length;
  document.getElementById('launch-summary').textContent = none ? 'Register a model version first.'
    : held ? `${plural(held, 'held-out mosaic')} will score the candidate.`
      : 'No mosaic is held out: the candidate will have no held-out figures.';
}

function clearFieldErrors() {
  for (const el of form.querySelectorAll('[data-error-for]')) {
    el.hidden = true;
    el.textContent = '';
  }
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  const box = document.getElementById('launch-error');
  box.hidden = true;
  box.replaceChildren();
}

function showLaunchError(error) {
  const data = error.data && typeof error.data === 'object' && !Array.isArray(error.data) ? error.data : null;
  let placed = false;
  if (data) {
    for (const [field, messages] of Object.entries(data)) {
      const slot = form.querySelector(`[data-error-for="${field}"]`);
      if (!slot) continue;
      slot.hidden = false;
      slot.textContent = [].concat(messages).join(' ');
      const input = form.querySelector(`[name="${field}"]`);
      if (input) input.setAttribute('aria-invalid', 'true');
      placed = true;
    }
  }
  const box = document.getElementById('launch-error');
  const detail = data && data.detail ? data.detail : placed ? 'Some settings are not accepted: see the fields above.'
    : error.message;
  replaceChildren(box, h('p', {}, h('strong', {}, 'Not started. '), detail));
  box.hidden = false;
}

form?.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearFieldErrors();
  const base = document.getElementById('base-select').value;
  const number = (name) => {
    const raw = form.elements[name].value.trim();
    return raw === '' ? undefined : Number(raw);
  };
  const body = {labels: form.elements.labels.value, epochs: number('epochs'), lr: number('lr'),
    steps_per_epoch: number('steps_per_epoch'), seed: number('seed')};
  const button = document.getElementById('launch-button');
  let launched = false;
  button.disabled = true;
  button.textContent = 'Starting…';
  try {
    const {status, data: job} = await postWithStatus(apiUrl(`model-versions/${base}/finetune/`), body);
    if (status === 200) {
      showBanner(`A round was already running (#${job.id}): it is shown above instead of starting a second one.`,
        'info');
    } else {
      showBanner('');
    }
    state.trainJob = job;
    state.watchedTrainJob = job.id;
    launched = true;
  } catch (error) {
    showLaunchError(error);
    button.disabled = false;
  } finally {
    button.textContent = 'Start fine-tuning';
    await refreshNow();
  }
  if (launched) training.scrollIntoView({behavior: 'smooth', block: 'start'});
});

const heldOutList = document.getElementById('held-out-list');
const heldOutFilter = document.getElementById('held-out-filter');

function renderHeldOut() {
  if (!heldOutList) return;
  const ready = [...state.mosaics.values()].filter((m) => m.status === 'ready');
  const held = ready.filter((m) => m.held_out).length;
  document.getElementById('held-out-count').textContent = ready.length
    ? `${held} of ${plural(ready.length, 'ready mosaic')} held out` : '';
  document.getElementById('held-out-empty').hidden = ready.length > 0;
  heldOutFilter.hidden = ready.length < FILTER_FROM;
  const needle = heldOutFilter.value.trim().toLowerCase();
  const shown = ready.filter((m) => !needle || m.name.toLowerCase().includes(needle))
    .sort((a, b) => Number(b.held_out) - Number(a.held_out) || a.name.localeCompare(b.name));
  replaceChildren(heldOutList, shown.map((m) => {
    const id = `held-out-${m.id}`;
    return h('li', {class: `held-out-item${m.held_out ? ' is-held' : ''}`, dataset: {mosaicId: m.id}},
      m.thumbnail_url ? h('img', {src: m.thumbnail_url, alt: '', width: 36, height: 36, loading: 'lazy'})
        : h('span', {class: 'thumb-mini'}),
      h('label', {for: id, class: 'held-out-name'}, h('span', {}, m.name),
        h('span', {class: 'sub'}, m.held_out ? 'held out: scores candidates' : 'available for training')),
      h('input', {type: 'checkbox', role: 'switch', id, class: 'switch', checked: m.held_out,
        'aria-label': `Hold out ${m.name} for evaluation`, onchange: (event) => toggleHeldOut(m, event.target)}),
      h('p', {class: 'field-error', hidden: true}));
  }));
}

async function toggleHeldOut(mosaic, input) {
  const wanted = input.checked;
  const item = input.closest('li');
  const error = item.querySelector('.field-error');
  input.disabled = true;
  error.hidden = true;
  try {
    const updated = await request('PATCH', apiUrl(`mosaics/${mosaic.id}/`), {body: {held_out: wanted}});
    state.mosaics.set(updated.id, updated);
    renderHeldOut();
    renderLaunchForm();
  } catch (err) {
    input.checked = !wanted;
    input.disabled = false;
    error.textContent = err.message;
    error.hidden = false;
  }
}

heldOutFilter?.addEventListener('input', renderHeldOut);
document.getElementById('base-select')?.addEventListener('change', (event) => {
  event.target.dataset.chosen = 'true';
});

// ---- loading and polling ------------------------------------------------------------------------------------

async function loadMosaics() {
  const all = new Map();
  for (let offset = 0; offset < MOSAIC_CAP; offset += MOSAIC_PAGE) {
    const data = await getJSON(apiUrl(`mosaics/?limit=${MOSAIC_PAGE}&offset=${offset}`));
    for (const m of data.results) all.set(m.id, m);
    if (offset + MOSAIC_PAGE >= data.count) break;
  }
  state.mosaics = all;
}

async function refreshAll() {
  const versions = await getJSON(apiUrl('model-versions/?limit=1000'));
  state.versions = versions.results;
  const jobs = [];
  if (canManage) jobs.push(getJSON(apiUrl('jobs/?kind=train&limit=1')).then((d) => d.results[0] || null));
  else jobs.push(Promise.resolve(null));
  const active = state.versions.find((v) => v.status === 'active');
  jobs.push(active ? getJSON(apiUrl(`jobs/?kind=predict&model_version=${active.id}&limit=${PREDICT_JOBS_LIMIT}`))
    .then((d) => d.results) : Promise.resolve([]));
  const [trainJob, predictJobs] = await Promise.all(jobs);
  const ended = state.watchedTrainJob && trainJob && trainJob.id === state.watchedTrainJob &&
    !ACTIVE_JOB_STATES.has(trainJob.state);
  if (trainJob && ACTIVE_JOB_STATES.has(trainJob.state)) state.watchedTrainJob = trainJob.id;
  state.trainJob = trainJob;
  state.predictJobs = predictJobs;
  if (ended) {
    state.watchedTrainJob = null;
    if (trainJob.state === 'succeeded' && trainJob.params.candidate) state.compareId = Number(trainJob.params.candidate);
  }
  page.dataset.state = 'ready';
  if (!comparable().some((v) => v.id === state.compareId)) state.compareId = defaultCompare();
  renderVersions();
  renderTraining(trainJob);
  renderRepredict();
  renderComparison();
  renderLaunchForm();
  renderHeldOut();
  const isTraining = (trainJob && ACTIVE_JOB_STATES.has(trainJob.state)) ||
    state.versions.some((v) => v.status === 'training');
  const predicting = predictJobs.some((job) => ACTIVE_JOB_STATES.has(job.state));
  page.dataset.live = isTraining || predicting ? 'on' : 'off';
  return isTraining || predicting;
}

const poller = new Poller(refreshAll, {
  onError: (error) => {
    if (error.sessionEnded) showBanner('Your session ended. Reload the page to log in again.', 'error');
    else showBanner(`${error.message} Retrying…`);
  },
  onRecover: () => showBanner(''),
});

/** After an action: refresh at once, and keep polling if something now runs. */
async function refreshNow() {
  try {
    if (await refreshAll()) poller.poke();
  } catch (error) {
    showBanner(error.message, 'error');
  }
}

showDiscarded.addEventListener('change', renderVersions);

async function start() {
  try {
    const [classes] = await Promise.all([getJSON(apiUrl('label-classes/')), loadMosaics()]);
    state.classes = Array.isArray(classes) ? classes : classes.results || [];
  } catch (error) {
    showBanner(`Could not load the mosaics or label classes: ${error.message}`, 'error');
  }
  poller.poke();
}

start();
window.addEventListener('focus', () => poller.poke());
