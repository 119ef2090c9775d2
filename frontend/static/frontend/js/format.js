// Number, size and date formats shared by every page (one place, so the list, upload and viewer agree).

const INTEGER = new Intl.NumberFormat('en-US', {maximumFractionDigits: 0});

export const STATUS_LABELS = {
  uploaded: 'Uploaded',
  ingesting: 'Ingesting',
  ready: 'Ready',
  failed: 'Failed',
};

export const JOB_KIND_LABELS = {
  ingest: 'Ingest',
  predict: 'Prediction',
  train: 'Fine-tuning',
  evaluate: 'Evaluation',
};

export const UM_SOURCE_LABELS = {
  given: 'set at upload',
  file: 'from file tags',
  default: 'default (no tags)',
};

export function formatInt(value) {
  return INTEGER.format(value);
}

/** "12,000 × 9,500 px" */
export function formatPx(width, height) {
  return `${formatInt(width)} × ${formatInt(height)} px`;
}

/** Millimetres with a precision that suits the size: "12.0", "3.25", "0.512". */
export function formatMmValue(mm) {
  if (mm >= 10) return mm.toFixed(1);
  if (mm >= 1) return mm.toFixed(2);
  return mm.toFixed(3);
}

/** "12.0 × 9.50 mm" */
export function formatMm(widthMm, heightMm) {
  return `${formatMmValue(widthMm)} × ${formatMmValue(heightMm)} mm`;
}

/** "1.00 µm/px", "0.500 µm/px" (three significant digits). */
export function formatUmPerPx(value) {
  return `${Number(value).toPrecision(3)} µm/px`;
}

export function formatBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** Whole percent of a 0..1 fraction, clamped. */
export function percent(fraction) {
  const value = Number.isFinite(fraction) ? fraction : 0;
  return Math.round(Math.max(0, Math.min(1, value)) * 100);
}

const DATE = new Intl.DateTimeFormat('en-GB', {
  day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit',
});

/** "27 Nov 2026, 09:53" in the browser's time zone. */
export function formatDate(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : DATE.format(date);
}
