// The viewer's "Prediction" panel: which model's prediction is shown and when it was made, the live progress of
// prediction jobs of this mosaic (polled like the mosaic list does), failures in words, and, for admins,
// "Predict again". When a job finishes, the page loads the new layer without a reload (onFinished).

import {apiUrl, getJSON, request} from './api.js';
import {h, replaceChildren} from './dom.js';
import {formatDate} from './format.js';
import {ACTIVE_JOB_STATES, Poller, syncJobs} from './jobs.js';

// Jobs asked for per poll: the running one and the few before it (to notice one that ended between polls).
const JOBS_PER_POLL = 10;
// With no job running, look again this often: a prediction started elsewhere (a model activated, another admin)
// shows within half a minute, at two small requests a minute per open viewer.
export const IDLE_POLL_MS = 30000;

export class PredictionStatus {
  /**
   * @param {object} options
   * @param {object} options.app the ViewerApp
   * @param {boolean} options.canPredict show "Predict again" (admins; the server checks too)
   * @param {(job: object) => Promise|void} options.onFinished a watched job succeeded: load the new layers
   */
  constructor({app, canPredict, onFinished}) {
    this.app = app;
    this.mosaicId = app.mosaic.id;
    this.onFinished = onFinished;
    this.watched = new Map(); // job id → last state seen while active
    this.summary = h('div', {class: 'prediction-summary'});
    this.jobs = h('div', {class: 'jobs prediction-jobs', 'aria-live': 'polite'});
    this.error = h('div', {class: 'alert alert-error prediction-error', role: 'alert'});
    this.error.hidden = true;
    this.button = canPredict ? h('button', {type: 'button', class: 'btn btn-secondary btn-small',
      'data-action': 'predict', title: 'Predict this mosaic again with the active model (admins)',
      onclick: () => this.predict()}, 'Predict again') : null;
    this.body = app.addPanelSection({id: 'prediction', title: 'Prediction', before: 'info',
      body: [this.summary, this.jobs, this.error,
        this.button ? h('div', {class: 'prediction-actions'}, this.button) : null]});
    this.poller = new Poller(() => this.#tick(), {
      onError: (error) => this.#showError(error.sessionEnded
        ? 'Your session ended. Reload the page to log in again.' : `Progress unavailable: ${error.message}`, 'poll'),
      onRecover: () => {
        if (this.error.dataset.kind === 'poll') this.#showError(null);
      },
    });
  }

  /** Start watching: any queued or running prediction of this mosaic shows at once, later ones within IDLE_POLL_MS. */
  start() {
    this.poller.poke();
    this.idleTimer = setInterval(() => {
      if (!document.hidden && !this.poller.live && !this.poller.running) this.poller.poke();
    }, IDLE_POLL_MS);
  }

  /** Summarise the predictions the page has (layers of kind 'prediction', newest model first). */
  setPredictions(predictions) {
    const active = predictions.find((p) => p.model_status === 'active');
    const shown = active || predictions[0];
    if (!shown) {
      replaceChildren(this.summary, h('p', {class: 'muted'}, 'No prediction of this mosaic yet.'));
      return;
    }
    replaceChildren(this.summary, h('dl', {class: 'info prediction-info'},
      h('dt', {}, active ? 'Active' : 'Newest'), h('dd', {class: 'prediction-model'}, shown.title),
      h('dt', {}, 'Predicted'), h('dd', {}, formatDate(shown.created_at)),
      predictions.length > 1 ? [h('dt', {}, 'Older'),
        h('dd', {}, `${predictions.length - 1} other model version${predictions.length > 2 ? 's' : ''}`)] : null));
  }

  /** Ask the server to predict this mosaic again with the active model (admins). */
  async predict() {
    if (!this.button) return;
    this.button.disabled = true;
    this.#showError(null);
    try {
      const job = await request('POST', apiUrl(`mosaics/${this.mosaicId}/predict/`));
      this.watched.set(job.id, job.state);
      syncJobs(this.jobs, [job]);
      this.poller.poke();
    } catch (error) {
      this.button.disabled = false;
      const why = error.status === 409
        ? `${error.message} An admin can activate a model version first.`
        : error.message;
      this.#showError(`Prediction not started: ${why}`);
    }
  }

  async #tick() {
    const page = await getJSON(apiUrl(`jobs/?mosaic=${this.mosaicId}&kind=predict&limit=${JOBS_PER_POLL}`));
    const jobs = Array.isArray(page) ? page : (page.results || []);
    const active = jobs.filter((job) => ACTIVE_JOB_STATES.has(job.state));
    for (const job of active) this.watched.set(job.id, job.state);
    syncJobs(this.jobs, active);
    this.body.dataset.jobs = String(active.length);
    if (this.button) this.button.disabled = active.length > 0;
    const finished = jobs.filter((job) => this.watched.has(job.id) && !ACTIVE_JOB_STATES.has(job.state));
    for (const job of finished) {
      // A failed onFinished (layers not reachable) throws: the job stays watched and the next poll tries again.
      if (job.state === 'succeeded') await this.onFinished(job);
      else if (job.state === 'failed') this.#showError(`Prediction failed: ${job.error || job.message || 'no reason given'}`);
      else if (job.state === 'cancelled') this.#showError('The prediction was cancelled.');
      this.watched.delete(job.id);
    }
    // Jobs that dropped out of the newest JOBS_PER_POLL cannot be followed any more.
    for (const id of [...this.watched.keys()]) if (!jobs.some((job) => job.id === id)) this.watched.delete(id);
    return active.length > 0;
  }

  /** Show (or clear, with null) the panel's error; kind 'poll' errors clear themselves once polling works again. */
  #showError(message, kind = 'job') {
    this.error.hidden = !message;
    this.error.textContent = message || '';
    this.error.dataset.kind = message ? kind : '';
  }
}
