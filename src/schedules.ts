/**
 * Retraining on a Temporal Schedule, from code: `createRetrainSchedule(client, {...})` and the
 * list/pause/unpause/trigger/delete helpers around `client.schedule`. Our CLI uses these too.
 *
 * Overlap policy: SKIP. Two retrains of one model never run at once, and a retrain that is due
 * while the previous one still runs is dropped rather than queued: a retrain trains on the data as
 * it is when it starts, so a queued one (BUFFER_ONE) would start right after the previous one on
 * almost the same data, and when retrains take longer than the period it would keep the GPU busy
 * back to back forever. The next slot picks up all the new data anyway. Beware that the SDK's
 * `ScheduleHandle.trigger()` defaults to ALLOW_ALL; `triggerRetrainSchedule` passes SKIP.
 * (The champion pointer's compare-and-swap keeps promotions correct even if two did overlap.)
 */
import { ScheduleOverlapPolicy, type Client, type ScheduleDescription, type ScheduleHandle, type ScheduleSummary } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { parseRetrainConfig, type RetrainInput } from './config/retrain-config';

export const RETRAIN_WORKFLOW_TYPE = 'retrainModel';
export const RETRAIN_OVERLAP_POLICY = ScheduleOverlapPolicy.SKIP;

export interface RetrainScheduleOptions {
  /** The schedule's id. */
  readonly scheduleId: string;
  /** The `retrainModel` input every run gets (validated here: a bad one creates nothing). */
  readonly input: RetrainInput;
  readonly taskQueue: string;
  /** Cron expressions, e.g. `0 3 * * *` (03:00 every day). */
  readonly cron?: readonly string[];
  /** Fixed intervals, e.g. `24h`. */
  readonly every?: readonly Duration[];
  /** Time zone for `cron`. @default 'UTC' */
  readonly timezone?: string;
  /** Base of the runs' workflow ids; Temporal appends `-<ISO time>`. @default scheduleId */
  readonly workflowId?: string;
  /** Create the schedule paused. @default false */
  readonly paused?: boolean;
  readonly note?: string;
}

/** A retraining schedule as the CLI lists it. */
export interface RetrainScheduleRow {
  readonly scheduleId: string;
  readonly paused: boolean;
  readonly note: string | null;
  readonly nextActionTimes: readonly string[];
  readonly recentRuns: ReadonlyArray<{ readonly workflowId: string; readonly runId: string; readonly scheduledAt: string }>;
}

/** Creates a schedule that starts `retrainModel` with `input`. Throws ConfigError for a bad input. */
export async function createRetrainSchedule(client: Client, options: RetrainScheduleOptions): Promise<ScheduleHandle> {
  parseRetrainConfig(options.input);
  return client.schedule.create({
    scheduleId: options.scheduleId,
    spec: {
      ...(options.cron?.length && { cronExpressions: [...options.cron] }),
      ...(options.every?.length && { intervals: options.every.map((every) => ({ every })) }),
      ...(options.timezone !== undefined && { timezone: options.timezone }),
    },
    action: {
      type: 'startWorkflow',
      workflowType: RETRAIN_WORKFLOW_TYPE,
      taskQueue: options.taskQueue,
      workflowId: options.workflowId ?? options.scheduleId,
      args: [options.input],
    },
    policies: { overlap: RETRAIN_OVERLAP_POLICY },
    state: { paused: options.paused ?? false, ...(options.note !== undefined && { note: options.note }) },
  });
}

function row(s: ScheduleSummary | (ScheduleDescription & { scheduleId: string })): RetrainScheduleRow {
  return {
    scheduleId: s.scheduleId,
    paused: s.state.paused,
    note: s.state.note || null,
    nextActionTimes: s.info.nextActionTimes.map((d) => d.toISOString()),
    recentRuns: s.info.recentActions.map((a) => ({
      workflowId: a.action.workflow.workflowId,
      runId: a.action.workflow.firstExecutionRunId,
      scheduledAt: a.scheduledAt.toISOString(),
    })),
  };
}

/** Every schedule whose action starts `retrainModel`. */
export async function listRetrainSchedules(client: Client): Promise<RetrainScheduleRow[]> {
  const rows: RetrainScheduleRow[] = [];
  for await (const s of client.schedule.list()) {
    if (s.action?.type === 'startWorkflow' && s.action.workflowType === RETRAIN_WORKFLOW_TYPE) rows.push(row(s));
  }
  return rows.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

export async function describeRetrainSchedule(client: Client, scheduleId: string): Promise<RetrainScheduleRow & { readonly input: unknown }> {
  const d = await client.schedule.getHandle(scheduleId).describe();
  return { ...row(d), input: d.action.args?.[0] ?? null };
}

export function pauseRetrainSchedule(client: Client, scheduleId: string, note?: string): Promise<void> {
  return client.schedule.getHandle(scheduleId).pause(note);
}

export function unpauseRetrainSchedule(client: Client, scheduleId: string, note?: string): Promise<void> {
  return client.schedule.getHandle(scheduleId).unpause(note);
}

/** Starts a retrain now, unless one from this schedule is still running (SKIP, not the SDK's ALLOW_ALL). */
export function triggerRetrainSchedule(client: Client, scheduleId: string): Promise<void> {
  return client.schedule.getHandle(scheduleId).trigger(RETRAIN_OVERLAP_POLICY);
}

export function deleteRetrainSchedule(client: Client, scheduleId: string): Promise<void> {
  return client.schedule.getHandle(scheduleId).delete();
}
