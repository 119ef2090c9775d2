// Formats of agreement figures, shared by the viewer's Review panel and the agreement page, so both write the same
// number the same way. Figures arrive as 0..1 fractions (null when undefined: no labelled pixel of a class).

export const isNum = (value) => typeof value === 'number' && Number.isFinite(value);

/** 0.8734 → "87.3 %"; undefined → "—". */
export function pct(value, digits = 1) {
  return isNum(value) ? `${(100 * value).toFixed(digits)} %` : '—';
}

/** Cohen's kappa with three decimals ("0.812", "−0.041"); undefined → "—". */
export function kappa(value) {
  if (!isNum(value)) return '—';
  return value < 0 ? `−${Math.abs(value).toFixed(3)}` : value.toFixed(3);
}

/** A change in percentage points ("+3.4 pp", "−1.2 pp", "±0.0 pp"); undefined → null. */
export function deltaPoints(value) {
  if (!isNum(value)) return null;
  const size = Math.abs(100 * value).toFixed(1);
  if (size === '0.0') return '±0.0 pp';
  return `${value > 0 ? '+' : '−'}${size} pp`;
}

/** A change of kappa ("+0.034", "−0.012"); undefined → null. */
export function deltaKappa(value) {
  if (!isNum(value)) return null;
  const size = Math.abs(value).toFixed(3);
  if (size === '0.000') return '±0.000';
  return `${value > 0 ? '+' : '−'}${size}`;
}

/** Working pixels as mm² ("0.0197 mm²", "1.23 mm²", "12.3 mm²"). */
export function pixelsToMm2(pixels, workingUmPerPx) {
  const mm2 = pixels * (workingUmPerPx / 1000) ** 2;
  if (!mm2) return '0 mm²';
  return `${mm2 >= 100 ? Math.round(mm2) : mm2.toPrecision(3)} mm²`;
}

/** The agreement report of a review from either place it comes in: {report: {...}} or the figures themselves. */
export function reportOf(agreement) {
  if (!agreement) return null;
  return 'report' in agreement ? agreement.report : agreement;
}
