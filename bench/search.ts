/**
 * Search strategies side by side on MNIST, on a real dev server with a real worker (a trainer
 * process per slot), one after the other in one run:
 *
 *   (A) the same trials (a grid of learning rates) and the same maxParallel: grid (every trial
 *       trains maxEpochs), synchronous successive halving and ASHA (eta 2 from 1 epoch);
 *   (B) the same total epochs: random search (population × maxEpochs) against PBT on the same
 *       first draws (a round of 1 epoch; the bottom quantile exploits the top).
 *
 * Per search: wall time (the search's first to last history event), epochs trained (the trial
 * table), the best metric, and two utilisations of the maxParallel slots: children in flight
 * (Σ child run spans / (slots × wall)) and the trainer busy (Σ trainEpoch, or trainUntilStep + evaluateCheckpoint,
 * activity spans / (slots × wall)). Times come from server event times.
 *
 *   npx tsx bench/search.ts            # a few minutes on 2 cores
 *   npx tsx bench/search.ts --quick    # fewer steps per epoch
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { DevServer } from '../src/dev-server';
import { DurableTrainPlugin } from '../src/plugin';
import type { SearchResult } from '../src/workflows';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const TASK_QUEUE = 'dt-bench-search';
const MAX_PARALLEL = 2;
const MAX_EPOCHS = 4;
const METRIC = 'val_accuracy';
const LR = 'hyperparameters.learningRate';
const HIDDEN = 'model.params.hiddenUnits';
/**
 * (A): 4 learning rates × 2 widths = 8 trials. The widths make trials take different times (what
 * makes a synchronous rung wait); the rates are not sorted, since trials reporting from worst to best
 * are ASHA's worst case (it promotes each new leader).
 */
const GRID = { [LR]: [0.003, 0.3, 0.0003, 0.03], [HIDDEN]: [[32], [512, 512]] };
const GRID_TRIALS = 8;
/** (B): the population, and random search's trial count. */
const POPULATION = 4;

const quick = process.argv.includes('--quick');
for (const a of process.argv.slice(2)) if (a !== '--quick') throw new Error(`Unknown argument \`${a}\` (expected --quick)`);
const STEPS_PER_EPOCH = quick ? 8 : 25;

/** A small MLP on MNIST (8,500 training digits, 1,000 test digits), batch 64. */
const base = {
  model: { name: 'mlp', params: { hiddenUnits: [32] } },
  data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 1000 } },
  hyperparameters: { optimizer: 'adam', learningRate: 0.001, batchSize: 64 },
  stepsPerEpoch: STEPS_PER_EPOCH,
  maxEpochs: MAX_EPOCHS,
  seed: 1,
};

interface Case {
  readonly group: 'A' | 'B';
  readonly label: string;
  readonly input: Record<string, unknown>;
}

const common = { base, metric: METRIC, maxParallel: MAX_PARALLEL };
const CASES: Case[] = [
  { group: 'A', label: 'grid', input: { ...common, strategy: 'grid', space: GRID } },
  { group: 'A', label: 'halving (sync)', input: { ...common, strategy: 'halving', eta: 2, minEpochs: 1, space: GRID } },
  { group: 'A', label: 'asha', input: { ...common, strategy: 'asha', eta: 2, minEpochs: 1, maxTrials: GRID_TRIALS, space: GRID } },
  { group: 'B', label: 'random', input: { ...common, strategy: 'random', seed: 5, maxTrials: POPULATION, space: { [LR]: { loguniform: [0.0001, 0.3] } } } },
  { group: 'B', label: 'pbt', input: { ...common, strategy: 'pbt', seed: 5, maxTrials: POPULATION, roundEpochs: 1, space: { [LR]: { loguniform: [0.0001, 0.3] } } } },
];

const millis = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

async function chain(client: Client, workflowId: string, firstRunId: string): Promise<HistoryEvent[]> {
  const out: HistoryEvent[] = [];
  let runId: string | undefined = firstRunId;
  while (runId) {
    const events: HistoryEvent[] = (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
    out.push(...events);
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return out;
}

/** Σ (completed − started) of the activities named `types` in a child's history, ms. */
function activityBusy(events: readonly HistoryEvent[], types: readonly string[]): number {
  const typeOf = new Map<number, string>();
  const startedAt = new Map<number, number>();
  let busy = 0;
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) typeOf.set(Number(e.eventId), scheduled.activityType?.name ?? '');
    if (e.activityTaskStartedEventAttributes) startedAt.set(Number(e.activityTaskStartedEventAttributes.scheduledEventId), millis(e.eventTime));
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes;
    if (done && types.includes(typeOf.get(Number(done.scheduledEventId)) ?? '')) {
      busy += millis(e.eventTime) - (startedAt.get(Number(done.scheduledEventId)) ?? millis(e.eventTime));
    }
  }
  return busy;
}

