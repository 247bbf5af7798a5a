/**
 * retrainModel on a real dev server and worker: warm start from the champion, a child trainModel,
 * champion vs challenger on the same eval set, promotion only on a win, every decision recorded;
 * on a tfjs-layers model and on the shipped trainable SavedModel; plus the champion pointer's
 * compare-and-swap and retry-safety, and the input's validation.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { createChampionActivities, type ChampionRecord, type DecisionRecord, type RecordDecisionInput } from '../src/activities/champion';
import { RETRAIN_DECISION, STATE_JSON, checkpointKey, exportedModelUri, joinUri, modelFolderOf, runUriOf } from '../src/checkpoints/layout';
import { openStore } from '../src/checkpoints/open-store';
import { parseRetrainConfig, retrainRunId } from '../src/config/retrain-config';
import { ConfigError } from '../src/config/validate';
import { TrainerClient } from '../src/training/trainer-client';
import { decidePromotion, type RetrainResult } from '../src/workflows';
import { Worker } from '@temporalio/worker';
import { historyEventTypes, startStack, startWorker, tempCheckpointRoot, uniqueId, workflowBundle, type InProcessWorker, type Stack } from './helpers/temporal';
import { tinyInput } from './e2e-support';

const readJson = <T>(uri: string): T => JSON.parse(fs.readFileSync(fileURLToPath(uri), 'utf8')) as T;

/** Synthetic blobs; `centresSeed` other than the eval set's 7 is corrupted data (wrong class centres). */
function blobs(overrides: { maxEpochs?: number; centresSeed?: number; learningRate?: number } = {}): Record<string, unknown> {
  return tinyInput({
    maxEpochs: overrides.maxEpochs ?? 3,
    data: {
      train: { name: 'synthetic', params: { size: 256, noise: 1.5, seed: overrides.centresSeed ?? 7 } },
      eval: { name: 'synthetic', split: 'test', params: { size: 128, noise: 1.5, seed: 7 } },
    },
    hyperparameters: { optimizer: 'adam', learningRate: overrides.learningRate ?? 0.01, batchSize: 32 },
  });
}

