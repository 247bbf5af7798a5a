/**
 * hyperparameterSearch end to end on a real dev server with real workers and real (tiny) training:
 * a grid that runs every trial exactly once within maxParallel (and continues as new twice), random
 * draws that repeat for a seed, successive halving whose survivors resume from their own checkpoints,
 * ASHA promoting before a rung fills, and a search whose worker process is SIGKILLed mid-way and ends
 * exactly as the undisturbed one.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { leaderboardQuery, type SearchResult } from '../src/workflows';
import { RESULTS_SVG, exportedModelUri, joinUri, modelJsonKey, rungModelDir, runUriOf } from '../src/checkpoints/layout';
import { parseSearchConfig } from '../src/config/search-config';
import { planTrials } from '../src/workflows/search';
import { Worker } from '@temporalio/worker';
import { startStack, startWorker, startWorkerProcess, tempCheckpointRoot, tempDir, uniqueId, waitFor, workflowBundle, type InProcessWorker, type Stack, type WorkerProcess } from './helpers/temporal';
import { tinyInput } from './e2e-support';
import { assertBestIsBest, epochTraining, chainHistories, childResult, childStats, rankBest, type HistoryEvent } from './search-e2e-support';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const BASE = tinyInput({ stepsPerEpoch: 4, maxEpochs: 2, model: { name: 'mlp', params: { hiddenUnits: [8] } } });
const GRID = {
  base: BASE,
  space: { 'hyperparameters.learningRate': [0.1, 0.01, 0.001], 'model.params.hiddenUnits': [[4], [8], [16]] },
  maxParallel: 2,
  continueAsNewEvery: 4,
};

describe('hyperparameterSearch', () => {
  let stack: Stack;
  let worker: InProcessWorker;
  let gridReference: SearchResult | undefined;
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

  const start = (input: unknown, workflowId = uniqueId('search'), taskQueue = worker.taskQueue) =>
    stack.client.workflow.start('hyperparameterSearch', { taskQueue, workflowId, args: [input] });

  test('a 3×3 grid: every trial runs exactly once, never more than maxParallel at a time, and the best wins', async (t) => {
    const started = Date.now();
    const handle = await start(GRID);
    const result = (await handle.result()) as SearchResult;
    t.diagnostic(`9 trials in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    gridReference = result;

    assert.equal(result.trials.length, 9);
    assert.deepEqual(result.trials.map((tr) => tr.id), Array.from({ length: 9 }, (_, i) => `trial-${i + 1}`));
    assert.ok(result.trials.every((tr) => tr.status === 'completed' && tr.epochs === 2 && tr.step === 8), JSON.stringify(result.trials));
    assert.deepEqual(result.trials.map((tr) => tr.params), planTrials(parseSearchConfig(GRID)));
    assertBestIsBest(result);

    // From the parent's own history (all 3 runs of its continue-as-new chain).
    const runs = await chainHistories(stack.client, handle.workflowId, handle.firstExecutionRunId);
    assert.equal(runs.length, 3, 'continued as new after 4 and 8 trials');
    const stats = childStats(runs);
    assert.deepEqual([...stats.started].sort(), result.trials.map((tr) => `${handle.workflowId}/${tr.id}`).sort(), 'every trial started exactly once');
    assert.equal(stats.maxConcurrent, 2, 'maxParallel reached and never exceeded');
    assert.equal(stats.openAtEnd, 0);
    // Each run's history replays against the current code (what a recorded fixture would check).
    const runIds = [handle.firstExecutionRunId, ...runs.slice(0, -1).map((r) => r[r.length - 1]!.workflowExecutionContinuedAsNewEventAttributes!.newExecutionRunId!)];
    const histories = await Promise.all(runIds.map(async (runId) => ({ workflowId: handle.workflowId, history: await stack.client.workflow.getHandle(handle.workflowId, runId).fetchHistory() })));
    for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories)) assert.equal(r.error, undefined, `${r.runId}: ${r.error}`);

    // Visibility agrees: exactly these 9 trainModel runs, all completed.
    const children = await waitFor(async () => {
      const found: string[] = [];
      for await (const w of stack.client.workflow.list({ query: `WorkflowType="trainModel" AND ExecutionStatus="Completed"` })) {
        if (w.workflowId.startsWith(`${handle.workflowId}/`)) found.push(w.workflowId);
      }
      return found.length >= 9 ? found : undefined;
    }, 30_000, 'the 9 children in visibility');
    assert.equal(children.length, 9);

    // Each trial's metric is its child's final metric; the winner's model is the child's export.
    for (const tr of result.trials) {
      const child = await childResult(stack.client, tr.workflowId!);
      assert.equal(tr.value, child.finalMetrics!.val_loss);
      assert.equal(child.runId, tr.id);
      assert.equal(child.runUri, runUriOf(result.searchUri, tr.id));
    }
    assert.equal(result.best.modelUri, exportedModelUri(joinUri(result.searchUri, result.best.id)));
    assert.ok(fs.existsSync(fileURLToPath(result.best.modelUri)));

    // Results beside the checkpoints.
    const dir = fileURLToPath(result.searchUri);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
    assert.equal(json.bestTrial, result.best.trial);
    const csv = fs.readFileSync(path.join(dir, 'results.csv'), 'utf8').trim().split('\n');
    assert.equal(csv.length, 10);
    assert.match(csv[0]!, /^trial,id,status,rung,epochs,step,val_loss,hyperparameters\.learningRate,model\.params\.hiddenUnits,/);
    // The leaderboard chart names every trial that has a metric, and the metric on its axis.
    const svg = fs.readFileSync(path.join(dir, 'results.svg'), 'utf8');
    for (const t of result.trials.filter((x: { value: number | null }) => x.value !== null)) assert.ok(svg.includes(`>${t.id}<`), `${t.id} in results.svg`);
    assert.ok(svg.includes('val_loss (lower is better)'));
    assert.equal(result.plotUri, joinUri(result.searchUri, RESULTS_SVG));

    const board = await handle.query(leaderboardQuery);
    assert.equal(board.status, 'completed');
    assert.equal(board.trials[0]!.trial, result.best.trial);
    assert.equal(board.continuedRuns, 2);
  });

  test('random search: the same seed draws the same trials (and trains them to the same metrics)', async () => {
    const input = (seed: number) => ({
      base: tinyInput({ stepsPerEpoch: 4, maxEpochs: 1 }),
      strategy: 'random',
      seed,
      maxTrials: 3,
      maxParallel: 3,
      space: { 'hyperparameters.learningRate': { loguniform: [1e-3, 1e-1] }, 'model.params.hiddenUnits': { choice: [[4], [8]] } },
    });
    const [a, b] = (await Promise.all([start(input(11)), start(input(11))].map(async (h) => (await h).result()))) as SearchResult[];
    assert.deepEqual(a!.trials.map((tr) => tr.params), b!.trials.map((tr) => tr.params));
    assert.deepEqual(a!.trials.map((tr) => tr.value), b!.trials.map((tr) => tr.value));
    assert.deepEqual(a!.trials.map((tr) => tr.params), planTrials(parseSearchConfig(input(11))));
    assert.notDeepEqual(planTrials(parseSearchConfig(input(12))), planTrials(parseSearchConfig(input(11))));
    assertBestIsBest(a!);
  });

  test('successive halving keeps the best of each rung, and survivors resume from their own checkpoints', async (t) => {
    const input = {
      base: tinyInput({ stepsPerEpoch: 4, maxEpochs: 4, checkpoint: { keepLast: 2, everySeconds: 0 } }),
      strategy: 'halving',
      eta: 2,
      minEpochs: 1,
      maxParallel: 2,
      space: { 'hyperparameters.learningRate': [0.05, 0.02, 0.005, 0.001] },
    };
    const handle = await start(input);
    const result = (await handle.result()) as SearchResult;
    const id = handle.workflowId;
    assert.deepEqual(result.rungs.map((r) => [r.trials, r.epochs]), [[4, 1], [2, 2], [1, 4]]);

    // Which trials each rung ran, from the parent's history.
    const started = childStats(await chainHistories(stack.client, id, handle.firstExecutionRunId)).started;
    const rung1 = started.filter((w) => !w.includes('/rung-'));
    const rung2 = started.filter((w) => w.endsWith('/rung-2'));
    const rung3 = started.filter((w) => w.endsWith('/rung-3'));
    assert.equal(rung1.length, 4);
    assert.equal(rung2.length, 2);
    assert.equal(rung3.length, 1);
    assert.equal(started.length, 7);

    // The survivors of each rung are its best trials by val_loss (ties: lower trial number).
    const top = async (ids: string[], k: number) => {
      const scored = await Promise.all(ids.map(async (w) => ({ w, v: (await childResult(stack.client, w)).finalMetrics!.val_loss!, n: Number(/trial-(\d+)/.exec(w)![1]) })));
      scored.sort((x, y) => x.v - y.v || x.n - y.n);
      return scored.slice(0, k).map((s) => `${id}/trial-${s.n}`);
    };
    assert.deepEqual((await top(rung1, 2)).sort(), rung2.map((w) => w.replace('/rung-2', '')).sort());
    assert.deepEqual(await top(rung2, 1), rung3.map((w) => w.replace('/rung-3', '')));
    // The last rung too continues its run (trainModel's `resume`): no step is trained twice.
    const last = await epochTraining(stack.client.workflow.getHandle(rung3[0]!));
    const rung3Result = await childResult(stack.client, rung3[0]!);
    const rung2Result = await childResult(stack.client, rung3[0]!.replace('/rung-3', '/rung-2'));
    assert.equal(last.reduce((a, r) => a + r.stepsRun, 0), rung3Result.step - rung2Result.step);
    const winner = rung3[0]!.replace('/rung-3', '');
    assert.equal(`${id}/${result.best.id}`, winner);
    assert.equal(result.best.epochs, 4);
    assert.equal(result.trials.filter((tr) => tr.status === 'pruned').length, 3);
    const board = await handle.query(leaderboardQuery);
    assert.equal(board.trials[0]!.trial, result.best.trial, 'the leaderboard leads with the last rung');
    assert.equal(board.rung, 3);

    // Survivors continue their own run: rung 2 picks up at rung 1's last checkpoint, trains no step twice.
    for (const w of rung2) {
      const first = await childResult(stack.client, w.replace('/rung-2', ''));
      const second = await childResult(stack.client, w);
      assert.equal(second.runUri, first.runUri, 'the same run folder');
      const trained = await epochTraining(stack.client.workflow.getHandle(w));
      t.diagnostic(`${w}: ${trained.map((r) => `${r.resumedFromStep}→${r.step} (+${r.stepsRun})`).join(', ')}`);
      assert.ok(trained.every((r) => r.stepsRun > 0), 'resume: no epoch of rung 1 is walked through again');
      const firstTrained = trained[0]!;
      assert.equal(firstTrained.resumedFromStep, first.step, 'resumed from the rung-1 final checkpoint, not from step 0');
      assert.ok(firstTrained.step > first.step);
      assert.equal(trained.reduce((a, r) => a + r.stepsRun, 0), second.step - first.step, 'no step trained twice');
      assert.deepEqual(second.history.map((h) => h.epoch), [1, 2], 'epochs continue');
      assert.deepEqual(second.history[0]!.metrics, first.history[0]!.metrics, 'the rung-1 epoch is the same epoch');
      // The rung-1 export was archived before rung 2 exported its own.
      assert.ok(fs.existsSync(fileURLToPath(joinUri(first.runUri, modelJsonKey(rungModelDir(1))))));
    }
  });

  test('ASHA promotes without waiting for a rung to fill; promoted trials continue their own runs', async () => {
    const input = {
      base: tinyInput({ stepsPerEpoch: 4, maxEpochs: 4, checkpoint: { keepLast: 2, everySeconds: 0 } }),
      strategy: 'asha',
      eta: 2,
      minEpochs: 1,
      maxParallel: 2,
      space: { 'hyperparameters.learningRate': [0.05, 0.02, 0.005, 0.001] },
    };
    const handle = await start(input);
    const result = (await handle.result()) as SearchResult;
    const id = handle.workflowId;
    assert.deepEqual(result.rungs.map((r) => r.epochs), [1, 2, 4]);
    const runs = await chainHistories(stack.client, id, handle.firstExecutionRunId);
    const events = runs.flat();
    const started = childStats(runs).started;
    assert.equal(started.filter((w) => !w.includes('/rung-')).length, 4);
    assert.ok(started.some((w) => w.endsWith('/rung-2')), 'someone was promoted');
    // Asynchronous: a rung-2 run started before every rung-1 run had finished.
    const at = (pred: (e: HistoryEvent) => boolean) => events.findIndex(pred);
    const firstRung2 = at((e) => !!e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId?.endsWith('/rung-2'));
    const lastRung1Done = Math.max(...[1, 2, 3, 4].map((n) => at((e) => e.childWorkflowExecutionCompletedEventAttributes?.workflowExecution?.workflowId === `${id}/trial-${n}`)));
    assert.ok(firstRung2 < lastRung1Done, `rung 2 started at event ${firstRung2}, rung 1 ended at ${lastRung1Done}`);
    // Promoted runs continue their own run folder from the previous rung's checkpoint: no step twice.
    for (const w of started.filter((x) => x.includes('/rung-'))) {
      const rung = Number(/rung-(\d+)$/.exec(w)![1]);
      const before = await childResult(stack.client, rung === 2 ? w.replace('/rung-2', '') : w.replace(`/rung-${rung}`, `/rung-${rung - 1}`));
      const after = await childResult(stack.client, w);
      assert.equal(after.runUri, before.runUri);
      const trained = await epochTraining(stack.client.workflow.getHandle(w));
      assert.equal(trained.reduce((a, r) => a + r.stepsRun, 0), after.step - before.step, `${w}: no step trained twice`);
    }
    assert.ok(result.trials.every((tr) => tr.status === 'completed' || tr.status === 'pruned'), JSON.stringify(result.trials.map((tr) => tr.status)));
    const completed = result.trials.filter((tr) => tr.status === 'completed');
    assert.ok(completed.every((tr) => tr.rung === Math.max(...result.trials.map((x) => x.rung))), 'the completed trials are the highest rung\'s');
    assert.equal(result.best.trial, rankBest(completed));
    const histories = [{ workflowId: id, history: await handle.fetchHistory() }];
    for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories)) assert.equal(r.error, undefined, `${r.runId}: ${r.error}`);
  });

  test('bad input fails before any child starts, naming every bad field', async () => {
    const handle = await start({ base: tinyInput(), space: { 'hyperparameters.learningRate': [0.1, 0], 'model.parms.x': [1] }, maxParallel: 0 });
    const err = await handle.result().then(() => assert.fail('should fail'), (e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'InvalidConfig');
    assert.match(err.cause.message, /`maxParallel` to be a whole number from 1 to 1000, got `0`/);
    const events = (await handle.fetchHistory()).events ?? [];
    assert.ok(!events.some((e) => e.startChildWorkflowExecutionInitiatedEventAttributes), 'no child was started');
    const second = await start({ base: tinyInput(), space: { 'hyperparameters.learningRate': [0.1, 0], 'model.parms': [{ x: 1 }] } });
    const err2 = await second.result().then(() => assert.fail('should fail'), (e: unknown) => e as WorkflowFailedError);
    assert.match(String(err2.cause?.message), /`trial-2: hyperparameters\.learningRate` to be a number greater than 0 and at most 1000, got `0`/);
    assert.match(String(err2.cause?.message), /`trial-1: model\.parms` to be one of the known fields/);
  });

  test('failed trials are recorded and the search goes on, up to failureBudget', async () => {
    // Trial 2 reads a CSV that is not there: it passes every check at the start (its URI is under
    // the allowed test folder) and fails non-retryably when the trainer opens it.
    const synthetic = { name: 'synthetic', params: { size: 256, noise: 1.5 } };
    const missing = { name: 'csv', params: { uri: pathToFileURL(path.join(tempDir('dt-missing-'), 'nothing-here.csv')).href, label: 'y' } };
    const input = (failureBudget: number, maxParallel: number) => ({
      base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 1 }),
      space: { 'data.train': [synthetic, missing, synthetic] },
      maxParallel,
      failureBudget,
    });
    const result = (await (await start(input(1, 3))).result()) as SearchResult;
    assert.deepEqual(result.trials.map((tr) => tr.status), ['completed', 'failed', 'completed']);
    assert.equal(result.failed, 1);
    assert.match(result.trials[1]!.error!, /no file at/);
    assert.notEqual(result.best.trial, 2);
    const csv = fs.readFileSync(fileURLToPath(result.csvUri), 'utf8');
    assert.match(csv, /\n2,trial-2,failed,/);

    // One at a time: the failure of trial-2 ends the search before trial-3 starts.
    const handle = await start(input(0, 1));
    const err = await handle.result().then(() => assert.fail('should fail'), (e: unknown) => e as WorkflowFailedError);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'FailureBudgetExceeded');
    assert.match(err.cause.message, /1 trials failed, more than failureBudget 0: trial-2 \(/);
    const started = childStats(await chainHistories(stack.client, handle.workflowId, handle.firstExecutionRunId)).started;
    assert.deepEqual(started, [`${handle.workflowId}/trial-1`, `${handle.workflowId}/trial-2`]);
  });

  test('a worker process SIGKILLed mid-search: every trial once, none left running, the same winner', async (t) => {
    assert.ok(gridReference, 'runs after the grid test');
    const taskQueue = uniqueId('tq-search-kill');
    const spawnWorker = () => {
      const p = startWorkerProcess({ TEMPORAL_ADDRESS: stack.address, TEMPORAL_NAMESPACE: 'default', DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: tempCheckpointRoot() });
      processes.push(p);
      return p;
    };
    const first = spawnWorker();
    const handle = await start(GRID, uniqueId('search-killed'), taskQueue);
    const seen = await waitFor(async () => {
      const b = await handle.query(leaderboardQuery);
      return b.trials.filter((tr) => tr.status === 'completed').length >= 3 && b.running > 0 ? b : undefined;
    }, 120_000, '3 trials done and more running');
    await first.kill();
    t.diagnostic(`SIGKILLed the worker with ${seen.trials.filter((tr) => tr.status === 'completed').length} trials done, ${seen.running} running`);
    await sleep(1000);
    spawnWorker();
    const result = (await handle.result()) as SearchResult;

    const stats = childStats(await chainHistories(stack.client, handle.workflowId, handle.firstExecutionRunId));
    assert.deepEqual([...stats.started].sort(), result.trials.map((tr) => `${handle.workflowId}/${tr.id}`).sort(), 'every trial started exactly once');
    assert.ok(stats.maxConcurrent <= 2);
    assert.equal(stats.openAtEnd, 0);
    let running = 0;
    for await (const w of stack.client.workflow.list({ query: `WorkflowType="trainModel" AND ExecutionStatus="Running"` })) {
      if (w.workflowId.startsWith(`${handle.workflowId}/`)) running++;
    }
    assert.equal(running, 0, 'no trial left running');
    assert.ok(result.trials.every((tr) => tr.status === 'completed'));
    assert.deepEqual(result.trials.map((tr) => tr.value), gridReference!.trials.map((tr) => tr.value), 'the same metrics, bit for bit');
    assert.equal(result.best.trial, gridReference!.best.trial);
    assert.deepEqual(result.best.params, gridReference!.best.params);
  });
});
