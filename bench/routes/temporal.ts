/**
 * (2) The product: trainModel on a real Temporal dev server (src/dev-server.ts) with a real worker
 * (DurableTrainPlugin, its trainer child process) at the default checkpoint cadence: a checkpoint
 * at every epoch end (everySteps 0, everySeconds 600), an evaluation on the 1,500 MNIST test digits
 * after every epoch. The timed span runs from the first epoch activity being scheduled to the last
 * epoch's evaluation completing (server event times): every per-epoch cost is in it; the per-run
 * ones (describeWorker before, finalizeRun after) are not, and are given in the note. An epoch is
 * one trainEpoch activity (or, for workflow code before it, trainUntilStep then evaluateCheckpoint).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { DevServer } from '../../src/dev-server';
import { DurableTrainPlugin } from '../../src/plugin';
import type { TrainModelResult } from '../../src/workflows';
import { benchInput } from '../models';
import type { BenchModel, BenchRoute, Measurement } from '../route';

/** Epochs per measured run: the timed steps are split evenly into this many epochs. */
export const EPOCHS = 4;
const TASK_QUEUE = 'dt-bench';

interface Stack {
  server: DevServer;
  client: Client;
  connection: Connection;
  nativeConnection: NativeConnection;
  plugin: DurableTrainPlugin;
  worker: Worker;
  running: Promise<void>;
  root: string;
}
let stack: Promise<Stack> | undefined;
let runs = 0;

async function startStack(): Promise<Stack> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const server = await DevServer.start();
  const connection = await Connection.connect({ address: server.address });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-temporal-'));
  const plugin = new DurableTrainPlugin({
    trainer: { backend: process.env.DT_BACKEND ?? 'auto', log: () => undefined },
    checkpointRoot: pathToFileURL(root).href,
    // The graph route's SavedModels (bench/routes/savedmodel.ts exports them there).
    allowedUris: [pathToFileURL(path.resolve(__dirname, '../../.cache/bench-savedmodels')).href],
  });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: new DefaultLogger('ERROR') }),
    plugins: [plugin],
    maxConcurrentActivityTaskExecutions: 2,
  });
  const running = worker.run();
  return { server, client: new Client({ connection }), connection, nativeConnection, plugin, worker, running, root };
}

const millis = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

/** Activities that end an epoch, and those that start one. */
const EPOCH_END = new Set(['trainEpoch', 'evaluateCheckpoint']);
const EPOCH_START = new Set(['trainEpoch', 'trainUntilStep']);

/** The part of a train result's checkpoint timing (perf-ckpt's CheckpointTiming) the bench reads. */
interface CheckpointTimingLike {
  readonly checkpoints?: number;
  readonly snapshotMs?: number;
  readonly hashMs?: number;
  readonly writeMs?: number;
  readonly pointerMs?: number;
  readonly blockedMs?: number;
  readonly bytes?: number;
}

interface Breakdown {
  /** Per epoch, ms: the training activity (trainEpoch, or trainUntilStep) started to completed, and its trainer's own time. */
  train: number;
  trainer: number;
  /** Per epoch, ms: the evaluation (inside trainEpoch: the trainer's; else the evaluateCheckpoint activity). */
  evaluate: number;
  /** Per epoch, ms: everything else in the timed span (scheduling, workflow tasks, history writes). */
  scheduling: number;
  /** One trainEpoch activity per epoch (else trainUntilStep and evaluateCheckpoint). */
  fused: boolean;
  /** Checkpoint writing per epoch as the trainer reports it; undefined when its results carry no timing. */
  checkpoint: { ms: number; blockedMs: number; mbPerSecond: number } | undefined;
}

/** The train result inside an epoch activity's result (trainEpoch: `.trained`; trainUntilStep: itself). */
function trainResultOf(type: string, value: unknown): { checkpointTiming?: CheckpointTimingLike } | undefined {
  const v = value as { trained?: { checkpointTiming?: CheckpointTimingLike } | null; checkpointTiming?: CheckpointTimingLike } | null;
  if (type === 'trainEpoch') return v?.trained ?? undefined;
  return type === 'trainUntilStep' ? (v ?? undefined) : undefined;
}