describe('retrainModel', () => {
  let stack: Stack;
  let worker: InProcessWorker;
  let root: string;

  before(async () => {
    stack = await startStack();
    root = tempCheckpointRoot();
    worker = await startWorker(stack.address, { checkpointRoot: root });
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
  });

  const retrain = async (input: Record<string, unknown>, workflowId = uniqueId('retrain')) =>
    (await stack.client.workflow.execute('retrainModel', { taskQueue: worker.taskQueue, workflowId, args: [input] })) as RetrainResult;

  test('promotes the first model, rejects one trained on corrupted data, promotes a better one; records all', async () => {
    const modelName = uniqueId('blobs');
    const first = await retrain({ modelName, train: blobs() });
    assert.equal(first.promoted, true, first.reason);
    assert.match(first.reason, /no champion yet/);
    assert.equal(first.decision.number, 1);
    assert.equal(first.decision.champion, null);
    const pointer1 = readJson<ChampionRecord>(first.championUri);
    assert.equal(pointer1.modelUri, first.train.modelUri);
    assert.equal(pointer1.runId, first.train.runId);
    assert.ok(pointer1.runId.startsWith(`${modelName}-`), pointer1.runId);
    assert.deepEqual(pointer1.metrics, first.decision.challenger.metrics);
    assert.match(pointer1.promotedAt, /^\d{4}-\d\d-\d\dT/);

    // Same eval set, training data with the wrong class centres: the challenger must lose.
    const secondId = uniqueId('retrain');
    const second = await retrain({ modelName, train: blobs({ centresSeed: 99 }) }, secondId);
    assert.equal(second.promoted, false, second.reason);
    assert.equal(second.decision.number, 2);
    assert.equal(second.decision.champion?.modelUri, first.train.modelUri, 'compared against the champion');
    const champ = second.decision.champion!.metrics.val_loss!;
    const chall = second.decision.challenger.metrics.val_loss!;
    assert.ok(chall > champ, `challenger ${chall} must be worse than champion ${champ}`);
    // The champion re-evaluated on the same eval set gives what it got when it was promoted.
    assert.equal(champ, pointer1.metrics.val_loss);
    assert.deepEqual(readJson<ChampionRecord>(first.championUri), pointer1, 'a rejection leaves the pointer alone');
    assert.equal(second.champion.modelUri, first.train.modelUri);

    // The child warm-started from the champion's exported model.
    const started = (await stack.client.workflow.getHandle(second.train.runId).fetchHistory()).events![0]!;
    const childInput = JSON.parse(Buffer.from(started.workflowExecutionStartedEventAttributes!.input!.payloads![0]!.data!).toString('utf8'));
    assert.equal(childInput.warmStartFrom, modelFolderOf(first.train.modelUri));
    assert.equal(childInput.runId, second.train.runId);

    // Good data, more epochs, warm-started: better than the champion, promoted.
    const third = await retrain({ modelName, train: blobs({ maxEpochs: 6 }), minImprovement: 0.001 });
    assert.equal(third.promoted, true, third.reason);
    assert.ok(third.decision.challenger.metrics.val_loss! < third.decision.champion!.metrics.val_loss! - 0.001);
    assert.equal(readJson<ChampionRecord>(first.championUri).modelUri, third.train.modelUri);

    // Every decision is on disk beside the champion, and beside each challenger's run.
    const decisionsDir = path.join(path.dirname(fileURLToPath(first.championUri)), 'decisions');
    assert.deepEqual(fs.readdirSync(decisionsDir), ['000001.json', '000002.json', '000003.json']);
    const d2 = readJson<DecisionRecord>(second.decision.decisionUri);
    assert.equal(d2.promoted, false);
    assert.deepEqual(d2.champion?.metrics, second.decision.champion?.metrics);
    assert.deepEqual(d2.challenger.metrics, second.decision.challenger.metrics);
    assert.deepEqual(readJson<DecisionRecord>(joinUri(second.train.runUri, RETRAIN_DECISION)), d2);

    // The recorded history replays without non-determinism.
    const history = await stack.client.workflow.getHandle(secondId).fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, secondId);
  });

  test('a schedule-style workflow id (with colons) becomes a valid, deterministic run id', async () => {
    assert.equal(retrainRunId('mnist', 'nightly-2026-11-27T03:00:00Z'), 'mnist-nightly-2026-11-27T03-00-00Z');
    const long = retrainRunId('m', 'x'.repeat(200));
    assert.equal(long.length, 128);
    assert.equal(long, retrainRunId('m', 'x'.repeat(200)));
    assert.notEqual(long, retrainRunId('m', `${'x'.repeat(199)}y`));

    const modelName = uniqueId('colons');
    const result = await retrain({ modelName, train: blobs({ maxEpochs: 1 }) }, `${uniqueId('sched')}-2026-11-27T03:00:00Z`);
    // Readable, plus a hash of the exact ids whenever a character was replaced: `a:b` and `a-b` never share a folder.
    assert.match(result.train.runId, /^[A-Za-z0-9._-]+-2026-11-27T03-00-00Z-[0-9a-f]{16}$/);
    assert.equal(result.promoted, true);
  });

  test('an invalid input fails at once with every bad field named, and nothing runs', async () => {
    const handle = await stack.client.workflow.start('retrainModel', {
      taskQueue: worker.taskQueue,
      workflowId: uniqueId('retrain-bad'),
      args: [{ modelName: '../up', train: { ...blobs(), stepsPerEpoch: 0, warmStartFrom: 'file:///x' }, mode: 'sideways', minImprovement: -1 }],
    });
    const err = await handle.result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    const cause = err.cause as ApplicationFailure;
    assert.equal(cause.type, 'InvalidConfig');
    assert.equal(cause.nonRetryable, true);
    for (const field of ['modelName', 'train.stepsPerEpoch', 'train.warmStartFrom', 'mode', 'minImprovement']) {
      assert.match(cause.message, new RegExp(`Expected \`${field.replace('.', '\\.')}\``), field);
    }
    assert.match(cause.message, /Expected `train\.stepsPerEpoch` to be a whole number from 1 to 100000000, got `0` \(number\)/);
    const events = await historyEventTypes(handle);
    assert.ok(!events.some((e) => /ACTIVITY_TASK_SCHEDULED|START_CHILD_WORKFLOW/.test(e)), events.join(' '));
  });

  test('on the shipped trainable SavedModel: both retrains evaluate the exports, the second warm-starts from the champion', async () => {
    // The savedmodel route runs on TensorFlow's SavedModel runner: a worker on the tensorflow backend.
    const tfWorker = await startWorker(stack.address, { checkpointRoot: root, backend: 'tensorflow' });
    try {
      const savedModel = (learningRate: number) => ({
        model: { kind: 'savedmodel', uri: pathToFileURL(path.resolve(__dirname, 'fixtures/savedmodel/mnist-cnn')).href },
        data: { train: { name: 'mnist', split: 'train', limit: 512 }, eval: { name: 'mnist', split: 'test', limit: 256 } },
        hyperparameters: { learningRate, batchSize: 32 },
        stepsPerEpoch: 8,
        maxEpochs: 2,
        seed: 3,
        checkpoint: { keepLast: 1000, everySeconds: 0 },
        timeouts: { heartbeatSeconds: 5 },
      });
      const run = async (input: Record<string, unknown>) =>
        (await stack.client.workflow.execute('retrainModel', { taskQueue: tfWorker.taskQueue, workflowId: uniqueId('retrain-sm'), args: [input] })) as RetrainResult;
      const modelName = uniqueId('digits');
      const first = await run({ modelName, train: savedModel(0.002) });
      assert.equal(first.promoted, true, first.reason);
      const championMetrics = first.decision.challenger.metrics;
      assert.ok(Number.isFinite(championMetrics.val_loss) && championMetrics.val_accuracy! > 0.2, JSON.stringify(championMetrics));

      // Trained at a learning rate too small to move a weight: it ends where it started, so its
      // metrics show where it started from: the champion's weights.
      const second = await run({ modelName, train: savedModel(1e-12) });
      assert.equal(second.decision.champion?.modelUri, first.train.modelUri);
      assert.deepEqual(second.decision.champion?.metrics, championMetrics, 'the champion re-evaluated gives what it got when promoted');
      const challenger = second.decision.challenger.metrics;
      assert.ok(Math.abs(challenger.val_loss! - championMetrics.val_loss!) < 1e-4, `challenger ${JSON.stringify(challenger)} vs champion ${JSON.stringify(championMetrics)}`);
      const started = (await stack.client.workflow.getHandle(second.train.runId).fetchHistory()).events![0]!;
      const childInput = JSON.parse(Buffer.from(started.workflowExecutionStartedEventAttributes!.input!.payloads![0]!.data!).toString('utf8'));
      assert.equal(childInput.warmStartFrom, modelFolderOf(first.train.modelUri));
      const last = JSON.parse(fs.readFileSync(path.join(fileURLToPath(second.train.runUri), checkpointKey(16), STATE_JSON), 'utf8'));
      assert.equal(last.optimizer.iterations, 16, 'a fresh optimizer: only the 16 steps of this run');
    } finally {
      await tfWorker.stop();
    }
  });
});

