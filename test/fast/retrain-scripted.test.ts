/**
 * retrainModel's decisions on the real dev server with scripted activities: the first model is
 * promoted, a challenger must beat the champion by more than minImprovement, it warm-starts from
 * the champion, a champion changed under the retrain is compared again, signals reach the
 * training run, and bad input fails before any activity.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { retrainModel, stopSignal } from '../../src/workflows';
import { eventCounts, failureOf, Harness, series, trainInput } from './harness';
import { gate, MOCK_ROOT, type ChampionRecord, type Script } from './mock-activities';

let h: Harness;
before(async () => {
  h = await Harness.start();
});
after(async () => {
  await h?.close();
});

const MODEL = 'digits';
const championAt = (runId: string, metrics: Record<string, number>): ChampionRecord => ({
  modelName: MODEL,
  modelUri: `${MOCK_ROOT}/${runId}/model/model.json`,
  runId,
  runUri: `${MOCK_ROOT}/${runId}`,
  metrics,
  metric: 'val_loss',
  mode: 'min',
  promotedAt: '2026-01-01T00:00:00.000Z',
  retrain: { workflowId: `retrain-${runId}`, runId: 'earlier' },
});

/** The challenger ends at `challenger` val_loss; known champions report what `champions` says. */
function script(challenger: number, champions: Record<string, Record<string, number>> = {}, extra: Partial<Script> = {}): Script {
  return {
    evalMetrics: ({ epoch }) => ({ val_loss: series([challenger + 0.2, challenger + 0.1, challenger])(epoch), val_accuracy: 1 - challenger }),
    modelMetrics: (uri) => champions[uri],
    ...extra,
  };
}

const retrainInput = (overrides: Record<string, unknown> = {}) => ({ modelName: MODEL, train: trainInput({ maxEpochs: 3 }), ...overrides });

describe('retrainModel: promote or reject', () => {
  test("a model's first retrain promotes what it trained", () =>
    h.run(script(0.4), async ({ client, taskQueue, mock, id }) => {
      const result = await client.workflow.execute(retrainModel, { taskQueue, workflowId: id('first'), args: [retrainInput()] });
      assert.equal(result.promoted, true);
      assert.match(result.reason, /no champion yet/);
      assert.equal(result.champion.modelUri, result.train.modelUri);
      assert.equal(result.train.modelUri, `${result.train.runUri}/model/model.json`);
      assert.equal(result.decision.number, 1);
      assert.equal(mock.champions.get(MODEL)?.champion.modelUri, result.train.modelUri);
      assert.equal(mock.inputs('trainEpoch')[0]?.config.warmStartFrom, undefined);
      assert.deepEqual(mock.inputs('evaluateModels').map((e) => e.modelUris), [[result.train.modelUri]]);
    }));

  test('a worse challenger is rejected: the champion stays, and the challenger warm-started from it', () => {
    const champion = championAt('old', { val_loss: 0.3 });
    return h.run(script(0.4, { [champion.modelUri]: { val_loss: 0.3 } }), async ({ client, taskQueue, mock, id }) => {
      const version = mock.setChampion(champion);
      const result = await client.workflow.execute(retrainModel, { taskQueue, workflowId: id('worse'), args: [retrainInput()] });
      assert.equal(result.promoted, false);
      assert.deepEqual(result.champion, champion);
      assert.equal(mock.champions.get(MODEL)?.version, version);
      assert.deepEqual(mock.inputs('trainEpoch').map((i) => i.config.warmStartFrom), Array(3).fill(`${MOCK_ROOT}/old/model`));
      assert.deepEqual(mock.inputs('evaluateModels').map((e) => e.modelUris), [[champion.modelUri, result.train.modelUri]]);
      assert.deepEqual(result.decision.champion?.metrics, { val_loss: 0.3 });
      assert.equal(result.decision.challenger.metrics.val_loss, 0.4);
    });
  });

  for (const { challenger, promoted } of [{ challenger: 0.4, promoted: true }, { challenger: 0.47, promoted: false }]) {
    test(`minImprovement 0.05 against a champion at 0.5: a challenger at ${challenger} is ${promoted ? 'promoted' : 'rejected'}`, () => {
      const champion = championAt('old', { val_loss: 0.5 });
      return h.run(script(challenger, { [champion.modelUri]: { val_loss: 0.5 } }), async ({ client, taskQueue, mock, id }) => {
        mock.setChampion(champion);
        const result = await client.workflow.execute(retrainModel, { taskQueue, workflowId: id('min-improvement'), args: [retrainInput({ minImprovement: 0.05 })] });
        assert.equal(result.promoted, promoted);
        assert.equal(mock.champions.get(MODEL)?.champion.modelUri, promoted ? result.train.modelUri : champion.modelUri);
        assert.equal(mock.decisions.get(MODEL)?.length, 1);
      });
    });
  }

  test('mode max on another metric', () => {
    const champion = championAt('old', { val_accuracy: 0.5 });
    return h.run(script(0.3, { [champion.modelUri]: { val_loss: 0.1, val_accuracy: 0.5 } }), async ({ client, taskQueue, mock, id }) => {
      mock.setChampion(champion);
      // Worse val_loss than the champion, but better val_accuracy (0.7 > 0.5): promoted.
      const result = await client.workflow.execute(retrainModel, { taskQueue, workflowId: id('max'), args: [retrainInput({ metric: 'val_accuracy', mode: 'max' })] });
      assert.equal(result.promoted, true);
    });
  });

  test('a champion promoted by another retrain meanwhile is compared against again', () => {
    const first = championAt('old', { val_loss: 0.5 });
    const meanwhile = championAt('other', { val_loss: 0.2 });
    let promotedElsewhere = false;
    const s = script(0.4, { [first.modelUri]: { val_loss: 0.5 }, [meanwhile.modelUri]: { val_loss: 0.2 } }, {
      beforeRecordDecision: (mock) => {
        if (promotedElsewhere) return;
        promotedElsewhere = true;
        mock.setChampion(meanwhile);
      },
    });
    return h.run(s, async ({ client, taskQueue, mock, id }) => {
      mock.setChampion(first);
      const result = await client.workflow.execute(retrainModel, { taskQueue, workflowId: id('conflict'), args: [retrainInput()] });
      // Better than the champion it read (0.5), worse than the one now in place (0.2).
      assert.equal(result.promoted, false);
      assert.deepEqual(mock.inputs('evaluateModels').map((e) => e.modelUris[0]), [first.modelUri, meanwhile.modelUri]);
      assert.equal(mock.inputs('recordRetrainDecision').length, 2);
      assert.equal(mock.champions.get(MODEL)?.champion.modelUri, meanwhile.modelUri);
      assert.equal(result.decision.champion?.modelUri, meanwhile.modelUri);
    });
  });
});

