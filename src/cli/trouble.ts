/**
 * Why a run is not moving, from what the server already knows (no worker needed): the pending
 * activity's last failure and attempt (`describe()`'s pendingActivities), how long since its last
 * heartbeat against its heartbeat timeout, and whether any worker polls the run's task queue
 * (`DescribeTaskQueue`'s pollers). And the root cause of a run that failed. Every message shown is
 * bounded and escaped (terminal.ts): failure messages come from user code and data.
 */
import { WorkflowFailedError, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { forTerminal } from './terminal';

type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;
type Failure = temporal.api.failure.v1.IFailure;
type Timestamp = PendingActivity['lastHeartbeatTime'];

/** Characters of a failure message shown (the rest is in `temporal workflow describe`). */
export const CAUSE_CHARS = 300;

export interface Retrying {
  readonly activity: string;
  /** The attempt now running or next to run (the server counts from 1). */
  readonly attempt: number;
  /** The retry policy's limit (null: unlimited). */
  readonly maximumAttempts: number | null;
  /** The last failed attempt's root cause, escaped and bounded. */
  readonly cause: string;
}

export interface Trouble {
  /** A pending activity whose last attempt failed. */
  readonly retrying: Retrying | null;
  /** A training activity's heartbeat is older than its heartbeat timeout: its worker is gone or stuck. */
  readonly silent: { readonly activity: string; readonly seconds: number; readonly timeoutSeconds: number } | null;
  /** The run's task queue has no worker polling it (for workflow tasks, or for activities while one is pending). */
  readonly noWorker: { readonly taskQueue: string; readonly what: 'workflow' | 'activity' } | null;
  /**
   * The workflow's own task keeps failing (a worker with other workflow code, a bug): Temporal retries
   * it without end and the run never moves. `cause` is the last WorkflowTaskFailed event's, when read.
   */
  readonly workflowTask?: { readonly attempt: number; readonly cause: string | null } | null;
}

export const NO_TROUBLE: Trouble = { retrying: null, silent: null, noWorker: null, workflowTask: null };

const ms = (ts: Timestamp): number | undefined => (ts ? Number(ts.seconds ?? 0) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6) : undefined);
const seconds = (d: { seconds?: unknown; nanos?: number | null } | null | undefined): number | undefined =>
  d ? Number(d.seconds ?? 0) + (d.nanos ?? 0) / 1e9 : undefined;

/** The innermost cause of a failure chain (an ApplicationFailure under its ActivityFailure), as `Type: message`. */
export function rootCause(failure: Failure | null | undefined): string {
  let f = failure;
  for (let depth = 0; f?.cause && depth < 32; depth++) f = f.cause;
  if (!f) return 'unknown failure';
  const type = f.applicationFailureInfo?.type;
  const timeout = f.timeoutFailureInfo ? `${timeoutName(f.timeoutFailureInfo.timeoutType)} timeout` : undefined;
  const text = [type || timeout, f.message].filter(Boolean).join(': ');
  return forTerminal(text || 'unknown failure', { max: CAUSE_CHARS });
}

function timeoutName(type: number | null | undefined): string {
  const name = temporal.api.enums.v1.TimeoutType[type ?? 0] ?? '';
  return name.replace(/^TIMEOUT_TYPE_/, '').toLowerCase().replace(/_/g, '-') || 'a';
}

/** The same for an error the client threw (WorkflowFailedError → ChildWorkflowFailure → ActivityFailure → ApplicationFailure). */
export function rootCauseOfError(err: unknown): string {
  let e: unknown = err instanceof WorkflowFailedError ? (err.cause ?? err) : err;
  for (let depth = 0; depth < 32 && e instanceof Error && e.cause instanceof Error; depth++) e = e.cause;
  if (!(e instanceof Error)) return forTerminal(String(e), { max: CAUSE_CHARS });
  const type = (e as { type?: unknown }).type;
  const text = typeof type === 'string' && type !== '' ? `${type}: ${e.message}` : e.message;
  return forTerminal(text, { max: CAUSE_CHARS });
}

/** Trouble visible in a run's pending activities at `now` (the no-worker check is pollers(), separately). */
export function pendingTrouble(description: WorkflowExecutionDescription, now: number): Trouble {
  let retrying: Retrying | null = null;
  let silent: Trouble['silent'] = null;
  for (const a of description.raw.pendingActivities ?? []) {
    const activity = a.activityType?.name ?? '?';
    if (!retrying && a.lastFailure && (a.attempt ?? 1) > 1) {
      retrying = { activity, attempt: a.attempt ?? 1, maximumAttempts: a.maximumAttempts ? a.maximumAttempts : null, cause: rootCause(a.lastFailure) };
    }
    // Only activities that heartbeat have a heartbeat timeout (training, evaluation, finalisation).
    const timeoutSeconds = seconds(a.activityOptions?.heartbeatTimeout);
    if (!silent && timeoutSeconds && timeoutSeconds > 0) {
      // Since the attempt's last sign of life: its last heartbeat, or its start when none came yet.
      const last = Math.max(ms(a.lastHeartbeatTime) ?? 0, ms(a.lastStartedTime) ?? 0);
      const quiet = last > 0 ? (now - last) / 1000 : undefined;
      if (quiet !== undefined && quiet > timeoutSeconds) silent = { activity, seconds: Math.floor(quiet), timeoutSeconds };
    }
  }
  const task = description.raw.pendingWorkflowTask;
  const workflowTask = task && (task.attempt ?? 1) > 1 ? { attempt: task.attempt ?? 2, cause: null } : null;
  return { retrying, silent, noWorker: null, workflowTask };
}

