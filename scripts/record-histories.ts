/**
 * Records the event histories that test/replay.test.ts replays: runs a few representative
 * trainModel workflows on a fresh dev server with a real worker, and saves each run's history
 * (every run of a continue-as-new chain) as JSON under test/fixtures/histories/, with an
 * index.json naming each file's workflow id and what it covers.
 *
 *   node --import tsx scripts/record-histories.ts
 *
 * Re-record after a deliberate, versioned change to the workflow's commands; a replay failure
 * without one means the change broke determinism for runs already in flight.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJson } from '../test/history-json';
import { pauseSignal, progressQuery, resumeSignal, stopSignal } from '../src/workflows';
import { startStack, startWorker, waitFor } from '../test/helpers/temporal';
import { tinyInput } from '../test/e2e-support';

const OUT = path.resolve(__dirname, '../test/fixtures/histories');

export interface HistoryFixture {
  readonly file: string;
  readonly workflowId: string;
  readonly runId: string;
  readonly description: string;
}

async function main(): Promise<void> {
  const stack = await startStack({ own: true });
  const worker = await startWorker(stack.address);
  const fixtures: HistoryFixture[] = [];
  fs.mkdirSync(OUT, { recursive: true });
  for (const f of fs.readdirSync(OUT)) if (f.endsWith('.json')) fs.rmSync(path.join(OUT, f));

  const start = (workflowId: string, input: unknown) =>
    stack.client.workflow.start('trainModel', { taskQueue: worker.taskQueue, workflowId, args: [input] });
  const settle = (h: WorkflowHandle) => h.result().catch(() => undefined);
  const progress = (h: WorkflowHandle) => h.query(progressQuery);

  /** Saves every run of `workflowId` (oldest first), `name.json` or `name.<n>.json` for chains. */
  async function save(name: string, workflowId: string, description: string): Promise<void> {
    const runs: Array<{ runId: string; start: number }> = [];
    for await (const w of stack.client.workflow.list({ query: `WorkflowId="${workflowId}"` })) runs.push({ runId: w.runId, start: w.startTime.getTime() });
    runs.sort((a, b) => a.start - b.start);
    for (const [i, run] of runs.entries()) {
      const history = await stack.client.workflow.getHandle(workflowId, run.runId).fetchHistory();
      const file = runs.length === 1 ? `${name}.json` : `${name}.${i + 1}.json`;
      fs.writeFileSync(path.join(OUT, file), historyToJson(history) + '\n');
      fixtures.push({ file, workflowId, runId: run.runId, description: runs.length === 1 ? description : `${description} (run ${i + 1} of ${runs.length})` });
      console.log(`${file}: ${history.events?.length} events`);
    }
  }

  // 1. A normal run to completion.
  await settle(await start('replay-normal', tinyInput({ maxEpochs: 4 })));
  await save('normal', 'replay-normal', 'completes all 4 epochs');

  // 2. Early stopping on a plateau, with ReduceLROnPlateau and restoreBestWeights.
  await settle(
    await start(
      'replay-early-stopped',
      tinyInput({
        maxEpochs: 20,
        hyperparameters: { learningRate: 1e-7 },
        earlyStopping: { patience: 3, minDelta: 1e-3, restoreBestWeights: true },
        reduceLrOnPlateau: { patience: 1, factor: 0.1, minDelta: 1e-3 },
      }),
    ),
  );
  await save('early-stopped', 'replay-early-stopped', 'early-stopped on a plateau, LR reduced on plateau, best weights restored');

  // 3. Paused, resumed, paused again and stopped while paused.
  {
    const h = await start('replay-pause-resume-stop', tinyInput({ maxEpochs: 400 }));
    await waitFor(async () => (await progress(h)).epoch >= 2, 60_000, 'epoch 2');
    await h.signal(pauseSignal);
    await waitFor(async () => (await progress(h)).status === 'paused', 30_000, 'paused');
    await h.signal(resumeSignal);
    const resumedAt = (await progress(h)).epoch;
    await waitFor(async () => (await progress(h)).epoch >= resumedAt + 2, 60_000, 'resumed');
    await h.signal(pauseSignal);
    await waitFor(async () => (await progress(h)).status === 'paused', 30_000, 'paused again');
    await h.signal(stopSignal);
    await settle(h);
    await save('pause-resume-stop', 'replay-pause-resume-stop', 'paused, resumed, paused, stopped while paused');
  }

  // 4. Stopped in the middle of a training activity (cancellation path).
  {
    const h = await start('replay-stop-training', tinyInput({ maxEpochs: 5, stepsPerEpoch: 2000, timeouts: { heartbeatSeconds: 2 } }));
    await waitFor(async () => (await progress(h)).epoch >= 1, 60_000, 'epoch 1');
    await new Promise((r) => setTimeout(r, 1500));
    await h.signal(stopSignal);
    await settle(h);
    await save('stop-training', 'replay-stop-training', 'stopped while training: the training activity is cancelled');
  }

  // 5. Continue-as-new every 3 epochs, carrying early-stopping and plateau state.
  await settle(
    await start(
      'replay-continue-as-new',
      tinyInput({
        maxEpochs: 9,
        continueAsNewEvery: 3,
        earlyStopping: { patience: 100, restoreBestWeights: true },
        reduceLrOnPlateau: { patience: 1, factor: 0.5, minDelta: 0.05 },
      }),
    ),
  );
  await save('continue-as-new', 'replay-continue-as-new', 'continues as new every 3 of 9 epochs');

  // 6. Invalid input: fails before any activity.
  await settle(await start('replay-invalid', tinyInput({ stepsPerEpoch: 0 })));
  await save('invalid-input', 'replay-invalid', 'rejected input (InvalidConfig), no activity scheduled');

  fs.writeFileSync(path.join(OUT, 'index.json'), JSON.stringify(fixtures, null, 2) + '\n');
  console.log(`wrote ${fixtures.length} histories to ${OUT}`);
  await worker.stop();
  await stack.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