async function runOnce(
  s: Stack,
  input: Record<string, unknown>,
): Promise<{ result: TrainModelResult; timedMs: number; wallMs: number; epochs: number; eventsPerEpoch: number; perEpoch: Breakdown }> {
  const workflowId = `bench-${process.pid}-${runs++}`;
  const started = Date.now();
  const handle = await s.client.workflow.start('trainModel', { taskQueue: TASK_QUEUE, workflowId, args: [input] });
  const result = (await handle.result()) as TrainModelResult;
  const wallMs = Date.now() - started;
  const events = (await handle.fetchHistory()).events ?? [];
  const typeOf = new Map<number, string>();
  const startedAt = new Map<number, number>();
  const busy = new Map<string, number>();
  let from: number | undefined;
  let to: number | undefined;
  let epochs = 0;
  /** Index in the history of each epoch's last activity completion: the events between two are one epoch's. */
  const epochEnds: number[] = [];
  let evaluateMs = 0;
  const ckpt = { ms: 0, blockedMs: 0, bytes: 0, seen: false };
  for (const [index, e] of events.entries()) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      const type = scheduled.activityType?.name ?? '';
      typeOf.set(Number(e.eventId), type);
      if (EPOCH_START.has(type)) from ??= millis(e.eventTime);
    }
    if (e.activityTaskStartedEventAttributes) startedAt.set(Number(e.activityTaskStartedEventAttributes.scheduledEventId), millis(e.eventTime));
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed) {
      const id = Number(completed.scheduledEventId);
      const type = typeOf.get(id) ?? '';
      const ms = millis(e.eventTime) - (startedAt.get(id) ?? millis(e.eventTime));
      busy.set(type, (busy.get(type) ?? 0) + ms);
      const payload = completed.result?.payloads?.[0];
      const value: unknown = payload ? defaultPayloadConverter.fromPayload(payload as Payload) : undefined;
      const timing = trainResultOf(type, value)?.checkpointTiming;
      if (timing) {
        ckpt.seen = true;
        ckpt.ms += (timing.snapshotMs ?? 0) + (timing.hashMs ?? 0) + (timing.writeMs ?? 0) + (timing.pointerMs ?? 0);
        ckpt.blockedMs += timing.blockedMs ?? 0;
        ckpt.bytes += timing.bytes ?? 0;
      }
      if (type === 'trainEpoch') evaluateMs += ((value as { evaluated?: { seconds: number } | null }).evaluated?.seconds ?? 0) * 1000;
      if (type === 'evaluateCheckpoint') evaluateMs += ms;
      if (EPOCH_END.has(type)) {
        to = millis(e.eventTime);
        epochs++;
        epochEnds.push(index);
      }
    }
  }
  if (from === undefined || to === undefined) throw new Error(`workflow ${workflowId}: no epoch activity (trainEpoch, or trainUntilStep and evaluateCheckpoint) in its history`);
  const n = Math.max(epochs, 1);
  // trainEpoch holds the evaluation; only the two-activity epoch times it as an activity of its own.
  const train = ((busy.get('trainEpoch') ?? 0) + (busy.get('trainUntilStep') ?? 0)) / n;
  const evaluate = evaluateMs / n;
  const separateEvaluate = (busy.get('evaluateCheckpoint') ?? 0) / n;
  const trainer = result.history.reduce((a, h) => a + h.trainSeconds * 1000, 0) / n;
  const checkpoint = ckpt.seen ? { ms: ckpt.ms / n, blockedMs: ckpt.blockedMs / n, mbPerSecond: ckpt.ms > 0 ? ckpt.bytes / 1e6 / (ckpt.ms / 1000) : 0 } : undefined;
  return {
    result,
    timedMs: to - from,
    wallMs,
    epochs,
    eventsPerEpoch: epochEnds.length > 1 ? (epochEnds[epochEnds.length - 1]! - epochEnds[0]!) / (epochEnds.length - 1) : NaN,
    perEpoch: { train, trainer, evaluate, scheduling: (to - from) / n - train - separateEvaluate, fused: busy.has('trainEpoch'), checkpoint },
  };
}