describe('retrainModel: a contended champion', () => {
  test('a champion that changes at every attempt to record fails the retrain with ChampionContended', () => {
    let n = 0;
    const s = script(0.4, {}, {
      modelMetrics: () => ({ val_loss: 0.5 }),
      beforeRecordDecision: (mock) => void mock.setChampion(championAt(`other-${++n}`, { val_loss: 0.5 })),
    });
    return h.run(s, async ({ client, taskQueue, mock, id }) => {
      mock.setChampion(championAt('old', { val_loss: 0.5 }));
      const handle = await client.workflow.start(retrainModel, { taskQueue, workflowId: id('contended'), args: [retrainInput()] });
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'ChampionContended');
      assert.equal(mock.inputs('recordRetrainDecision').length, 5);
      assert.equal(mock.decisions.get(MODEL), undefined);
    });
  });
});

describe('retrainModel: control and invalid input', () => {
  test('stop sent to the retrain stops its training run; the decision is made on what it trained', async () => {
    const reached = gate();
    const s = script(0.4, {}, {
      beforeTrain: (input) => {
        if (input.targetStep !== 10) return;
        reached.open();
        return new Promise<void>(() => undefined);
      },
    });
    await h.run(s, async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(retrainModel, { taskQueue, workflowId: id('stop'), args: [retrainInput()] });
      await reached.wait;
      await handle.signal(stopSignal);
      const result = await handle.result();
      assert.equal(result.train.status, 'stopped');
      assert.equal(result.train.epochs, 1);
      assert.deepEqual(mock.cancelled.map((i) => i.targetStep), [10]);
      assert.equal(result.promoted, true);
    });
  });

  test('a metric the evaluation does not report fails as InvalidConfig, recording nothing', () =>
    h.run(script(0.4), async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(retrainModel, { taskQueue, workflowId: id('metric'), args: [retrainInput({ metric: 'val_f1' })] });
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'InvalidConfig');
      assert.match(failure.message, /val_f1/);
      assert.equal(mock.inputs('recordRetrainDecision').length, 0);
    }));

  test('bad input fails as InvalidConfig naming every field, before any activity', () =>
    h.run(script(0.4), async ({ client, taskQueue, mock, id }) => {
      const handle = await client.workflow.start(retrainModel, {
        taskQueue,
        workflowId: id('invalid'),
        args: [{ modelName: 'no/slashes', train: trainInput({ runId: 'mine' }), minImprovement: -1 }],
      });
      const failure = await failureOf(handle);
      assert.equal(failure.type, 'InvalidConfig');
      for (const field of ['modelName', 'train.runId', 'minImprovement']) assert.match(failure.message, new RegExp(field.replace('.', '\\.')));
      assert.deepEqual(mock.calls, []);
      assert.equal((await eventCounts(handle)).get('EVENT_TYPE_ACTIVITY_TASK_SCHEDULED'), undefined);
    }));
});
