/**
 * What bench/restart.ts and bench/cadence.ts share: worker processes (src/worker.ts, configured
 * through the environment as a user runs it) writing the restart timeline (src/training/timeline.ts),
 * a watcher of a run's pending training activity (when Temporal noticed a dead attempt and when it
 * scheduled the next), and the split of one recovery into its parts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { readTimeline, type TimelineEntry, type TimelineEvent } from '../src/training/timeline';

export const ROOT = path.resolve(__dirname, '..');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A seeded uniform generator (mulberry32), so kill moments can be replayed from the printed seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkerProc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<void>;
  /** SIGKILLs the worker and its trainer (the process group). */
  killGroup(): Promise<void>;
  /** SIGKILLs the worker process alone (its trainer is orphaned). */
  killAlone(): Promise<void>;
  /** SIGTERMs the worker (it drains and hands the attempt back), SIGKILL after `graceMs`. */
  terminate(graceMs?: number): Promise<void>;
}

const live = new Set<WorkerProc>();
process.on('exit', () => {
  for (const w of live) {
    try {
      process.kill(-w.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** `src/worker.ts` as its own process group; output to `logFile`. */
export function startWorkerProcess(env: Record<string, string>, logFile: string): WorkerProc {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/worker.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const pid = child.pid!;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const signal = (target: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(target, sig);
    } catch {
      // already gone
    }
  };
  const w: WorkerProc = {
    child,
    pid,
    exited,
    async killGroup() {
      signal(-pid, 'SIGKILL');
      await exited;
    },
    async killAlone() {
      signal(pid, 'SIGKILL');
      await exited;
    },
    async terminate(graceMs = 40_000) {
      signal(pid, 'SIGTERM');
      const timer = setTimeout(() => signal(-pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  live.add(w);
  void exited.then(() => {
    // A trainer orphaned by killAlone ends by itself once it has saved (trainer-process.ts).
    live.delete(w);
  });
  return w;
}

/** Waits until `pid` wrote `event` to the timeline (after `since`), or throws after `timeoutMs`. */
export async function waitForEvent(file: string, event: TimelineEvent, pid: number | undefined, since: number, timeoutMs: number): Promise<TimelineEntry> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = readTimeline(file).find((e) => e.event === event && e.t >= since && (pid === undefined || e.pid === pid));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`Expected ${event}${pid === undefined ? '' : ` from pid ${pid}`} in ${file} within ${timeoutMs / 1000} s, got none`);
    await sleep(50);
  }
}

/** What the pending training activity's attempts did, as Temporal reported them while the bench watched. */
export interface AttemptWatch {
  /** When Temporal closed the attempt the kill hit (heartbeat timeout, failure), server time. */
  noticedAt?: number;
  /** When the next attempt was due (after the retry backoff), server time. */
  retryAt?: number;
  stop(): Promise<void>;
}

/** A protobuf Timestamp in ms (its seconds are a Long, or a number). */
const ms = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number | undefined => {
  const s = ts?.seconds as { toNumber?: () => number } | number | null | undefined;
  if (s == null) return undefined;
  return (typeof s === 'number' ? s : s.toNumber!()) * 1000 + Math.round((ts!.nanos ?? 0) / 1e6);
};

/**
 * Polls describe every 100 ms from the kill on: the first time a training activity shows an attempt
 * above `attemptAtKill` (or a failure after the kill), records when the last attempt closed and when
 * the next is due. A server that is down only makes polls fail meanwhile.
 */
export function watchAttempts(client: Client, workflowId: string, killAt: number): AttemptWatch {
  const watch: AttemptWatch = { stop: async () => undefined };
  let stopped = false;
  const loop = (async () => {
    while (!stopped && watch.noticedAt === undefined) {
      try {
        const d = await client.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId } });
        for (const a of d.pendingActivities ?? []) {
          const closed = ms(a.lastAttemptCompleteTime);
          if (closed !== undefined && closed >= killAt - 1000) {
            watch.noticedAt = closed;
            watch.retryAt = ms(a.nextAttemptScheduleTime) ?? ms(a.scheduledTime) ?? closed;
          }
        }
      } catch {
        // the server is down, or the run is over
      }
      await sleep(100);
    }
  })();
  watch.stop = async () => {
    stopped = true;
    await loop;
  };
  return watch;
}

/** Seconds the run's workflow tasks waited in a dead worker's sticky queue (WorkflowTaskTimedOut, schedule-to-start) after `since`. */
export async function stickyWaits(client: Client, workflowId: string, since: number): Promise<number> {
  const events: temporal.api.history.v1.IHistoryEvent[] = [];
  let token: Uint8Array | undefined;
  do {
    const page = await client.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId }, ...(token && { nextPageToken: token }) });
    events.push(...(page.history?.events ?? []));
    token = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (token);
  const scheduled = new Map<number, number>();
  let waited = 0;
  for (const e of events) {
    const t = ms(e.eventTime) ?? 0;
    if (e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) scheduled.set(Number(e.eventId), t);
    if (e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT) {
      const attr = e.workflowTaskTimedOutEventAttributes;
      const from = scheduled.get(Number(attr?.scheduledEventId));
      if (from !== undefined && from >= since && attr?.timeoutType === temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START) waited += t - from;
    }
  }
  return waited / 1000;
}