/** The trainModel bench, for any model spec: shared with the workflow-driven graph route. */
export async function measureTrainModel(
  { model, batchSize, steps }: { model: BenchModel; batchSize: number; steps: number },
  extra: Record<string, unknown> = {},
): Promise<Measurement> {
  stack ??= startStack();
  const s = await stack;
  const stepsPerEpoch = Math.max(1, Math.round(steps / EPOCHS));
  // Untimed warm-up: starts the trainer process and warms tfjs for this model and batch size.
  await runOnce(s, benchInput(model, batchSize, 5, 1, extra));
  const r = await runOnce(s, benchInput(model, batchSize, stepsPerEpoch, EPOCHS, extra));
  if (r.result.step !== stepsPerEpoch * EPOCHS || r.epochs !== EPOCHS) throw new Error(`unexpected run: ${JSON.stringify(r.result)}`);
  const b = r.perEpoch;
  const { eventsPerEpoch } = r;
  const epochActivity = b.fused ? 'trainEpoch activity (train + evaluate)' : 'trainUntilStep activity';
  return {
    msPerStep: r.timedMs / (stepsPerEpoch * EPOCHS),
    eventsPerEpoch,
    ...(b.checkpoint && { checkpointMs: b.checkpoint.ms, checkpointMBps: b.checkpoint.mbPerSecond }),
    note:
      `backend ${r.result.backend}; ${EPOCHS} epochs of ${stepsPerEpoch} steps, a checkpoint and an evaluation (1,500 digits) after each; ` +
      `whole run incl. describeWorker and finalizeRun ${(r.wallMs / 1000).toFixed(2)} s vs timed ${(r.timedMs / 1000).toFixed(2)} s; ` +
      `history events per epoch: those from one epoch's end to the next, averaged over the run`,
    breakdown:
      `${model}/${batchSize}, per epoch of ${stepsPerEpoch} steps (ms): ${epochActivity} ${b.train.toFixed(0)} ` +
      `(in the trainer: steps + checkpoint ${b.trainer.toFixed(0)}${b.fused ? `, evaluation ${b.evaluate.toFixed(0)}` : ''}), ` +
      (b.fused ? '' : `evaluateCheckpoint ${b.evaluate.toFixed(0)}, `) +
      `scheduling and workflow tasks ${b.scheduling.toFixed(0)}; ${eventsPerEpoch.toFixed(1)} history events` +
      (b.checkpoint
        ? `; checkpoint ${b.checkpoint.ms.toFixed(0)} ms (${b.checkpoint.mbPerSecond.toFixed(0)} MB/s), training blocked ${b.checkpoint.blockedMs.toFixed(0)} ms`
        : '; checkpoint timing: not in the train result (needs checkpointTiming in TrainUntilStepResult)'),
  };
}

/** Stops the dev server and worker the trainModel routes share (idempotent). */
export async function closeStack(): Promise<void> {
  if (!stack) return;
  const s = await stack;
  stack = undefined;
  s.worker.shutdown();
  await s.running;
  await s.plugin.close();
  await s.nativeConnection.close();
  await s.connection.close();
  await s.server.stop();
  fs.rmSync(s.root, { recursive: true, force: true });
}

export async function temporalAvailable(): Promise<string | true> {
  try {
    // Throws when the Temporal CLI (the dev server) is not installed.
    (await import('../../src/dev-server')).temporalCliPath();
    return true;
  } catch (err) {
    return (err as Error).message;
  }
}

const route: BenchRoute = {
  name: 'trainModel: dev server + worker',
  available: temporalAvailable,
  measure: (opts) => measureTrainModel(opts),
  close: closeStack,
};
export default route;
