/**
 * Bounded, escaped excerpts of data for error messages. Pure: usable anywhere. A message may name
 * a column or show a cell, but never carries a file: each excerpt is at most EXCERPT_CHARS
 * characters of the value (then `…`), JSON-escaped (quotes, backticks, control characters), and a
 * list shows at most a few of them.
 */
import { escapeText } from '../config/validate';

export const EXCERPT_CHARS = 16;
export const EXCERPT_ITEMS = 6;

/** The escaped first `max` characters of a value from data, `…` if there was more; no surrounding quotes. */
export function excerpt(value: unknown, max = EXCERPT_CHARS): string {
  const text = typeof value === 'string' ? value : String(value);
  const head = [...text].slice(0, max).join('');
  const escaped = escapeText(head).replace(/`/g, '\\`');
  return head.length < text.length ? `${escaped}…` : escaped;
}

/** At most `count` excerpts, comma-separated, then how many were left out: for lists of column names. */
export function excerptList(values: readonly unknown[], count = EXCERPT_ITEMS, max = EXCERPT_CHARS): string {
  const shown = values.slice(0, count).map((v) => excerpt(v, max)).join(', ');
  return values.length > count ? `${shown} and ${values.length - count} more` : shown;
}

/** A value read from data as `got …` shows it: a string as `"<excerpt>"`, else its kind, never its contents in full. */
export function describeData(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return '`null`';
  if (typeof value === 'string') return `"${excerpt(value)}"`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return `an object with ${Object.keys(value).length} keys`;
  return `\`${excerpt(value)}\` (${typeof value})`;
}

/**
 * Where a JSON.parse error happened, without the text V8 quotes from the input
 * (`Unexpected token 'x', "…" is not valid JSON`): ` at position 17`, or nothing.
 */
export function jsonErrorPosition(err: unknown): string {
  const m = /position (\d+)/.exec(err instanceof Error ? err.message : String(err));
  return m ? ` at position ${m[1]}` : '';
}
