// Importing an expert label map into an open mosaic from the viewer (admins; the page only sends this module and
// its form to them). "Import labels…" in the layers panel opens a small form: the file, a value mapping (the Upload
// page's syntax, labelmaps.js), an optional layer name. The file goes to POST /api/mosaics/{id}/labels/ with a
// byte progress bar; a refusal (wrong size, values the mapping does not cover, unreadable file) is shown as the
// server words it and changes nothing; an accepted map becomes a row of the layers panel at once, shown, with its
// class areas in the legend.
//
// The form's data-state tells the page's state: idle | uploading | checking | done | refused | error.

import {ApiError, uploadWithProgress} from './api.js';
import {formatBytes, percent} from './format.js';
import {
  acceptedExtensions, parseValueMapping, precheckLabelFile, showFieldError,
} from './labelmaps.js';
import {formatArea} from './legend.js';
import {app} from './viewer.js';

export class LabelImport {
  /**
   * @param {object} options
   * @param {HTMLFormElement} options.form the #label-import form of viewer.html
   * @param {HTMLButtonElement} options.toggle the "Import labels…" button that opens and closes it
   * @param {object} options.viewerApp the ViewerApp, whose `overlays` controller lists the layers
   */
  constructor({form, toggle, viewerApp}) {
    this.form = form;
    this.toggle = toggle;
    this.app = viewerApp;
    this.url = form.dataset.apiUrl;
    this.maxBytes = Number(form.dataset.maxBytes);
    this.fileInput = form.querySelector('#label-import-file');
    this.accepted = acceptedExtensions(this.fileInput);
    this.chooseButton = form.querySelector('#label-import-choose');
    this.fileName = form.querySelector('#label-import-file-name');
    this.fileError = form.querySelector('#label-import-file-error');
    this.mappingInput = form.querySelector('#label-import-mapping');
    this.mappingError = form.querySelector('#label-import-mapping-error');
    this.nameInput = form.querySelector('#label-import-name');
    this.progress = form.querySelector('.label-import-progress');
    this.bar = form.querySelector('.bar');
    this.fill = form.querySelector('.bar-fill');
    this.stateLine = form.querySelector('.label-import-state');
    this.error = form.querySelector('.label-import-error');
    this.submitButton = form.querySelector('#label-import-submit');
    this.closeButton = form.querySelector('#label-import-close');
    this.file = null;
    this.busy = false;
    this.abort = null; // AbortController of the upload while its bytes are being sent
    this.#bind();
  }

  get open() {
    return !this.form.hidden;
  }

  setOpen(open) {
    if (!open && this.busy) return; // the import in flight keeps the form (and its progress) in view
    this.form.hidden = !open;
    this.toggle.setAttribute('aria-expanded', String(open));
    this.toggle.classList.toggle('active', open);
    if (open) this.chooseButton.focus();
  }

  /** A label map picked (or null): the checks the browser can make now; the server checks everything again. */
  setFile(file) {
    this.file = file;
    this.fileName.textContent = file ? `${file.name} · ${formatBytes(file.size)}` : 'No file chosen';
    this.fileName.classList.toggle('muted', !file);
    showFieldError(this.chooseButton, this.fileError,
      file ? precheckLabelFile(file, {accepted: this.accepted, maxBytes: this.maxBytes}) : '');
    this.#setError('');
    if (file && this.form.dataset.state !== 'idle') this.#setState('idle');
    this.#refresh();
  }

