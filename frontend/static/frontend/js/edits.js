// The edits of a review on their way to the server: drawn at once on the label overlay, then posted one at a time,
// in order, each with the revision the one before it produced. The overlay always shows the confirmed layer plus
// the pending edits drawn on top:
//   - an edit the server accepts: the pending edits are lifted off (newest first), the server's pixels for the box
//     it rewrote are written, and the pending edits are drawn again on top;
//   - an edit the server refuses (4xx): it is lifted off and dropped, the ones after it stay; a stale revision or a
//     submitted review (409) drops every pending edit and the page reloads the layer (onResync);
//   - no answer (network, 5xx): tried again after a pause, a few times, then handled like a 409.
//
// Usage: const queue = new EditQueue({overlay, revision, send, ...});
//        const op = queue.add({kind: 'edit', body, change});   // change: a LocalChange already drawn (or null)
//        queue.add({kind: 'undo'}); queue.add({kind: 'redo'});
//        An op added with open: true (a stroke still being drawn) waits, and blocks the ops after it, until
//        queue.close(op, body) gives its final body.

import {decodePatch} from './geometry.js';

// Tries for an edit that got no answer (network down, server restarting) before it is dropped: 1 + 3 retries
// over ~7 s rides out a server reload without leaving the expert unsure for long.
export const MAX_SEND_ATTEMPTS = 4;
// First pause before trying again; doubles each time (1, 2, 4 s).
export const RETRY_DELAY_MS = 1000;

/**
 * Pixels an edit changed on a LabelOverlay, kept so they can be lifted off again. `redraw(change)` draws the
 * whole edit (used again after the layer under it changed); while a stroke is drawn, `apply` adds its segments.
 */
export class LocalChange {
  constructor(overlay, redraw) {
    this.overlay = overlay;
    this.redraw = redraw;
    this.records = [];
  }

  /** Write `values` (a class value, or bytes) into `region` where `mask` is set; remember what was there. */
  apply(region, values, mask = null) {
    this.records.push({region, previous: this.overlay.setPixels(region, values, mask)});
  }

  /** Put back what was there before this change (this change must be the newest on the overlay). */
  revert() {
    for (let i = this.records.length - 1; i >= 0; i -= 1) {
      const {region, previous} = this.records[i];
      this.overlay.setPixels(region, previous);
    }
    this.records = [];
  }

  /** Draw the whole change again (after revert), on `overlay` if given (the layer was reloaded). */
  reapply(overlay = this.overlay) {
    this.overlay = overlay;
    this.records = [];
    this.redraw(this);
  }

  /** Forget the drawn pixels without touching the overlay (it was replaced). */
  forget() {
    this.records = [];
  }
}

export class EditQueue {
  /**
   * @param {object} options
   * @param {object} options.overlay the review's LabelOverlay
   * @param {number} options.revision the layer revision the overlay shows
   * @param {(op, revision) => Promise<object>} options.send posts one op; resolves with the server's answer
   *   (edit_result_data: revision, bbox, patch, ...) or rejects with an ApiError (status 0: no answer)
   * @param {(result, op) => void} [options.onConfirmed] after the server's pixels of an op are on the overlay
   * @param {(error, op, dropped) => void} [options.onRefused] an op was refused; `dropped`: ops dropped with it
   * @param {(error) => void} [options.onResync] the layer must be reloaded (stale revision, or no answer)
   * @param {() => void} [options.onChange] the number of pending ops changed
   */
  constructor({overlay, revision, send, onConfirmed = () => {}, onRefused = () => {}, onResync = () => {},
    onChange = () => {}, retryDelayMs = RETRY_DELAY_MS}) {
    this.overlay = overlay;
    this.revision = revision;
    this.send = send;
    this.onConfirmed = onConfirmed;
    this.onRefused = onRefused;
    this.onResync = onResync;
    this.onChange = onChange;
    this.retryDelayMs = retryDelayMs;
    this.ops = [];
    this.sending = null;
    this.nextId = 1;
    this.stopped = false;
    this.held = false;
  }

  /** Ops not yet confirmed (the one being sent included). */
  get pending() {
    return this.ops.length;
  }

  get idle() {
    return this.ops.length === 0;
  }

  /** Queue an op; returns it. {kind: 'edit' | 'undo' | 'redo', body, change: LocalChange | null, open} */
  add({kind, body = null, change = null, open = false}) {
    if (!['edit', 'undo', 'redo'].includes(kind)) throw new RangeError(`Unknown op kind ${kind}`);
    const op = {id: this.nextId, kind, body, change, open, attempts: 0};
    this.nextId += 1;
    this.ops.push(op);
    this.onChange();
    this.pump();
    return op;
  }