/** The cause of the newest WorkflowTaskFailed event, read from the end of the history (one small page). */
export async function lastWorkflowTaskFailure(handle: WorkflowHandle): Promise<string | null> {
  const { workflowService, options } = handle.client;
  const page = await workflowService
    .getWorkflowExecutionHistoryReverse({ namespace: options.namespace, execution: { workflowId: handle.workflowId }, maximumPageSize: 50 })
    .catch(() => undefined);
  const failed = (page?.history?.events ?? []).find((e) => e.workflowTaskFailedEventAttributes);
  return failed ? rootCause(failed.workflowTaskFailedEventAttributes!.failure) : null;
}

/** Whether any worker polls `taskQueue` for workflow tasks (and for activity tasks, when `activities`). */
export async function noWorker(handle: WorkflowHandle, taskQueue: string, activities: boolean): Promise<Trouble['noWorker']> {
  const { workflowService, options } = handle.client;
  const types = [temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, ...(activities ? [temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY] : [])];
  for (const taskQueueType of types) {
    const described = await workflowService.describeTaskQueue({ namespace: options.namespace, taskQueue: { name: taskQueue }, taskQueueType }).catch(() => undefined);
    if (described && (described.pollers ?? []).length === 0) {
      return { taskQueue, what: taskQueueType === temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW ? 'workflow' : 'activity' };
    }
  }
  return null;
}

/** Everything `watch` and `status` say about a running run's trouble. */
export async function troubleOf(handle: WorkflowHandle, description: WorkflowExecutionDescription, now = Date.now()): Promise<Trouble> {
  if (description.status.name !== 'RUNNING') return NO_TROUBLE;
  const pending = pendingTrouble(description, now);
  const activities = (description.raw.pendingActivities ?? []).length > 0;
  const workflowTask = pending.workflowTask ? { ...pending.workflowTask, cause: await lastWorkflowTaskFailure(handle) } : null;
  return { ...pending, workflowTask, noWorker: await noWorker(handle, description.taskQueue, activities) };
}

/** The status line's words for it, longest first (a narrow terminal gets a shorter form): `retrying: attempt 3/20`, … */
export function troubleForms(t: Trouble): string[] {
  if (t.noWorker) {
    const queue = forTerminal(t.noWorker.taskQueue, { max: 100 });
    return [`no worker polls task queue ${queue}${t.noWorker.what === 'activity' ? ' for activities' : ''}`, 'no worker polls its task queue', 'no worker'];
  }
  if (t.workflowTask) {
    return [`workflow task failing: attempt ${t.workflowTask.attempt} (the run does not move until it passes)`, `workflow task failing: attempt ${t.workflowTask.attempt}`, 'workflow task failing'];
  }
  if (t.silent) {
    const quiet = `no heartbeat for ${t.silent.seconds} s`;
    return [`waiting for a worker: ${quiet} (timeout ${t.silent.timeoutSeconds} s)`, `waiting for a worker: ${quiet}`, quiet];
  }
  if (t.retrying) {
    const attempt = `attempt ${t.retrying.attempt}${t.retrying.maximumAttempts ? `/${t.retrying.maximumAttempts}` : ''}`;
    return [`retrying: ${attempt}`, attempt];
  }
  return [];
}

/** The longest form: `status` and piped output. */
export function troubleSummary(t: Trouble): string | null {
  return troubleForms(t)[0] ?? null;
}

/** The lines under the status line: the last failure's cause, and what to do about a queue nobody polls. */
export function troubleDetails(t: Trouble): string[] {
  const lines: string[] = [];
  if (t.noWorker) lines.push(`  start a worker on task queue ${forTerminal(t.noWorker.taskQueue, { max: 100 })} (DT_TASK_QUEUE), or check the run's --task-queue`);
  if (t.workflowTask) {
    lines.push(`  workflow task attempt ${t.workflowTask.attempt - 1} failed: ${t.workflowTask.cause ?? 'see \`temporal workflow describe\`'} (a worker with other workflow code, or a bug: the run waits for a worker that can run it)`);
  }
  if (t.retrying) lines.push(`  attempt ${t.retrying.attempt - 1} of ${t.retrying.activity} failed: ${t.retrying.cause}`);
  return lines;
}
