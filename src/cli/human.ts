/** Numbers and durations as people read them (the CLI's text output; --json keeps full precision). */

/** A metric to 4 significant digits, trailing zeros dropped: 0.30123456 → 0.3012, 1234.56 → 1235. */
export function significant(v: number, digits = 4): string {
  if (!Number.isFinite(v)) return String(v);
  return String(Number(v.toPrecision(digits)));
}

/** Fixed four decimals for live metrics (their width does not jump between redraws); exponent when that would hide the value. */
export function fixedMetric(v: number | undefined): string {
  if (v === undefined) return '-';
  return Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toFixed(4);
}

/** Seconds as `12s`, `3m07s`, `1h05m`, `2d03h`; `?` when unknown. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (d > 0) return `${d}d${pad(h)}h`;
  if (h > 0) return `${h}h${pad(m)}m`;
  if (m > 0) return `${m}m${pad(s % 60)}s`;
  return `${s}s`;
}

/** A rate such as steps per second: 3 significant digits, at least the integer part. */
export function rate(v: number): string {
  return v >= 100 ? String(Math.round(v)) : String(Number(v.toPrecision(3)));
}