  /** A stroke is finished: its body is final and it may be sent. */
  close(op, body) {
    op.body = body;
    op.open = false;
    this.pump();
  }

  /** Drop an op that was never sent (an empty stroke); its pixels are lifted off. */
  discard(op) {
    const index = this.ops.indexOf(op);
    if (index < 0 || op === this.sending) return;
    this.#liftFrom(index);
    this.ops.splice(index, 1);
    this.#redrawFrom(index);
    this.onChange();
    this.pump();
  }

  /** The overlay was replaced (reloaded): pending edits are drawn on the new one. */
  setOverlay(overlay) {
    this.overlay = overlay;
    for (const op of this.ops) {
      if (op.change) {
        op.change.forget();
        op.change.reapply(overlay);
      }
    }
  }

  /** Send nothing until release() (while the layer is reloaded). */
  hold() {
    this.held = true;
  }

  release() {
    this.held = false;
    this.pump();
  }

  /** Resolves once no op is on its way to the server. */
  async settled() {
    while (this.sending) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  /** Stop sending and forget everything (the review is closed or submitted). */
  stop() {
    this.stopped = true;
    this.ops = [];
    this.onChange();
  }

  /** Resolves once nothing is pending (tests, submit). */
  async drained() {
    while (this.ops.length) await new Promise((resolve) => setTimeout(resolve, 20));
  }

  // Lift off the local pixels of ops[index..] (newest first).
  #liftFrom(index) {
    for (let i = this.ops.length - 1; i >= index; i -= 1) if (this.ops[i].change) this.ops[i].change.revert();
  }

  #redrawFrom(index) {
    for (let i = index; i < this.ops.length; i += 1) if (this.ops[i].change) this.ops[i].change.reapply(this.overlay);
  }

  async pump() {
    if (this.sending || this.stopped || this.held || !this.ops.length) return;
    const op = this.ops[0];
    if (op.open) return; // a stroke still being drawn holds the line, so edits reach the server in order
    this.sending = op;
    op.attempts += 1;
    let result = null;
    let failure = null;
    try {
      result = await this.send(op, this.revision);
    } catch (error) {
      failure = error;
    }
    this.sending = null;
    if (this.stopped || this.ops[0] !== op) return;
    if (result) this.#confirm(op, result);
    else await this.#fail(op, failure);
    this.pump();
  }

  #confirm(op, result) {
    this.#liftFrom(0);
    this.ops.shift();
    const [x0, y0, x1, y1] = result.bbox;
    if (x1 > x0 && y1 > y0) {
      this.overlay.setPixels({x: x0, y: y0, width: x1 - x0, height: y1 - y0}, decodePatch(result.patch));
    }
    this.revision = result.revision;
    this.#redrawFrom(0);
    this.onChange();
    this.onConfirmed(result, op);
  }

  async #fail(op, error) {
    const status = error && typeof error.status === 'number' ? error.status : 0;
    const noAnswer = status === 0 || status >= 500;
    if (noAnswer && op.attempts < MAX_SEND_ATTEMPTS) {
      await new Promise((resolve) => setTimeout(resolve, this.retryDelayMs * 2 ** (op.attempts - 1)));
      return; // pump sends it again
    }
    // A 409 names the layer's revision when this page's is stale: then the layer must be reloaded. Any other 409
    // (nothing to undo, no prediction to accept, the review submitted) is about the op itself: only it is dropped.
    const stale = status === 409 && Boolean(error.data) && Number.isInteger(error.data.revision)
      && error.data.revision !== this.revision;
    if (noAnswer || status === 404 || stale) {
      // The layer on the server is not what this page thinks (or cannot be reached): drop every pending edit.
      const dropped = this.ops.slice();
      this.#liftFrom(0);
      this.ops = this.ops.filter((other) => other.open); // a stroke under the pointer is finished, then sent
      for (const other of this.ops) if (other.change) other.change.reapply(this.overlay);
      if (error && error.data && Number.isInteger(error.data.revision)) this.revision = error.data.revision;
      this.onChange();
      this.onRefused(error, op, dropped.filter((other) => !this.ops.includes(other)));
      this.onResync(error);
      return;
    }
    // This op alone is wrong (bad geometry or class, forbidden, refused as it stands): drop it, keep the others.
    this.#liftFrom(0);
    this.ops.shift();
    this.#redrawFrom(0);
    this.onChange();
    this.onRefused(error, op, [op]);
  }
}
