/**
 * The rows a search has yet to append to its log (docs/search-log.md), batched into segments. Pure:
 * the controller adds rows as trials change and edits or exploits are made; at a flush it turns
 * them into segments, each one `append` command (src/workflows/search/controller.ts).
 *
 * A trial is buffered by number, once per batch: its row is read when the batch is cut, so a trial
 * that started and ended within one batch gives one row, as of the cut (the log's rule is that the
 * last row of a trial number wins). Edit and lineage records are buffered as they are.
 */
import type { TrialRow } from '../../config/search-types';
import type { SearchLogRow } from './types';

/** Rows in one segment at most (also the buffer's flush point). */
export const LOG_SEGMENT_ROWS = 256;
/**
 * JSON characters in one segment at most (also the flush point): at most 3 UTF-8 bytes a character,
 * so a segment stays under 192 KiB, within the store format's 1 MiB and under Temporal's 256 KB
 * payload warning for the append's input.
 */
export const LOG_SEGMENT_CHARS = 64 * 1024;
/** What a trial row is counted as before it is cut (its real size is measured at the cut). */
const TRIAL_ROW_ESTIMATE = 600;

type Entry = { readonly trial: number } | { readonly row: SearchLogRow };

export class LogBuffer {
  private entries: Entry[] = [];
  private readonly trials = new Set<number>();
  private chars = 0;
  /** Workflow time the oldest row waiting was first seen at a wait (`mark`); null when empty. */
  since: number | null = null;

  /** The rows waiting were seen at `now` (the first mark after the buffer was emptied sticks). */
  mark(now: number): void {
    if (this.since === null && !this.empty) this.since = now;
  }

  /** Trial `n` changed: its row goes into the next segment. */
  touch(n: number): void {
    if (this.trials.has(n)) return;
    this.trials.add(n);
    this.entries.push({ trial: n });
    this.chars += TRIAL_ROW_ESTIMATE;
  }

  /** An edit or lineage record, as it is. */
  add(row: SearchLogRow): void {
    this.entries.push({ row });
    this.chars += JSON.stringify(row).length + 1;
  }

  /** Trial `n` has a row waiting: its record must stay in memory until the cut. */
  holds(n: number): boolean {
    return this.trials.has(n);
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** Time to cut: a segment's worth is waiting. */
  get full(): boolean {
    return this.entries.length >= LOG_SEGMENT_ROWS || this.chars >= LOG_SEGMENT_CHARS;
  }

  /** Everything buffered, as segments in order (trial rows read now through `rowOf`); the buffer is empty after. */
  cut(rowOf: (trial: number) => TrialRow): SearchLogRow[][] {
    const segments: SearchLogRow[][] = [];
    let segment: SearchLogRow[] = [];
    let chars = 0;
    for (const e of this.entries) {
      const row: SearchLogRow = 'trial' in e ? { kind: 'trial', ...rowOf(e.trial) } : e.row;
      const size = JSON.stringify(row).length + 1;
      if (segment.length > 0 && (segment.length >= LOG_SEGMENT_ROWS || chars + size > LOG_SEGMENT_CHARS)) {
        segments.push(segment);
        segment = [];
        chars = 0;
      }
      segment.push(row);
      chars += size;
    }
    if (segment.length > 0) segments.push(segment);
    this.entries = [];
    this.trials.clear();
    this.chars = 0;
    this.since = null;
    return segments;
  }
}
