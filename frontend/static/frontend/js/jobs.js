// Live progress of background jobs: a poller that runs only while something is active, and progress bars
// that are updated in place (so CSS transitions move smoothly instead of the DOM being rebuilt).

import {h} from './dom.js';
import {JOB_KIND_LABELS, percent} from './format.js';

// How often pages ask the API while a job runs. Jobs write progress at most every 0.5 s
// (inference.services.PROGRESS_WRITE_INTERVAL_S); 1.5 s keeps bars moving without loading the server.
export const POLL_INTERVAL_MS = 1500;
// After failed polls the wait doubles up to this, so a server restart does not get a burst of requests.
export const POLL_MAX_INTERVAL_MS = 15000;

export const ACTIVE_JOB_STATES = new Set(['queued', 'running']);
export const ACTIVE_MOSAIC_STATES = new Set(['uploaded', 'ingesting']);

/** True while a mosaic still changes on its own (being ingested, or any job of it queued or running). */
export function mosaicIsActive(mosaic) {
  return ACTIVE_MOSAIC_STATES.has(mosaic.status) || (mosaic.active_jobs || []).some((j) => ACTIVE_JOB_STATES.has(j.state));
}

/**
 * Calls `tick()` every `interval` ms for as long as it resolves true; stops when it resolves false.
 * Errors back off (doubling up to `maxInterval`) and are reported through `onError(error)`;
 * `onLive(isLive)` tells when polling starts and stops. Pauses while the tab is hidden and
 * refreshes at once when it comes back.
 */
export class Poller {
  constructor(tick, {interval = POLL_INTERVAL_MS, maxInterval = POLL_MAX_INTERVAL_MS, onError = () => {},
    onRecover = () => {}, onLive = () => {}} = {}) {
    this.tick = tick;
    this.interval = interval;
    this.maxInterval = maxInterval;
    this.onError = onError;
    this.onRecover = onRecover;
    this.onLive = onLive;
    this.timer = null;
    this.running = false;
    this.live = false;
    this.failures = 0;
    this.wanted = false;
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.wanted) this.poke();
    });
  }

  /** Run a tick now (and keep polling while it says active). */
  poke() {
    this.wanted = true;
    if (this.running) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.#run();
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = null;
    this.#setLive(false);
  }

  #setLive(live) {
    if (live !== this.live) {
      this.live = live;
      this.onLive(live);
    }
  }

  async #run() {
    this.running = true;
    let again = false;
    let delay = this.interval;
    try {
      again = Boolean(await this.tick());
      if (this.failures) this.onRecover();
      this.failures = 0;
    } catch (error) {
      this.failures += 1;
      again = !(error && error.sessionEnded);
      delay = Math.min(this.maxInterval, this.interval * 2 ** this.failures);
      this.onError(error);
    } finally {
      this.running = false;
    }
    this.#setLive(again);
    if (!again) {
      this.wanted = false;
      return;
    }
    if (document.hidden) return; // visibilitychange pokes us when the tab is shown again
    this.timer = setTimeout(() => this.#run(), delay);
  }
}

function jobLabel(job) {
  return JOB_KIND_LABELS[job.kind] || job.kind;
}

function jobText(job) {
  if (job.state === 'queued') return job.message || 'Waiting for a worker';
  return job.message || 'Running';
}

/** A progress block for one job: "Ingest · Building the pyramid · 25 %" above a bar. */
export function jobProgress(job) {
  const el = h('div', {class: 'job', dataset: {jobId: job.id}},
    h('div', {class: 'job-line'},
      h('span', {class: 'job-kind'}),
      h('span', {class: 'job-message'}),
      h('span', {class: 'job-percent'})),
    h('div', {class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100},
      h('div', {class: 'bar-fill'})));
  updateJobProgress(el, job);
  return el;
}

/** Update a block made by jobProgress() in place. */
export function updateJobProgress(el, job) {
  const pct = percent(job.progress);
  const queued = job.state === 'queued';
  el.dataset.state = job.state;
  el.querySelector('.job-kind').textContent = jobLabel(job);
  el.querySelector('.job-message').textContent = jobText(job);
  el.querySelector('.job-percent').textContent = queued ? '' : `${pct} %`;
  const bar = el.querySelector('.bar');
  bar.classList.toggle('bar-indeterminate', queued);
  bar.setAttribute('aria-label', `${jobLabel(job)} progress`);
  if (queued) {
    bar.removeAttribute('aria-valuenow');
    bar.setAttribute('aria-valuetext', 'Queued');
  } else {
    bar.setAttribute('aria-valuenow', String(pct));
    bar.removeAttribute('aria-valuetext');
  }
  el.querySelector('.bar-fill').style.width = queued ? '' : `${pct}%`;
}

/** Make `container` show exactly `jobs` (keyed by id): update bars that exist, add new ones, drop finished. */
export function syncJobs(container, jobs) {
  const existing = new Map([...container.querySelectorAll(':scope > .job')].map((el) => [el.dataset.jobId, el]));
  const keep = new Set();
  for (const job of jobs) {
    const key = String(job.id);
    keep.add(key);
    const el = existing.get(key);
    if (el) updateJobProgress(el, job);
    else container.append(jobProgress(job));
  }
  for (const [key, el] of existing) if (!keep.has(key)) el.remove();
}
