/**
 * Where a trainModel run is inside its running epoch: the trainUntilStep activity heartbeats the
 * trainer's `Progress` ({ step, checkpointStep, targetStep, ... }), and the server keeps the last
 * heartbeat that got through the worker's throttle (0.8 × the heartbeat timeout) on the pending
 * activity, which `describe()` returns. Read loosely: only step and targetStep are required.
 */
import type { WorkflowExecutionDescription, WorkflowHandle } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { TrainProgress } from '../workflows/train-model';
import type { InEpoch, TrainView } from './live-view';
import { NO_TROUBLE, troubleOf, type Trouble } from './trouble';

type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;

/** A heartbeat's details as the trainer sends them; other fields may come and go. */
export interface Beat {
  readonly step: number;
  readonly targetStep: number;
  readonly checkpointStep: number;
  readonly stepsPerSecond?: number;
}

const num = (o: Record<string, unknown>, k: string): number | undefined => {
  const v = o[k];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
};

/** The training fields of a heartbeat's details, or null when they are not there. */
export function readBeat(details: unknown): Beat | null {
  if (typeof details !== 'object' || details === null) return null;
  const o = details as Record<string, unknown>;
  const step = num(o, 'step');
  const targetStep = num(o, 'targetStep');
  if (step === undefined || targetStep === undefined) return null;
  const stepsPerSecond = num(o, 'stepsPerSecond');
  return { step, targetStep, checkpointStep: num(o, 'checkpointStep') ?? step, ...(stepsPerSecond !== undefined && stepsPerSecond > 0 && { stepsPerSecond }) };
}

/** Steps per second from the heartbeats of one activity attempt (a few recent ones, by their server time). */
export class StepRate {
  private readonly samples = new Map<string, Array<{ step: number; at: number }>>();

  observe(key: string, step: number, at: number): number | null {
    let list = this.samples.get(key);
    if (!list) this.samples.set(key, (list = []));
    const last = list[list.length - 1];
    if (last && (step < last.step || at < last.at)) list.length = 0;
    if (!last || at !== last.at) list.push({ step, at });
    if (list.length > 6) list.shift();
    const first = list[0]!;
    const newest = list[list.length - 1]!;
    const seconds = (newest.at - first.at) / 1000;
    return seconds > 0 && newest.step > first.step ? (newest.step - first.step) / seconds : null;
  }
}

function timestampMs(ts: PendingActivity['lastHeartbeatTime']): number | undefined {
  if (!ts) return undefined;
  return Number(ts.seconds ?? 0) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
}

async function decodeDetails(handle: WorkflowHandle, activity: PendingActivity): Promise<unknown> {
  const payloads = activity.heartbeatDetails?.payloads;
  if (!payloads || payloads.length === 0) return undefined;
  // The client's own converter and codecs, so a worker with a custom data converter still reads.
  const { payloadConverter, payloadCodecs } = handle.client.options.loadedDataConverter;
  let decoded = payloads as Payload[];
  for (const codec of [...payloadCodecs].reverse()) decoded = await codec.decode(decoded);
  return decoded[0] ? payloadConverter.fromPayload(decoded[0]) : undefined;
}

/** The running epoch's step (and pace) from a described run's pending epoch activity (trainEpoch, or trainUntilStep before it), if it heartbeat yet. */
export async function inEpoch(handle: WorkflowHandle, description: WorkflowExecutionDescription, rates: StepRate): Promise<InEpoch | null> {
  const training = (description.raw.pendingActivities ?? []).find((a) => a.activityType?.name === 'trainEpoch' || a.activityType?.name === 'trainUntilStep');
  if (!training) return null;
  const beat = readBeat(await decodeDetails(handle, training).catch(() => undefined));
  if (!beat) return null;
  const key = `${description.runId}/${training.activityId ?? ''}/${training.attempt ?? 1}`;
  const measured = rates.observe(key, beat.step, timestampMs(training.lastHeartbeatTime) ?? Date.now());
  return { step: beat.step, targetStep: beat.targetStep, checkpointStep: beat.checkpointStep, stepsPerSecond: beat.stepsPerSecond ?? measured };
}

/** What a live view remembers between frames: step rates, and each run's last answered view (shown, marked, while no worker answers). */
export class Observer {
  readonly rates = new StepRate();
  readonly views = new Map<string, TrainView>();
}

/** How long a query may wait for a worker to answer before the view goes on without it. */
export const QUERY_DEADLINE_MS = 10_000;

/** A query that gives up after QUERY_DEADLINE_MS (a run whose worker is gone would hold it 30 s). */
export function queryWithin<T>(handle: WorkflowHandle, name: string): Promise<T | undefined> {
  return handle.client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query<T>(name)).catch(() => undefined);
}

/** A workflow closed other than by completing, as its train line says it: failed, terminated, … */
export function closedStatus(description: WorkflowExecutionDescription): string | undefined {
  const s = description.status.name;
  return s === 'RUNNING' || s === 'COMPLETED' || s === 'CONTINUED_AS_NEW' ? undefined : s.toLowerCase().replace(/_/g, '-');
}

/**
 * A trainModel run's progress query, its activity's heartbeat and its trouble (a failing attempt,
 * a silent heartbeat, no worker on its queue); the view is undefined when the query gets no answer
 * (no worker polls the queue: the query is not even sent).
 */
export async function observeTrain(
  handle: WorkflowHandle,
  observer: Observer,
  description?: WorkflowExecutionDescription,
): Promise<{ view: TrainView | undefined; trouble: Trouble }> {
  const described = description ?? (await handle.describe().catch(() => undefined));
  const trouble = described ? await troubleOf(handle, described) : NO_TROUBLE;
  const last = observer.views.get(handle.workflowId);
  // No worker to answer (none polls, or the training one went silent): the last answer stands.
  if (trouble.noWorker?.what === 'workflow' || trouble.workflowTask || (trouble.silent && last)) return { view: last, trouble };
  const progress = await queryWithin<TrainProgress>(handle, 'progress');
  if (!progress) return { view: last, trouble };
  const closed = described ? closedStatus(described) : undefined;
  const base = { progress, trouble, ...(closed !== undefined && { closed }) };
  const view = progress.status !== 'training' || closed !== undefined ? { ...base, inEpoch: null } : { ...base, inEpoch: described ? await inEpoch(handle, described, observer.rates) : null };
  observer.views.set(handle.workflowId, view);
  return { view, trouble };
}