interface Row {
  readonly label: string;
  readonly group: string;
  readonly trials: number;
  readonly runs: number;
  readonly epochs: number;
  readonly wallS: number;
  readonly slotUse: number;
  readonly trainerUse: number;
  readonly best: number;
  readonly bestParams: string;
  readonly copies: number;
}

async function measure(client: Client, c: Case, n: number): Promise<Row> {
  const workflowId = `bench-search-${process.pid}-${n}`;
  const handle = await client.workflow.start('hyperparameterSearch', { taskQueue: TASK_QUEUE, workflowId, args: [c.input] });
  const result = (await handle.result()) as SearchResult;
  const events = await chain(client, workflowId, handle.firstExecutionRunId);
  const wall = millis(events[events.length - 1]!.eventTime) - millis(events[0]!.eventTime);
  const startedAt = new Map<string, number>();
  let inFlight = 0;
  let trainer = 0;
  for (const e of events) {
    const started = e.childWorkflowExecutionStartedEventAttributes;
    if (started) startedAt.set(started.workflowExecution!.workflowId!, millis(e.eventTime));
    const closed = e.childWorkflowExecutionCompletedEventAttributes ?? e.childWorkflowExecutionFailedEventAttributes;
    if (closed) {
      const id = closed.workflowExecution!.workflowId!;
      inFlight += millis(e.eventTime) - (startedAt.get(id) ?? millis(e.eventTime));
      trainer += activityBusy((await client.workflow.getHandle(id).fetchHistory()).events ?? [], ['trainEpoch', 'trainUntilStep', 'evaluateCheckpoint']);
    }
  }
  const lr = result.best.params[LR];
  const hidden = result.best.params[HIDDEN];
  return {
    label: c.label,
    group: c.group,
    trials: result.trials.length,
    runs: startedAt.size,
    epochs: result.trials.reduce((a, t) => a + t.epochs, 0),
    wallS: wall / 1000,
    slotUse: inFlight / (MAX_PARALLEL * wall),
    trainerUse: trainer / (MAX_PARALLEL * wall),
    best: result.best.value,
    bestParams: [typeof lr === 'number' ? `lr ${lr.toPrecision(2)}` : '', hidden ? `hidden ${JSON.stringify(hidden)}` : ''].filter(Boolean).join(', '),
    copies: result.lineage.length,
  };
}

function print(rows: readonly Row[], load: string): void {
  const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
  console.log(`\nMNIST, MLP (A: hidden [32] or [512, 512]; B: [32]), batch 64, ${STEPS_PER_EPOCH} steps/epoch, ${MAX_EPOCHS} epochs max, eval 1,000 digits, maxParallel ${MAX_PARALLEL}, one worker with ${MAX_PARALLEL} trainer slots`);
  console.log(`load average before / after: ${load}; ${os.cpus().length} cores\n`);
  console.log('| | strategy | trials | child runs | epochs trained | wall (s) | slots in use | trainer busy | best val_accuracy (trial) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const extra = r.copies > 0 ? `, ${r.copies} copies` : '';
    console.log(`| ${r.group} | ${r.label} | ${r.trials} | ${r.runs} | ${r.epochs} | ${r.wallS.toFixed(1)} | ${pct(r.slotUse)} | ${pct(r.trainerUse)} | ${r.best.toFixed(3)} (${r.bestParams}${extra}) |`);
  }
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const loadBefore = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const server = await DevServer.start();
  const connection = await Connection.connect({ address: server.address });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-search-'));
  // One trainer slot per search slot (each with its share of the cores), as a worker sized for the search would be.
  const plugin = new DurableTrainPlugin({ trainer: { slots: MAX_PARALLEL, backend: process.env.DT_BACKEND ?? 'auto', log: () => undefined }, checkpointRoot: pathToFileURL(root).href });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: new DefaultLogger('ERROR') }),
    plugins: [plugin],
    maxConcurrentActivityTaskExecutions: plugin.trainer.size,
  });
  const running = worker.run();
  const client = new Client({ connection });
  try {
    // Untimed warm-up: starts the trainer process, loads MNIST and warms tfjs for this model.
    await client.workflow.execute('trainModel', { taskQueue: TASK_QUEUE, workflowId: `bench-search-${process.pid}-warmup`, args: [{ ...base, stepsPerEpoch: 2, maxEpochs: 1 }] });
    const rows: Row[] = [];
    for (const [i, c] of CASES.entries()) {
      const row = await measure(client, c, i);
      console.log(`${c.label}: ${row.wallS.toFixed(1)} s, best ${row.best.toFixed(3)}`);
      rows.push(row);
    }
    print(rows, `${loadBefore} / ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    worker.shutdown();
    await running;
    await plugin.close();
    await nativeConnection.close();
    await connection.close();
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
