/**
 * Records the event histories that test/replay.test.ts replays: runs a few representative
 * trainModel, hyperparameterSearch and retrainModel workflows (and some of the searches' child
 * trainModel runs) on a fresh dev server with a real worker, and saves each run's history (every
 * run of a continue-as-new chain) as JSON under test/fixtures/histories/, with an index.json
 * naming each file's workflow id and what it covers. Every run is tiny: under a minute in all.
 *
 *   node --import tsx scripts/record-histories.ts --only normal,stop-training --tag epoch-activity
 *   node --import tsx scripts/record-histories.ts --replace-all   (every fixture, pre-patch ones included)
 *
 * `--only` records just those scenarios (names as in the files: normal, early-stopped,
 * pause-resume-stop, stop-training, continue-as-new, invalid-input, grid-search, halving-search,
 * retrain, asha-search, pbt-search, random-edits, data-window, search-trial, no-drain-search) and keeps every other fixture; `--tag` saves them as `<name>.<tag>.json` beside the
 * older ones, so histories recorded before a patched change keep replaying next to those after it.
 *
 * Re-record after a deliberate, versioned change to the workflow's commands; a replay failure
 * without one means the change broke determinism for runs already in flight.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { trialId } from '../src/checkpoints/layout';
import { historyToJson } from '../test/history-json';
import { leaderboardQuery, pauseSignal, progressQuery, resumeSignal, stopSignal, type RetrainResult, type SearchResult } from '../src/workflows';
import { startStack, startWorker, waitFor } from '../test/helpers/temporal';
import { tinyInput } from '../test/e2e-support';

const OUT = path.resolve(__dirname, '../test/fixtures/histories');

export interface HistoryFixture {
  readonly file: string;
  readonly workflowId: string;
  readonly runId: string;
  readonly description: string;
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const only = option('--only')?.split(',');
  const tag = option('--tag');
  if (!only && !process.argv.includes('--replace-all')) {
    // Histories recorded before a patched change are what keeps that change's old branch tested;
    // re-recording them with today's code would silently drop that.
    console.error(
      'record-histories: name the scenarios to record with --only (and --tag to keep the older ones beside them). ' +
        '--replace-all deletes and re-records every fixture, including histories recorded before a patch: use it only when no patch id is left in src/workflows/.',
    );
    process.exit(2);
  }
  const want = (scenario: string): boolean => !only || only.includes(scenario);
  const stack = await startStack({ own: true });
  const worker = await startWorker(stack.address);
  const fixtures: HistoryFixture[] = [];
  fs.mkdirSync(OUT, { recursive: true });
  const kept: HistoryFixture[] = only ? (JSON.parse(fs.readFileSync(path.join(OUT, 'index.json'), 'utf8')) as HistoryFixture[]) : [];
  if (!only) for (const f of fs.readdirSync(OUT)) if (f.endsWith('.json')) fs.rmSync(path.join(OUT, f));

  const startWorkflow = (workflowType: string, workflowId: string, input: unknown) =>
    stack.client.workflow.start(workflowType, { taskQueue: worker.taskQueue, workflowId, args: [input] });
  const start = (workflowId: string, input: unknown) => startWorkflow('trainModel', workflowId, input);
  const settle = (h: WorkflowHandle) => h.result().catch(() => undefined);
  const progress = (h: WorkflowHandle) => h.query(progressQuery);

  /** The run id of the first run of `workflowId` (the oldest in visibility). */
  async function firstRunOf(workflowId: string): Promise<string> {
    const runs: Array<{ runId: string; start: number }> = [];
    for await (const w of stack.client.workflow.list({ query: `WorkflowId="${workflowId}"` })) runs.push({ runId: w.runId, start: w.startTime.getTime() });
    runs.sort((a, b) => a.start - b.start);
    if (!runs[0]) throw new Error(`no run of ${workflowId}`);
    return runs[0].runId;
  }

  /**
   * Saves every run of `workflowId` (oldest first, following its continue-as-new chain from
   * `firstRunId`), as `name.json`, or `name.<n>.json` for chains.
   */
  async function save(name: string, workflowId: string, description: string, firstRunId?: string): Promise<void> {
    const runs: Array<{ runId: string; history: temporal.api.history.v1.IHistory }> = [];
    let runId: string | undefined = firstRunId ?? (await firstRunOf(workflowId));
    while (runId) {
      const history: temporal.api.history.v1.IHistory = await stack.client.workflow.getHandle(workflowId, runId).fetchHistory();
      runs.push({ runId, history });
      const last: temporal.api.history.v1.IHistoryEvent | undefined = history.events?.[history.events.length - 1];
      runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    for (const [i, { runId: id, history }] of runs.entries()) {
      const base = tag ? `${name}.${tag}` : name;
      const file = runs.length === 1 ? `${base}.json` : `${base}.${i + 1}.json`;
      fs.writeFileSync(path.join(OUT, file), historyToJson(history) + '\n');
      const what = tag ? `${description}, recorded with ${tag}` : description;
      fixtures.push({ file, workflowId, runId: id, description: runs.length === 1 ? what : `${what} (run ${i + 1} of ${runs.length})` });
      console.log(`${file}: ${history.events?.length} events`);
    }
  }

  /** Run id of the child `childId` as started by the parent `parentId` (any run of its chain). */
  async function childRunId(parentId: string, parentFirstRunId: string, childId: string): Promise<string> {
    let runId: string | undefined = parentFirstRunId;
    while (runId) {
      const events: temporal.api.history.v1.IHistoryEvent[] = (await stack.client.workflow.getHandle(parentId, runId).fetchHistory()).events ?? [];
      for (const e of events) {
        const started = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
        if (started?.workflowId === childId && started.runId) return started.runId;
      }
      runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    throw new Error(`${parentId} started no child ${childId}`);
  }

  // 1. A normal run to completion.
  if (want('normal')) {
    await settle(await start('replay-normal', tinyInput({ maxEpochs: 4 })));
    await save('normal', 'replay-normal', 'completes all 4 epochs');
  }

  // 2. Early stopping on a plateau, with ReduceLROnPlateau and restoreBestWeights.
  if (want('early-stopped')) await settle(
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
  if (want('early-stopped')) await save('early-stopped', 'replay-early-stopped', 'early-stopped on a plateau, LR reduced on plateau, best weights restored');

  // 3. Paused, resumed, paused again and stopped while paused.
  if (want('pause-resume-stop')) {
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
  if (want('stop-training')) {
    const h = await start('replay-stop-training', tinyInput({ maxEpochs: 5, stepsPerEpoch: 2000, timeouts: { heartbeatSeconds: 2 } }));
    // Generous: epoch 1 is 2,000 steps, and a shared machine may be slow.
    await waitFor(async () => (await progress(h)).epoch >= 1, 600_000, 'epoch 1');
    await new Promise((r) => setTimeout(r, 1500));
    await h.signal(stopSignal);
    await settle(h);
    await save('stop-training', 'replay-stop-training', 'stopped while training: the training activity is cancelled');
  }

  // 5. Continue-as-new every 3 epochs, carrying early-stopping and plateau state.
  if (want('continue-as-new')) await settle(
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
  if (want('continue-as-new')) await save('continue-as-new', 'replay-continue-as-new', 'continues as new every 3 of 9 epochs');

  // 6. Invalid input: fails before any activity.
  if (want('invalid-input')) await settle(await start('replay-invalid', tinyInput({ stepsPerEpoch: 0 })));
  if (want('invalid-input')) await save('invalid-input', 'replay-invalid', 'rejected input (InvalidConfig), no activity scheduled');

  // 7. A 2×2 grid search, 2 trials at a time, continuing as new after every 2 trials started
  //    (2 runs), and one of its child trainModel runs.
  if (want('grid-search')) {
    const h = await startWorkflow('hyperparameterSearch', 'replay-grid', {
      base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 2 }),
      space: { 'hyperparameters.learningRate': [0.05, 0.01], 'model.params.hiddenUnits': [[4], [8]] },
      maxParallel: 2,
      continueAsNewEvery: 2,
    });
    await h.result();
    await save('grid-search', 'replay-grid', 'hyperparameterSearch: 2×2 grid, maxParallel 2, continues as new every 2 trials', h.firstExecutionRunId);
    const child = `replay-grid/${trialId(1)}`;
    await save('grid-search-trial-1', child, 'trainModel as a grid-search trial (child workflow)', await childRunId('replay-grid', h.firstExecutionRunId, child));
  }

  // 8. Successive halving, 4 trials, eta 2 (rungs of 1 and 2 epochs), and a rung-2 child: a
  //    trainModel with `resume: true` that rebuilds its state from the rung-1 epochs on disk.
  if (want('halving-search')) {
    const h = await startWorkflow('hyperparameterSearch', 'replay-halving', {
      base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 2, checkpoint: { keepLast: 2, everySeconds: 0 } }),
      strategy: 'halving',
      eta: 2,
      minEpochs: 1,
      maxParallel: 2,
      space: { 'hyperparameters.learningRate': [0.05, 0.02, 0.005, 0.001] },
    });
    const result = (await h.result()) as SearchResult;
    await save('halving-search', 'replay-halving', 'hyperparameterSearch: successive halving, 4 trials, eta 2, survivors resume', h.firstExecutionRunId);
    const child = result.best.workflowId;
    if (!child.endsWith('/rung-2')) throw new Error(`expected the best trial to come from rung 2, got ${child}`);
    await save('halving-rung-2', child, 'trainModel with resume: true (a rung-2 halving trial continuing its rung-1 run)', await childRunId('replay-halving', h.firstExecutionRunId, child));
  }

  // 9. retrainModel: the model's first retrain promotes; one trained on data with the wrong class
  //    centres is rejected against that champion (compared on the same eval set).
  if (want('retrain')) {
    const blobs = (centresSeed: number) =>
      tinyInput({
        maxEpochs: 3,
        data: {
          train: { name: 'synthetic', params: { size: 256, noise: 1.5, seed: centresSeed } },
          eval: { name: 'synthetic', split: 'test', params: { size: 128, noise: 1.5, seed: 7 } },
        },
      });
    const retrain = async (workflowId: string, train: unknown, expectPromoted: boolean) => {
      const h = await startWorkflow('retrainModel', workflowId, { modelName: 'replay-blobs', train });
      const result = (await h.result()) as RetrainResult;
      if (result.promoted !== expectPromoted) throw new Error(`${workflowId}: expected promoted=${expectPromoted}: ${result.reason}`);
      return h.firstExecutionRunId;
    };
    await save('retrain-promoted', 'replay-retrain-promoted', 'retrainModel, first of its model (no champion yet): promoted', await retrain('replay-retrain-promoted', blobs(7), true));
    await save('retrain-rejected', 'replay-retrain-rejected', 'retrainModel on corrupted data, evaluated against the champion: rejected', await retrain('replay-retrain-rejected', blobs(99), false));
  }

  // 10. ASHA, 4 trials, eta 2 (rungs of 1, 2 and 4 epochs), 2 at a time, continuing as new every
  //     3 runs started (promotions and pauses carried in the scheduler's state).
  if (want('asha-search')) {
    const h = await startWorkflow('hyperparameterSearch', 'replay-asha', {
      base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 4, checkpoint: { keepLast: 2, everySeconds: 0 } }),
      strategy: 'asha',
      eta: 2,
      minEpochs: 1,
      maxParallel: 2,
      continueAsNewEvery: 3,
      space: { 'hyperparameters.learningRate': [0.05, 0.02, 0.005, 0.001] },
    });
    await h.result();
    await save('asha-search', 'replay-asha', 'hyperparameterSearch: ASHA, 4 trials, eta 2, continues as new every 3 runs', h.firstExecutionRunId);
  }

  // 11. PBT, a population of 4 in rounds of 1 epoch (2 rounds): the bottom trial exploits a copy of a
  //     top trial's checkpoint (archive, copy, lineage) and explores.
  if (want('pbt-search')) {
    const h = await startWorkflow('hyperparameterSearch', 'replay-pbt', {
      base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 2 }),
      strategy: 'pbt',
      roundEpochs: 1,
      maxTrials: 4,
      maxParallel: 2,
      space: { 'hyperparameters.learningRate': [0.05, 0.02, 0.005, 0.001] },
    });
    const result = (await h.result()) as SearchResult;
    if (result.lineage.length === 0) throw new Error('expected an exploit in the PBT search');
    await save('pbt-search', 'replay-pbt', 'hyperparameterSearch: PBT, population 4, 2 rounds, one exploit', h.firstExecutionRunId);
  }

  // 12. Random search with live edits (editSearch Updates: maxParallel, addTrials, stop, pause and
  //     resume of a waiting trial), continuing as new every 2 trials started.
  if (want('random-edits')) {
    const h = await startWorkflow('hyperparameterSearch', 'replay-random-edits', {
      base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 1 }),
      strategy: 'random',
      maxTrials: 4,
      maxParallel: 1,
      continueAsNewEvery: 2,
      seed: 3,
      space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.05] } },
    });
    const edit = (e: unknown) => h.executeUpdate('editSearch', { args: [e] });
    // The handlers are set once the search has checked its input (activities): wait for trial 1's
    // child in the history. Not by query: a query answered while the search's first local activity
    // runs splits that workflow task, and such a history does not replay (see the session note).
    const childStarted = async () => ((await h.fetchHistory()).events ?? []).some((e) => e.childWorkflowExecutionStartedEventAttributes);
    await waitFor(childStarted, 60_000, 'trial 1');
    await edit({ op: 'pause', trial: 1 }).catch(() => undefined);
    await edit({ op: 'addTrials', trials: [{ 'hyperparameters.learningRate': 0.01 }] });
    await edit({ op: 'maxParallel', value: 2 });
    await edit({ op: 'resume', trial: 1 }).catch(() => undefined);
    await waitFor(async () => (await h.query(leaderboardQuery)).trials.length >= 3, 60_000, 'three trials');
    await edit({ op: 'stop', trial: 3 }).catch(() => undefined);
    await h.result();
    await save('random-edits', 'replay-random-edits', 'hyperparameterSearch: random, live edits (pause, addTrials, maxParallel, resume, stop), continues as new every 2 trials', h.firstExecutionRunId);
  }

  // 13. Data windows: trainModel on `sharded` daily partitions (`dt={date}`, `window: 2`), resolved
  //     at its start (train-model-data-window) and carried through continue-as-new by the input; a
  //     retrain resolving its own for its child and its evaluation (retrain-model-data-window).
  if (want('data-window')) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-replay-window-'));
    for (const offset of [-3, -2, -1, 0, 1]) {
      const day = new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
      fs.mkdirSync(path.join(dir, `dt=${day}`));
      const rows = Array.from({ length: 64 }, (_, i) => JSON.stringify({ x: [Math.sin(i + offset), Math.cos(i * 3)], y: i % 2 }));
      fs.writeFileSync(path.join(dir, `dt=${day}`, 'part-0.jsonl'), rows.join('\n') + '\n');
    }
    const windowed = { name: 'sharded', params: { uri: `${pathToFileURL(dir).href}/dt={date}/part-*.jsonl`, window: 2, format: 'jsonl', label: 'y', features: ['x'], classes: [0, 1] } };
    const data = { train: windowed, eval: { ...windowed, params: { ...windowed.params, window: 1 } } };
    const h = await start('replay-data-window', tinyInput({ maxEpochs: 2, continueAsNewEvery: 1, data }));
    await h.result();
    await save('data-window', 'replay-data-window', 'trainModel on a data window of daily partitions, resolved at its start and carried through continue-as-new', h.firstExecutionRunId);
    const r = await startWorkflow('retrainModel', 'replay-retrain-window', { modelName: 'replay-window', train: tinyInput({ maxEpochs: 2, data }) });
    await r.result();
    await save('retrain-window', 'replay-retrain-window', 'retrainModel on data windows resolved from its own start (its child and its evaluation take them)', r.firstExecutionRunId);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // 14. A search's trial its search checked (`searchTrial`: no describeWorker or checkUris, no patch
  //     markers, one upsert for its one epoch), as a random search of 2 one-epoch trials starts it.
  if (want('search-trial')) {
    const h = await startWorkflow('hyperparameterSearch', 'replay-checked', {
      base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 1 }),
      strategy: 'random',
      maxTrials: 2,
      maxParallel: 2,
      seed: 1,
      space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } },
    });
    await h.result();
    await save('search-checked', 'replay-checked', 'hyperparameterSearch whose trials it checked (searchTrial), drawing its best trial\'s learning curve at its end', h.firstExecutionRunId);
    const child = `replay-checked/${trialId(1)}`;
    await save('search-trial', child, 'trainModel as a search trial its search checked (searchTrial): no local activity, no patch marker, one upsert', await childRunId('replay-checked', h.firstExecutionRunId, child));
  }

  // 15. No drain (search-no-drain): a random search of 4 trials, 2 at a time, continuing as new
  //     after every 2 starts with both trials still running; their trialEnded signals reach the next
  //     run, which fetches their outcomes (fetchTrialOutcome). And trial-1, which signals its end
  //     (train-model-report-to-search).
  if (want('no-drain-search')) {
    const h = await startWorkflow('hyperparameterSearch', 'replay-no-drain', {
      base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 2 }),
      strategy: 'random',
      seed: 3,
      maxTrials: 4,
      maxParallel: 2,
      continueAsNewEvery: 2,
      space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } },
    });
    await h.result();
    await save('no-drain-search', 'replay-no-drain', 'hyperparameterSearch: random, 4 trials, maxParallel 2, continues as new every 2 starts with its trials running (no drain)', h.firstExecutionRunId);
    const child = `replay-no-drain/${trialId(1)}`;
    await save('no-drain-trial-1', child, 'trainModel as a search trial that signals its end to the search (trialEnded)', await childRunId('replay-no-drain', h.firstExecutionRunId, child));
  }

  const recorded = new Set(fixtures.map((f) => f.file));
  const index = [...kept.filter((f) => !recorded.has(f.file)), ...fixtures];
  fs.writeFileSync(path.join(OUT, 'index.json'), JSON.stringify(index, null, 2) + '\n');
  console.log(`wrote ${fixtures.length} histories to ${OUT}`);
  await worker.stop();
  await stack.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
