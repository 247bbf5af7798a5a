/**
 * Trainer slots, side by side: the same 2-trial grid search (maxParallel 2) on one worker with 1
 * and with 2 trainer slots, on a real dev server with real training (MLP 784-256-256-10 on MNIST,
 * batch 128). An untimed one-step search first starts every trainer and loads the data in each
 * (a long search's steady state). Prints wall time, the training activities' summed time and their
 * overlap (server event times), and the load average.
 *
 *   npx tsx bench/slots.ts                 # slots 1 then 2, 2 epochs of 100 steps per trial
 *   npx tsx bench/slots.ts --slots 2,1 --steps 80 --rounds 2
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { DevServer } from '../src/dev-server';
import { DurableTrainPlugin } from '../src/plugin';
import { TrainerPool } from '../src/training/trainer-pool';
import type { SearchResult } from '../src/workflows';
import { benchInput } from './models';

type Event = temporal.api.history.v1.IHistoryEvent;
const TRAINING = new Set(['trainEpoch', 'trainUntilStep']);
const millis = (t: Event['eventTime']): number => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

/** [started, completed] server times of each completed training activity (trainEpoch, or trainUntilStep before it) in a trial's history. */
function trainingSpans(events: readonly Event[]): [number, number][] {
  const types = new Map<string, string>();
  const started = new Map<string, number>();
  const spans: [number, number][] = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes) types.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType!.name!);
    if (e.activityTaskStartedEventAttributes) started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), millis(e.eventTime));
    const done = e.activityTaskCompletedEventAttributes;
    if (done && TRAINING.has(types.get(String(done.scheduledEventId)) ?? '')) spans.push([started.get(String(done.scheduledEventId))!, millis(e.eventTime)]);
  }
  return spans;
}

const overlap = (a: [number, number][], b: [number, number][]): number =>
  a.reduce((sum, [s1, e1]) => sum + b.reduce((s, [s2, e2]) => s + Math.max(0, Math.min(e1, e2) - Math.max(s1, s2)), 0), 0);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { slots: { type: 'string', default: '1,2' }, steps: { type: 'string', default: '100' }, rounds: { type: 'string', default: '1' } } });
  const slotCounts = values.slots.split(',').map(Number);
  const steps = Number(values.steps);
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const server = await DevServer.start();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const native = await NativeConnection.connect({ address: server.address });
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: new DefaultLogger('ERROR') });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-slots-'));
  const rows: string[] = [];
  try {
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const slots of slotCounts) {
        const pool = TrainerPool.create({ slots, backend: process.env.DT_BACKEND ?? 'auto', log: () => undefined });
        const plugin = new DurableTrainPlugin({ trainer: pool, checkpointRoot: pathToFileURL(root).href });
        const taskQueue = `slots-${slots}-${round}`;
        const worker = await Worker.create({ connection: native, taskQueue, workflowBundle: bundle, plugins: [plugin], maxConcurrentActivityTaskExecutions: pool.size });
        const running = worker.run();
        try {
          const search = (stepsPerEpoch: number, maxEpochs: number) => ({
            base: benchInput('mlp', 128, stepsPerEpoch, maxEpochs, { timeouts: { heartbeatSeconds: 30 } }),
            space: { 'hyperparameters.learningRate': [0.001, 0.002] },
            maxParallel: 2,
          });
          const execute = async (input: ReturnType<typeof search>) =>
            (await client.workflow.execute('hyperparameterSearch', { taskQueue, workflowId: `bench-slots-${slots}-${round}-${Date.now()}`, args: [input] })) as SearchResult;
          // Untimed: a one-step search starts every trainer and loads the data in each (a long search's steady state).
          await execute(search(1, 1));
          const load = os.loadavg()[0]!;
          const t0 = Date.now();
          const result = await execute(search(steps, 2));
          const wall = (Date.now() - t0) / 1000;
          const spans = await Promise.all(result.trials.map(async (t) => trainingSpans((await client.workflow.getHandle(t.workflowId!).fetchHistory()).events ?? [])));
          const training = spans.flat().reduce((s, [a, b]) => s + (b - a), 0) / 1000;
          const together = overlap(spans[0]!, spans[1]!) / 1000;
          rows.push(`| ${slots} | ${wall.toFixed(1)} | ${training.toFixed(1)} | ${together.toFixed(1)} | ${load.toFixed(2)} → ${os.loadavg()[0]!.toFixed(2)} |`);
          console.log(rows.at(-1));
        } finally {
          worker.shutdown();
          await running;
          await pool.close();
        }
      }
    }
  } finally {
    await native.close();
    await connection.close();
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
  console.log(`\n2-trial grid search, MLP 784-256-256-10 on MNIST, batch 128, 2 epochs of ${steps} steps per trial, ${os.availableParallelism()} cores`);
  console.log('| slots | wall s | training activities, summed s | both training at once s | load avg (1 min) start → end |');
  console.log('|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
