/**
 * Data windows: a sharded URI that names its daily partitions by date (`gs://b/events/dt={date}/*.jsonl.gz`)
 * with `window: 7` reads the seven newest daily partitions (UTC) relative to a day, the window's end.
 * Pure date arithmetic on UTC calendar days (no time zones, no clock): the workflow resolves a window
 * once, from the schedule's nominal time (src/workflows/data-window.ts), and the trainer lists the
 * globs it was given.
 *
 * Placeholders: `{date}` (2026-12-07), `{yyyymmdd}` (20261207), `{yyyy}`, `{mm}`, `{dd}`, anywhere in
 * the URI (a partition's folder or its file names); each is replaced by the partition's date.
 */

/** The placeholders a windowed URI may hold. */
export const WINDOW_PLACEHOLDERS = ['{date}', '{yyyymmdd}', '{yyyy}', '{mm}', '{dd}'] as const;
const PLACEHOLDER = /\{(date|yyyymmdd|yyyy|mm|dd)\}/g;
/** Any `{name}`: what looks like a placeholder but is not one is refused, not listed literally. */
const BRACED = /\{[^{}/]*\}/g;

/** Daily partitions one window may name (a year and a day: a leap year's 366 days fit). */
export const MAX_WINDOW_DAYS = 366;
/** Days between the window's newest partition and the nominal day. @default 1: the last complete day. */
export const DEFAULT_WINDOW_LAG = 1;
export const MAX_WINDOW_LAG = 366;

const DAY_MS = 86_400_000;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** True when `uri` holds at least one placeholder. */
export function hasPlaceholder(uri: string): boolean {
  return uri.search(PLACEHOLDER) >= 0;
}

/** The `{…}` in `uri` that are not placeholders (`{hour}`), for the error that names them. */
export function unknownPlaceholders(uri: string): string[] {
  return (uri.match(BRACED) ?? []).filter((m) => !(WINDOW_PLACEHOLDERS as readonly string[]).includes(m));
}

/** The UTC calendar day of `at` as `YYYY-MM-DD`. */
export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/** Milliseconds at 00:00 UTC of a `YYYY-MM-DD` day; undefined for anything else (`2026-02-30` included). */
export function parseUtcDay(text: string): number | undefined {
  const m = ISO_DATE.exec(text);
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return Number.isFinite(ms) && utcDay(new Date(ms)) === text ? ms : undefined;
}

/** The newest partition's day of a window resolved at `at`: `lag` days before at's UTC day. */
export function windowEndAt(at: Date, lag: number): string {
  return utcDay(new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()) - lag * DAY_MS));
}

/** The `days` partition days ending at `end` (inclusive), oldest first. */
export function windowDays(end: string, days: number): string[] {
  const last = parseUtcDay(end);
  if (last === undefined) throw new Error(`Expected a YYYY-MM-DD day, got ${JSON.stringify(end)}`);
  return Array.from({ length: days }, (_, i) => utcDay(new Date(last - (days - 1 - i) * DAY_MS)));
}

/** `template` with its placeholders replaced by `day` (`YYYY-MM-DD`). */
export function partitionUri(template: string, day: string): string {
  const [yyyy, mm, dd] = day.split('-') as [string, string, string];
  const values: Record<string, string> = { date: day, yyyymmdd: `${yyyy}${mm}${dd}`, yyyy, mm, dd };
  return template.replace(PLACEHOLDER, (_, name: string) => values[name]!);
}

/** The concrete globs of a window: one per partition day, oldest first. */
export function windowUris(template: string, end: string, days: number): string[] {
  return windowDays(end, days).map((day) => partitionUri(template, day));
}
