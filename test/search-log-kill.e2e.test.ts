/**
 * Restart-exact at the search log (issue #23 point 6): a worker process SIGKILLed (with its
 * trainer) in the middle of writing a segment of a search's log, at a seeded segment and moment of
 * the file:// store's create-only write (DT_FAULT_KILL_AT, src/checkpoints/fault-hooks.ts: half-way
 * through the temporary file, holding the lock, or just after the segment is stored), then another
 * worker picks the search up. The search continues as new across the kill's neighbourhood too. Its
 * log, read back, gives the same table as an uninterrupted search's, row for row, and no segment
 * is missing, torn or written twice.
 *
 *   node --import tsx --test test/search-log-kill.e2e.test.ts       (DT_TEST_SEED=<n> replays a seed)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { INTERNAL_PREFIX } from '../src/checkpoints/keys';
import { searchLogKey } from '../src/checkpoints/layout';
import type { SearchResult } from '../src/workflows';
import type { SearchLogRow as TypedRow } from '../src/workflows/search';
import { startStack, startWorker, startWorkerProcess, tempCheckpointRoot, uniqueId, type InProcessWorker, type Stack, type WorkerProcess } from './helpers/temporal';
import { workerEnv } from './helpers/restart';
import { mulberry32, testSeed } from './helpers/seed';
import { tinyInput } from './e2e-support';
import { tableOf } from './search-simulate';
import { logRows } from './search-e2e-support';

const INPUT = {
  base: tinyInput({ stepsPerEpoch: 4, maxEpochs: 2, model: { name: 'mlp', params: { hiddenUnits: [4] } } }),
  strategy: 'random',
  maxTrials: 6,
  maxParallel: 2,
  continueAsNewEvery: 3,
  seed: 5,
  space: { 'hyperparameters.learningRate': { loguniform: [1e-3, 1e-1] } },
};

/** A trial's row without what names the search (its workflow id and folder). */
const comparable = (rows: readonly ReturnType<typeof tableOf>[number][]) =>
  rows.map((t) => ({ trial: t.trial, params: t.params, status: t.status, rung: t.rung, value: t.value, epochs: t.epochs, step: t.step, runStatus: t.runStatus, error: t.error }));

let stack: Stack;
let worker: InProcessWorker;
const processes: WorkerProcess[] = [];
before(async () => {
  stack = await startStack();
  worker = await startWorker(stack.address);
});
after(async () => {
  for (const p of processes) await p.stop();
  await worker?.stop();
  await stack?.close();
});

test('a worker SIGKILLed while it writes a search log segment: the search ends with the uninterrupted search\'s table, row for row', async (t) => {
  const seed = testSeed('search-log-kill');
  t.diagnostic(`fault seed ${seed} (DT_TEST_SEED=${seed} replays it)`);
  const draw = mulberry32(seed);

  const root = tempCheckpointRoot();
  const reference = await stack.client.workflow.start('hyperparameterSearch', { taskQueue: worker.taskQueue, workflowId: uniqueId('log-ref'), args: [{ ...INPUT, base: { ...INPUT.base, checkpoint: { uri: root } } }] });
  const expected = (await reference.result()) as SearchResult;
  const expectedRows = await logRows(expected.searchUri);
  const segments = fs.readdirSync(path.join(fileURLToPath(expected.searchUri), 'log')).length;
  t.diagnostic(`reference: ${expectedRows.length} rows in ${segments} segments`);
  assert.ok(segments >= 2, `${segments} segments`);

  // A segment the search surely writes (not its last: the kill must leave work to resume), and a moment of its write.
  const seq = Math.floor(draw() * (segments - 1));
  // The moments a create-only write passes through (it links its temporary file; no lock: 'holding-lock' never comes).
  const moment = (['in-tmp-write', 'after-put'] as const)[Math.floor(draw() * 2)]!;
  t.diagnostic(`SIGKILL ${moment} of ${searchLogKey(seq)}`);
  const taskQueue = uniqueId('log-kill');
  const faultedRoot = tempCheckpointRoot();
  const env = workerEnv(stack.address, taskQueue, faultedRoot);
  const doomed = startWorkerProcess({ ...env, DT_FAULT_KILL_AT: `${moment}:${searchLogKey(seq)}` });
  processes.push(doomed);
  const handle = await stack.client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: uniqueId('log-faulted'), args: [INPUT] });
  // Bounded: a moment the write never passes through fails here, naming it, instead of hanging the suite.
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the fault hook ${moment} of ${searchLogKey(seq)} never fired in 180 s`)), 180_000);
    doomed.child.once('exit', (c, signal) => {
      clearTimeout(timer);
      resolve(signal === 'SIGKILL' ? -9 : c);
    });
  });
  assert.equal(code, -9, `the worker was SIGKILLed by the fault hook:\n${doomed.output().slice(-2000)}`);
  assert.match(doomed.output(), new RegExp(`fault injection: SIGKILL ${moment} ${searchLogKey(seq).replace(/\./g, '\\.')}`));
  const rescuer = startWorkerProcess(env);
  processes.push(rescuer);
  const result = (await handle.result()) as SearchResult;

  const rows = await logRows(result.searchUri);
  // Segments 0..n-1: no gap (the store's own leftovers of the killed write, its temporary file or lock, are not segments).
  const files = fs.readdirSync(path.join(fileURLToPath(result.searchUri), 'log')).filter((f) => !f.startsWith(INTERNAL_PREFIX));
  assert.deepEqual(files.sort(), Array.from({ length: files.length }, (_, i) => searchLogKey(i).slice('log/'.length)));
  assert.ok(files.length > seq, `segment ${seq} was written after all (${files.length} segments)`);
  assert.deepEqual(comparable(tableOf([rows as unknown as TypedRow[]])), comparable(tableOf([expectedRows as unknown as TypedRow[]])));
  assert.deepEqual(comparable(result.trials), comparable(expected.trials));
  assert.equal(result.best.trial, expected.best.trial);
  assert.equal(result.best.value, expected.best.value);
});