describe('champion pointer (activity, file store)', () => {
  const trainer = new TrainerClient({ log: () => undefined });
  after(() => trainer.close());

  function setup() {
    const root = tempCheckpointRoot();
    const activities = createChampionActivities({ trainer, openStore: (uri) => openStore(uri), checkpointRoot: root });
    const runUri = runUriOf(root, 'run-x');
    const champion = (id: string): ChampionRecord => ({
      modelName: 'm', modelUri: exportedModelUri(runUriOf(root, id)), runId: id, runUri: runUriOf(root, id), metrics: { val_loss: 1 },
      metric: 'val_loss', mode: 'min', promotedAt: '2026-01-01T00:00:00.000Z', retrain: { workflowId: id, runId: 'r' },
    });
    const input = (id: string, expectedVersion: string | null, promoted = true): RecordDecisionInput => ({
      root, modelName: 'm', expectedVersion, runUri, newChampion: promoted ? champion(id) : null,
      decision: {
        modelName: 'm', promoted, reason: 'test', metric: 'val_loss', mode: 'min', minImprovement: 0, decidedAt: '2026-01-01T00:00:00.000Z',
        retrain: { workflowId: id, runId: 'r' }, evalData: { name: 'synthetic' }, champion: null,
        challenger: { modelUri: champion(id).modelUri, runId: id, runUri, metrics: { val_loss: 1 }, trainMetrics: null },
      },
    });
    return { activities, input };
  }

  test('a stale version is a conflict; a retried promotion is recognised as its own; decisions are numbered once', async () => {
    const { activities, input } = setup();
    const first = await activities.recordRetrainDecision(input('a', null));
    assert.equal(first.outcome, 'recorded');
    // A retry of the same retrain (after its pointer write) neither conflicts nor adds a decision.
    const again = await activities.recordRetrainDecision(input('a', null));
    assert.equal(again.outcome, 'recorded');
    assert.equal(again.outcome === 'recorded' && again.decision.number, 1);
    // Another retrain that read "no champion" lost the race: it is told the current champion.
    const stale = await activities.recordRetrainDecision(input('b', null));
    assert.equal(stale.outcome, 'conflict');
    assert.equal(stale.outcome === 'conflict' && stale.champion?.runId, 'a');
    const read = await activities.readChampion({ modelName: 'm' });
    const fresh = await activities.recordRetrainDecision(input('b', read.version, false));
    assert.equal(fresh.outcome === 'recorded' && fresh.decision.number, 2);
    assert.equal((await activities.readChampion({ modelName: 'm' })).champion?.runId, 'a');
  });

  test('input parsing and the promotion rule', () => {
    assert.throws(() => parseRetrainConfig({ modelName: 'm', train: 5 }), (e: unknown) => e instanceof ConfigError && /Expected `train` to be an object, got `5` \(number\)/.test(e.message));
    const ok = parseRetrainConfig({ modelName: 'm', train: blobs() });
    assert.deepEqual([ok.metric, ok.mode, ok.minImprovement, ok.championRoot], ['val_loss', 'min', 0, undefined]);
    const rule = { metric: 'val_loss', mode: 'min' as const, minImprovement: 0.1 };
    assert.equal(decidePromotion(rule, null, 5).promoted, true);
    assert.equal(decidePromotion(rule, 1, 0.85).promoted, true);
    assert.equal(decidePromotion(rule, 1, 0.9).promoted, false, 'an improvement of exactly minImprovement is not enough');
    assert.equal(decidePromotion({ ...rule, minImprovement: 0 }, 1, 1).promoted, false, 'a tie keeps the champion');
    assert.equal(decidePromotion({ metric: 'val_accuracy', mode: 'max', minImprovement: 0 }, 0.9, 0.91).promoted, true);
    assert.equal(decidePromotion(rule, 1, NaN).promoted, false);
  });
});
