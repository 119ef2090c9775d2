// Talking to the rcmweb REST API from the pages: session cookie + CSRF header, errors as readable text.

/** An API answer that was not 2xx, or no answer at all (status 0). `message` is meant for people. */
export class ApiError extends Error {
  constructor(message, status = 0, data = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.data = data;
  }

  /** True when the session ended (logged out elsewhere, expired): the page should offer to log in again. */
  get sessionEnded() {
    return this.status === 401 || (this.status === 403 && /credentials|authenticat/i.test(this.message));
  }
}

/** The API root from the page (`<body data-api-root="/api/">`), so no script hard-codes a URL prefix. */
export function apiUrl(path = '') {
  const root = document.body.dataset.apiRoot || '/api/';
  return root + path.replace(/^\//, '');
}

export function csrfToken() {
  const field = document.querySelector('input[name="csrfmiddlewaretoken"]');
  if (field && field.value) return field.value;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

/**
 * Turn a DRF error body into one readable text: {"detail": "..."}, {"file": ["..."]}, ["..."], or plain text.
 * Field names other than `detail` / `non_field_errors` / `file` are kept as a prefix ("um_per_px: ...").
 */
export function errorText(data, status) {
  const parts = [];
  const walk = (value, field) => {
    if (value === null || value === undefined) return;
    if (Array.isArray(value)) {
      value.forEach((item) => walk(item, field));
    } else if (typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) walk(inner, key);
    } else {
      const quiet = !field || ['detail', 'non_field_errors', 'file'].includes(field);
      parts.push(quiet ? String(value) : `${field}: ${value}`);
    }
  };
  walk(data, null);
  if (parts.length) return parts.join(' ');
  return status ? `The server answered ${status}.` : 'No answer from the server.';
}

async function parseBody(response) {
  const type = response.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  const text = await response.text();
  return text.length < 500 ? text : null;
}

/** Any request; resolves with the parsed body of a 2xx answer, rejects with ApiError otherwise. */
export async function request(method, url, {body = undefined, signal = undefined} = {}) {
  const headers = {Accept: 'application/json'};
  const init = {method, headers, credentials: 'same-origin', signal};
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRFToken'] = csrfToken();
  if (body !== undefined) {
    if (body instanceof FormData) {
      init.body = body;
    } else {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError('Cannot reach the server. Check the connection; the page retries on its own.', 0);
  }
  const data = await parseBody(response);
  if (!response.ok) throw new ApiError(errorText(data, response.status), response.status, data);
  return data;
}

export const getJSON = (url, options) => request('GET', url, options);

/**
 * POST a FormData with XMLHttpRequest, which (unlike fetch) reports upload progress.
 * onProgress(loadedBytes, totalBytes) runs while the body is sent; onSent() once all bytes left the browser
 * (the server then checks the file before it answers).
 * Resolves {status, data} for 2xx; rejects ApiError otherwise. `signal` aborts.
 */
export function uploadWithProgress(url, formData, {onProgress = () => {}, onSent = () => {}, signal} = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.responseType = 'text';
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('X-CSRFToken', csrfToken());
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.upload.onload = () => onSent();
    xhr.onload = () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = xhr.responseText && xhr.responseText.length < 500 ? xhr.responseText : null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve({status: xhr.status, data});
      else if (xhr.status === 413) reject(new ApiError('The file is larger than the web server accepts.', 413, data));
      else reject(new ApiError(errorText(data, xhr.status), xhr.status, data));
    };
    xhr.onerror = () => reject(new ApiError('The upload was interrupted: the connection to the server failed.', 0));
    xhr.onabort = () => reject(new ApiError('Upload cancelled.', 0));
    if (signal) signal.addEventListener('abort', () => xhr.abort(), {once: true});
    xhr.send(formData);
  });
}