  #readMapping() {
    const {mapping, message} = parseValueMapping(this.mappingInput.value);
    showFieldError(this.mappingInput, this.mappingError, message);
    return [!message, mapping];
  }

  #refresh() {
    const fileOk = Boolean(this.file) && this.fileError.hidden;
    this.submitButton.disabled = this.busy || !fileOk;
    this.submitButton.textContent = this.busy ? 'Importing…' : 'Import';
    this.chooseButton.disabled = this.busy;
    this.mappingInput.disabled = this.busy;
    this.nameInput.disabled = this.busy;
    this.closeButton.textContent = this.abort ? 'Cancel' : 'Close';
    this.closeButton.disabled = this.busy && !this.abort; // once sent, the server decides; the answer is awaited
  }

  #setState(state, text = '', fraction = null) {
    this.form.dataset.state = state;
    this.progress.hidden = state === 'idle' || state === 'refused' || state === 'error';
    this.bar.classList.toggle('bar-indeterminate', fraction === null);
    this.bar.classList.toggle('bar-done', state === 'done');
    if (fraction === null) {
      this.fill.style.width = '';
      this.bar.removeAttribute('aria-valuenow');
    } else {
      this.fill.style.width = `${percent(fraction)}%`;
      this.bar.setAttribute('aria-valuenow', String(percent(fraction)));
    }
    this.stateLine.textContent = text;
  }

  #setError(message) {
    this.error.hidden = !message;
    this.error.textContent = message;
  }

  async submit() {
    if (this.busy) return;
    if (!this.file) {
      showFieldError(this.chooseButton, this.fileError, 'Choose the label map file first.');
      return;
    }
    const [mappingOk, mapping] = this.#readMapping();
    if (!mappingOk) {
      this.mappingInput.focus();
      return;
    }
    const file = this.file;
    const data = new FormData();
    data.append('file', file, file.name);
    if (mapping) data.append('value_mapping', JSON.stringify(mapping));
    const name = this.nameInput.value.trim();
    if (name) data.append('name', name);

    this.busy = true;
    this.abort = new AbortController();
    this.#setError('');
    this.#setState('uploading', `Uploading · 0 % · 0 B of ${formatBytes(file.size)}`, 0);
    this.#refresh();
    let layer = null;
    try {
      const answer = await uploadWithProgress(this.url, data, {
        signal: this.abort.signal,
        onProgress: (loaded, total) => {
          this.#setState('uploading',
            `Uploading · ${percent(loaded / total)} % · ${formatBytes(loaded)} of ${formatBytes(total)}`, loaded / total);
        },
        onSent: () => {
          this.abort = null;
          this.#setState('checking', 'Checking the label map (size, values)…');
          this.#refresh();
        },
      });
      layer = answer.data;
    } catch (error) {
      const refused = error instanceof ApiError && error.status >= 400 && error.status < 500;
      this.#setState(refused ? 'refused' : 'error');
      // The server's reason, as it words it (errorText keeps a `file` reason bare and prefixes other fields).
      this.#setError(refused ? `Not imported: ${error.message}` : error.message);
    } finally {
      this.busy = false;
      this.abort = null;
      this.#refresh();
    }
    if (layer) await this.#show(layer, file);
  }

  /** The new layer: listed (the layers panel fetches /layers/ again), shown, and its areas in the legend. */
  async #show(layer, file) {
    const mm2 = layer.labelled_pixels * (this.app.mosaic.working_um_per_px / 1000) ** 2;
    this.fileInput.value = '';
    this.setFile(null);
    this.#setState('checking', 'Imported; adding the layer…');
    const overlays = this.app.overlays;
    try {
      await overlays.refresh();
      if (overlays.entries.has(layer.key)) overlays.panel.setVisible(layer.key, true); // its raster loads in its row
    } catch (error) {
      this.#setError(`The labels were imported, but the layers could not be updated: ${error.message} `
        + 'Reload the page to see them.');
    }
    this.#setState('done', `Added the layer “${layer.title}” · ${formatArea(mm2)} mm² labelled.`, 1);
    this.app.shell.dispatchEvent(new CustomEvent('rcm:labels-imported', {detail: {layer, file}, bubbles: true}));
  }

  #bind() {
    this.toggle.addEventListener('click', () => this.setOpen(!this.open));
    this.chooseButton.addEventListener('click', () => this.fileInput.click());
    this.fileInput.addEventListener('change', () => this.setFile(this.fileInput.files[0] || null));
    this.closeButton.addEventListener('click', () => {
      if (this.abort) this.abort.abort();
      else this.setOpen(false);
    });
    // Checked when the field is left; an error shown goes away while the value is corrected.
    this.mappingInput.addEventListener('change', () => this.#readMapping());
    this.mappingInput.addEventListener('input', () => {
      if (!this.mappingError.hidden) this.#readMapping();
    });
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    this.form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !this.busy) {
        event.preventDefault();
        this.setOpen(false);
        this.toggle.focus();
      }
    });
  }
}

const form = document.getElementById('label-import');
const toggle = document.getElementById('label-import-toggle');
if (app && form && toggle) {
  // Offered once the layers are listed: the new layer joins that list (and the mosaic is ready by then).
  app.ready.then((viewerApp) => viewerApp.overlays.ready).then(() => {
    app.labelImport = new LabelImport({form, toggle, viewerApp: app});
    toggle.hidden = false;
  }).catch(() => {}); // the viewer and the layers panel show their own failures
}