/** One recovery split into its parts (seconds; undefined where the part did not happen). */
export interface RestartSplit {
  /** Kill to Temporal closing the attempt (heartbeat timeout, or the failure reported). */
  noticed?: number;
  /** The retry policy's wait before the next attempt. */
  backoff?: number;
  /** Next attempt due to a worker starting it (cold: the new worker's start is in here). */
  toWorker?: number;
  /** Of toWorker, the new worker process from its start to polling (modules, connection, bundle). */
  workerStart?: number;
  /** The attempt's start to the trainer taking the request, TensorFlow's load not counted (fork, modules, registries). */
  trainerStart?: number;
  tfLoad?: number;
  /** The training set loaded into the trainer. */
  data?: number;
  lease?: number;
  /** The checkpoint read and restored (or a fresh session). */
  checkpointRead?: number;
  firstStep?: number;
  /** The attempt's start (or, without a new attempt, the kill) to its first step. */
  attemptToStep?: number;
  /** The step the attempt resumed from. */
  resumedFrom?: number;
}

/**
 * The split of the first recovery after `killAt`: the first training attempt that started after it
 * (or, without one, the first train request), and the trainer's moments after that.
 */
export function splitRecovery(entries: readonly TimelineEntry[], killAt: number, watch: Pick<AttemptWatch, 'noticedAt' | 'retryAt'>, workerPids: ReadonlySet<number>): RestartSplit {
  const after = (event: TimelineEvent, from: number, pid?: number): TimelineEntry | undefined => entries.find((e) => e.event === event && e.t >= from && (pid === undefined || e.pid === pid));
  const s: RestartSplit = {};
  const sec = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined ? undefined : Math.max(0, (b - a) / 1000));
  if (watch.noticedAt !== undefined) {
    s.noticed = sec(killAt, watch.noticedAt);
    s.backoff = sec(watch.noticedAt, watch.retryAt);
  }
  const attempt = after('attempt-start', killAt);
  const request = after('train-request', attempt?.t ?? killAt);
  if (!request) return s;
  if (attempt) {
    s.toWorker = sec(watch.retryAt ?? killAt, attempt.t);
    const started = entries.find((e) => e.event === 'worker-process' && e.pid === attempt.pid && e.t >= killAt - 60_000 && workerPids.has(e.pid));
    const polling = started && after('worker-polling', started.t, attempt.pid);
    if (started && polling && started.t >= killAt - 1000) s.workerStart = sec(started.t, polling.t);
  }
  const from = attempt?.t ?? killAt;
  const tfStart = after('tf-load-start', from, request.pid);
  const tfDone = tfStart && after('tf-loaded', tfStart.t, request.pid);
  s.tfLoad = tfStart && tfDone && tfDone.t <= request.t ? sec(tfStart.t, tfDone.t) : 0;
  s.trainerStart = Math.max(0, (request.t - from) / 1000 - (s.tfLoad ?? 0));
  const data = after('data-loaded', request.t, request.pid);
  const lease = data && after('lease', data.t, request.pid);
  const open = lease && after('session-open', lease.t, request.pid);
  const first = open && after('first-step', open.t, request.pid);
  s.data = sec(request.t, data?.t);
  s.lease = sec(data?.t, lease?.t);
  s.checkpointRead = sec(lease?.t, open?.t);
  s.firstStep = sec(open?.t, first?.t);
  s.attemptToStep = sec(from, first?.t);
  if (open && typeof open.step === 'number') s.resumedFrom = open.step;
  return s;
}
