/**
 * A search's log: its trial rows, edits and lineage, in its own folder, as numbered segments
 * (docs/search-log.md is the format's reference; keep the two in step).
 *
 *   <search>/log/000000000000.jsonl, 000000000001.jsonl, …
 *
 * - A segment is UTF-8 JSON Lines: one JSON object per line, each line ending in `\n`, at least
 *   one row. A row is at most MAX_SEARCH_LOG_ROW_BYTES as JSON, a segment at most
 *   MAX_SEARCH_LOG_SEGMENT_BYTES, objects nest at most MAX_INPUT_DEPTH deep.
 * - Segments are create-only (the store's compare-and-swap with "must not exist"): once written a
 *   segment never changes. Writing the same bytes again succeeds (a retried or replayed append);
 *   different bytes under a taken number fail with WouldOverwrite, naming the key: two writers that
 *   disagree never both win, and nothing written is lost.
 * - Sequence numbers start at 0 and have no gaps. The log is the segments 0, 1, 2, … up to the
 *   first missing one; a reader stops there (a segment written past a gap is read once the gap
 *   is filled).
 * - What a row means is the writer's (the search controller): this module only keeps rows whole,
 *   ordered and bounded.
 */
import { inputSizeIssues, MAX_INPUT_DEPTH } from '../config/bounds';
import { Checker, ConfigError, describe, isObject, type ConfigIssue, type JsonObject } from '../config/validate';
import { STEP_DIGITS, searchLogKey } from './layout';
import { PreconditionFailedError, type CheckpointStore } from './store';

/** One row of a search log: any JSON object. */
export type SearchLogRow = JsonObject;

/** A row as compact JSON, in UTF-8 bytes: a trial row is well under 1 KB, a PBT lineage record a few. */
export const MAX_SEARCH_LOG_ROW_BYTES = 16 * 1024;
/** A segment's bytes: one store object, read whole by every reader. */
export const MAX_SEARCH_LOG_SEGMENT_BYTES = 1024 * 1024;
/** Highest sequence number: 12 digits, as step keys. */
export const MAX_SEARCH_LOG_SEQ = 10 ** STEP_DIGITS - 1;
/** Rows one read returns unless told otherwise. */
export const DEFAULT_SEARCH_LOG_PAGE_ROWS = 1000;

/** A segment number already holds different bytes. Never retried: the writer is wrong or stale. */
export class SearchLogOverwriteError extends Error {
  override readonly name = 'WouldOverwrite';
  constructor(readonly uri: string) {
    super(`Refusing to overwrite ${uri}: this search log segment holds different rows (another writer, or a replay that decided differently)`);
  }
}

/** A stored segment that is not a segment of this format (edited or damaged by hand). */
export class SearchLogCorruptError extends Error {
  override readonly name = 'SearchLogCorrupt';
  constructor(readonly uri: string, why: string) {
    super(`${uri} is not a search log segment: ${why}`);
  }
}

/** The issues of an append's `seq` and `rows` (fields named as in the activity's input). */
export function searchLogAppendIssues(seq: unknown, rows: unknown): ConfigIssue[] {
  const c = new Checker();
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0 || seq > MAX_SEARCH_LOG_SEQ) {
    c.fail('seq', `a whole number from 0 to ${MAX_SEARCH_LOG_SEQ}`, seq);
  }
  if (!Array.isArray(rows) || rows.length === 0) {
    c.fail('rows', 'a non-empty array of JSON objects', rows);
    return c.issues;
  }
  let total = 0;
  for (let i = 0; i < rows.length; i++) {
    const field = `rows[${i}]`;
    const row: unknown = rows[i];
    if (!isObject(row)) {
      c.fail(field, 'a JSON object', row);
      continue;
    }
    // Depth and a first size bound before JSON.stringify (recursive) sees the row.
    const shape = inputSizeIssues(row, field, { maxBytes: 4 * MAX_SEARCH_LOG_ROW_BYTES, maxDepth: MAX_INPUT_DEPTH });
    if (shape.length > 0) {
      c.issues.push(...shape.map((s) => (s.field === field ? { ...s, expected: `at most ${MAX_SEARCH_LOG_ROW_BYTES} bytes as JSON`, received: s.received } : { ...s, field: `${field}.${s.field}` })));
      continue;
    }
    const bytes = Buffer.byteLength(JSON.stringify(row), 'utf8');
    if (bytes > MAX_SEARCH_LOG_ROW_BYTES) c.issues.push({ field, expected: `at most ${MAX_SEARCH_LOG_ROW_BYTES} bytes as JSON`, received: `${bytes} bytes` });
    total += bytes + 1;
  }
  if (c.issues.length === 0 && total > MAX_SEARCH_LOG_SEGMENT_BYTES) {
    c.issues.push({ field: 'rows', expected: `at most ${MAX_SEARCH_LOG_SEGMENT_BYTES} bytes as JSON Lines (one segment)`, received: `${total} bytes in ${rows.length} rows` });
  }
  return c.issues;
}

