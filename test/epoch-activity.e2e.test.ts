/**
 * The epoch activity (trainEpoch) against a real trainer process (tfjs) and a file:// run folder,
 * in Temporal's MockActivityEnvironment: it records the same epoch as trainUntilStep followed by
 * evaluateCheckpoint (same loss, same eval metrics, bit for bit), a retry after the record was
 * written returns the stored record unchanged without training, and a record of another step is
 * refused.
 *
 *   node --import tsx --test test/epoch-activity.e2e.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createTrainingActivities, type TrainEpochInput, type TrainingActivities } from '../src/activities/training';
import { epochRecordKey, joinUri } from '../src/checkpoints/layout';
import { openStore } from '../src/checkpoints/open-store';
import { parseTrainConfig } from '../src/config/train-config';
import { TrainerClient } from '../src/training/trainer-client';
import { tinyInput } from './e2e-support';
import { tempDir } from './helpers/temporal';

const root = tempDir('dt-epoch-activity-');
const trainer = new TrainerClient({ log: () => undefined });
after(async () => {
  await trainer.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const activities: TrainingActivities = createTrainingActivities({ trainer, openStore: (uri) => openStore(uri), checkpointRoot: pathToFileURL(root).href });
const config = parseTrainConfig(tinyInput({ stepsPerEpoch: 6, maxEpochs: 2, checkpoint: { keepLast: 1, everySeconds: 0 } }));
const runUriOf = (name: string): string => pathToFileURL(path.join(root, name)).href;

/** Runs an activity as attempt `attempt` of activity `activityId` of one workflow run. */
function asActivity<A extends unknown[], R>(fn: (...args: A) => Promise<R>, attempt = 1, activityId = '1'): (...args: A) => Promise<R> {
  const env = new MockActivityEnvironment({ attempt, activityId, heartbeatTimeoutMs: 60_000 });
  return (...args: A) => env.run(fn, ...args);
}

const epochInput = (runUri: string, epoch: number): TrainEpochInput => ({
  runUri,
  config,
  epoch,
  targetStep: epoch * config.stepsPerEpoch,
  learningRate: config.hyperparameters.learningRate,
  protectSteps: [],
  recordedAt: 1_700_000_000_000 + epoch,
});

const storedRecord = (runUri: string, epoch: number): Buffer => fs.readFileSync(new URL(joinUri(runUri, epochRecordKey(epoch))));

describe('trainEpoch: one activity per epoch', () => {
  test('records what trainUntilStep then evaluateCheckpoint record, bit for bit, and its result is the stored record', async () => {
    const fused = runUriOf('fused');
    const split = runUriOf('split');
    for (const epoch of [1, 2]) {
      const input = epochInput(fused, epoch);
      const done = await asActivity(activities.trainEpoch, 1, String(epoch))(input);
      assert.ok(done.trained && done.evaluated, 'a first attempt trains and evaluates');
      assert.equal(done.trained.stepsRun, config.stepsPerEpoch);
      assert.equal(JSON.stringify(done.record), storedRecord(fused, epoch).toString('utf8'), 'the result is the record as stored');

      const trained = await asActivity(activities.trainUntilStep, 1, `${epoch}-train`)({ runUri: split, config, targetStep: input.targetStep, learningRate: input.learningRate });
      const evaluated = await asActivity(activities.evaluateCheckpoint, 1, `${epoch}-eval`)({
        runUri: split,
        config,
        epoch,
        step: trained.step,
        learningRate: input.learningRate,
        trainMetrics: { loss: trained.loss },
        protectSteps: [],
      });
      assert.equal(done.record.step, trained.step);
      assert.deepEqual(done.record.metrics, { loss: trained.loss, ...evaluated.metrics }, `epoch ${epoch}: the same loss and eval metrics`);
      assert.deepEqual(Object.keys(done.record.metrics).sort(), ['loss', ...Object.keys(evaluated.metrics)].sort());
    }
    // Retention ran (keepLast 1): only the newest checkpoint is left in both folders.
    for (const run of ['fused', 'split']) assert.deepEqual(fs.readdirSync(path.join(root, run, 'checkpoints')).filter((f) => /^\d+$/.test(f)).map(Number), [12]);
    // TensorBoard events were written for both epochs.
    assert.ok(fs.readdirSync(path.join(root, 'fused'), { recursive: true, encoding: 'utf8' }).some((f) => f.includes('tfevents')), 'TensorBoard event files');
  });

  test('a retry after the record was written returns the stored record unchanged, without training', async () => {
    const runUri = runUriOf('retry');
    const input = epochInput(runUri, 1);
    const first = await asActivity(activities.trainEpoch, 1)(input);
    const bytes = storedRecord(runUri, 1);
    // A later attempt (the first one's answer was lost), scheduled at another workflow time: it must not record anew.
    const retried = await asActivity(activities.trainEpoch, 2)({ ...input, recordedAt: input.recordedAt + 5000 });
    assert.equal(retried.trained, null, 'nothing trained');
    assert.equal(retried.evaluated, null, 'nothing evaluated');
    assert.equal(retried.attempt, 2);
    assert.equal(JSON.stringify(retried.record), bytes.toString('utf8'), 'the stored record, byte for byte');
    assert.deepEqual(retried.record, first.record);
    assert.deepEqual(storedRecord(runUri, 1), bytes, 'the stored record is unchanged');
  });

  test('two overlapping attempts (a zombie and its retry): at most one record, the one that stands is what every finishing attempt returns', async () => {
    const runUri = runUriOf('overlap');
    const input = epochInput(runUri, 1);
    const [a1, a2] = await Promise.allSettled([asActivity(activities.trainEpoch, 1)(input), asActivity(activities.trainEpoch, 2)(input)]);
    const stored = storedRecord(runUri, 1).toString('utf8');
    const fulfilled = [a1, a2].filter((r) => r.status === 'fulfilled');
    assert.ok(fulfilled.length >= 1, `one attempt finishes: ${[a1, a2].map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join(' / ')}`);
    for (const r of fulfilled) assert.equal(JSON.stringify(r.value.record), stored, 'it returns the stored record');
    for (const r of [a1, a2]) {
      // A loser fails retryably (it lost the lease), never with WouldOverwrite, which would fail the run.
      if (r.status === 'rejected') assert.ok(r.reason instanceof ApplicationFailure && !r.reason.nonRetryable, String(r.reason));
    }
  });

  test('a recorded epoch that ends at another step is refused, non-retryable', async () => {
    const runUri = runUriOf('other-step');
    await asActivity(activities.trainEpoch, 1)(epochInput(runUri, 1));
    const err = await asActivity(activities.trainEpoch, 2)({ ...epochInput(runUri, 1), targetStep: 7 }).then(
      () => assert.fail('Expected a failure'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /to end at step 7, got `6`/);
  });
});
