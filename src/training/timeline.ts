/**
 * The restart timeline (bench/restart.ts, bench/cadence.ts): when `DT_TIMELINE_FILE` names a file,
 * the worker, its activities and its trainer append one JSON line per moment of a start or resume
 * (`{"t":<ms since the Unix epoch>,"pid":…,"event":…}`), so a bench can split the time from a kill
 * to the first training step into its parts. Nothing happens without the variable (the usual case).
 *
 * Events, in the order a cold restart passes them:
 *   worker-process   the worker process began (its time origin)   worker-bundled  the workflow bundle is built or read (src/workflow-bundle.ts)
 *   worker-connected the connection to Temporal is up              worker-created  Worker.create returned
 *   worker-polling   worker.run() is about to poll                 attempt-start   a training activity attempt began
 *   trainer-fork     the worker forked a trainer process           trainer-process the trainer process began (time origin)
 *   tf-load-start / tf-loaded   TensorFlow's backend loading       train-request   the trainer took a train request
 *   data-loaded      the training set is in memory                 lease           the run's lease is held
 *   session-open     the session is restored (checkpoint read) or fresh            first-step  the request's first step ran
 *   checkpoint       the first progress report naming a newly committed checkpoint (within a second of its commit)
 */
import fs from 'node:fs';

export type TimelineEvent =
  | 'worker-process'
  | 'worker-bundled'
  | 'worker-connected'
  | 'worker-created'
  | 'worker-polling'
  | 'attempt-start'
  | 'trainer-fork'
  | 'trainer-process'
  | 'tf-load-start'
  | 'tf-loaded'
  | 'train-request'
  | 'data-loaded'
  | 'lease'
  | 'session-open'
  | 'first-step'
  | 'checkpoint';

export interface TimelineEntry {
  readonly t: number;
  readonly pid: number;
  readonly event: TimelineEvent;
  readonly [detail: string]: unknown;
}

/** Appends one moment to `DT_TIMELINE_FILE` (one short line: an O_APPEND write lands whole); `t` defaults to now. */
export function mark(event: TimelineEvent, detail: Record<string, unknown> = {}, t = Date.now()): void {
  const file = process.env.DT_TIMELINE_FILE;
  if (!file) return;
  try {
    fs.appendFileSync(file, `${JSON.stringify({ t, pid: process.pid, event, ...detail })}\n`);
  } catch {
    // A bench aid: a file that cannot be written must not fail training.
  }
}

/** This process's start (performance.timeOrigin), as a timeline time. */
export function processStart(): number {
  return Math.round(performance.timeOrigin);
}

/** Every entry of a timeline file, oldest first (a torn last line is skipped). */
export function readTimeline(file: string): TimelineEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const entries: TimelineEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      entries.push(JSON.parse(line) as TimelineEntry);
    } catch {
      // a line being written
    }
  }
  return entries.sort((a, b) => a.t - b.t);
}