/** The bytes of a segment: one compact JSON object per line. Throws ConfigError for rows out of bounds. */
export function encodeSearchLogSegment(seq: number, rows: readonly unknown[]): Buffer {
  const issues = searchLogAppendIssues(seq, rows);
  if (issues.length > 0) throw new ConfigError(issues, 'Invalid search log append');
  return Buffer.from(rows.map((r) => `${JSON.stringify(r)}\n`).join(''), 'utf8');
}

/** The rows of a segment's bytes; SearchLogCorruptError when they are not a segment. */
export function decodeSearchLogSegment(uri: string, data: Buffer): SearchLogRow[] {
  if (data.length > MAX_SEARCH_LOG_SEGMENT_BYTES) throw new SearchLogCorruptError(uri, `${data.length} bytes, above ${MAX_SEARCH_LOG_SEGMENT_BYTES}`);
  const text = data.toString('utf8');
  if (!text.endsWith('\n')) throw new SearchLogCorruptError(uri, 'its last line does not end in a newline');
  const lines = text.slice(0, -1).split('\n');
  return lines.map((line, i) => {
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new SearchLogCorruptError(uri, `line ${i + 1} is not JSON`);
    }
    if (!isObject(row)) throw new SearchLogCorruptError(uri, `line ${i + 1} is ${describe(row)}, not a JSON object`);
    return row;
  });
}

/**
 * Writes segment `seq` of the log in `store` (rooted at the search's folder), create-only. Same
 * bytes already there: done (`created: false`). Different bytes: SearchLogOverwriteError.
 * Bounds: ConfigError naming the field.
 */
export async function appendSearchLogSegment(store: CheckpointStore, seq: number, rows: readonly unknown[]): Promise<{ readonly key: string; readonly created: boolean }> {
  const data = encodeSearchLogSegment(seq, rows);
  const key = searchLogKey(seq);
  try {
    await store.putIfVersion(key, data, undefined);
    return { key, created: true };
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
  }
  // Taken: by an earlier attempt of this very append (a retry, a zombie, a replay), or by another writer.
  const existing = await store.get(key);
  if (existing?.equals(data)) return { key, created: false };
  throw new SearchLogOverwriteError(store.uriOf(key));
}

export interface ReadSearchLogOptions {
  /** The first segment to read. @default 0 */
  readonly fromSeq?: number;
  /**
   * Stop before the segment that would pass this many rows; at least one segment is read, so a page
   * can pass it by one segment's rows. @default DEFAULT_SEARCH_LOG_PAGE_ROWS
   */
  readonly maxRows?: number;
}

export interface SearchLogPage {
  /** The rows of the segments read, in sequence order, each segment's in its order. */
  readonly rows: SearchLogRow[];
  /** The segment to read next: the first one not read (missing now, or past `maxRows`). */
  readonly nextSeq: number;
  /** Segments read. */
  readonly segments: number;
  /** True when reading stopped at a segment that does not exist (the end of the log so far). */
  readonly end: boolean;
}

/**
 * Reads the log in `store` (rooted at the search's folder) from `fromSeq` on, segment by segment
 * by key (no listing: a page costs its own segments, however long the log), until a missing
 * segment or `maxRows`. The next page starts at `nextSeq`.
 */
export async function readSearchLog(store: CheckpointStore, options: ReadSearchLogOptions = {}): Promise<SearchLogPage> {
  const fromSeq = options.fromSeq ?? 0;
  const maxRows = options.maxRows ?? DEFAULT_SEARCH_LOG_PAGE_ROWS;
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 0 || fromSeq > MAX_SEARCH_LOG_SEQ) {
    throw new ConfigError([{ field: 'fromSeq', expected: `a whole number from 0 to ${MAX_SEARCH_LOG_SEQ}`, received: describe(fromSeq) }]);
  }
  if (!Number.isSafeInteger(maxRows) || maxRows < 1) throw new ConfigError([{ field: 'maxRows', expected: 'a whole number from 1 up', received: describe(maxRows) }]);
  const rows: SearchLogRow[] = [];
  let seq = fromSeq;
  let segments = 0;
  while (seq <= MAX_SEARCH_LOG_SEQ) {
    const key = searchLogKey(seq);
    const data = await store.get(key);
    if (!data) return { rows, nextSeq: seq, segments, end: true };
    const segment = decodeSearchLogSegment(store.uriOf(key), data);
    if (segments > 0 && rows.length + segment.length > maxRows) break;
    rows.push(...segment);
    segments++;
    seq++;
    if (rows.length >= maxRows) break;
  }
  return { rows, nextSeq: seq, segments, end: false };
}
