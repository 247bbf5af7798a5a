/**
 * PBT end to end on a real dev server with a real worker and real (tiny) tfjs training: the worst
 * trial of round 1 gets the best one's checkpoint (the same weight bytes at the round's step in its
 * own folder), its round-2 run resumes from that step at the perturbed learning rate without
 * training any step twice, the copy is recorded in both folders and in the result, and the
 * search's history replays.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { joinUri, lineageKey } from '../src/checkpoints/layout';
import type { SearchResult } from '../src/workflows';
import { uniqueId, useStackAndWorker, workflowBundle } from './helpers/temporal';
import { checkpointWeights, tinyInput } from './e2e-support';
import { childResult, epochTraining } from './search-e2e-support';

const harness = useStackAndWorker();

const LR = 'hyperparameters.learningRate';

test('PBT: the bottom trial continues from a copy of the top trial\'s checkpoint at the perturbed rate', async () => {
  const input = {
    base: tinyInput({ stepsPerEpoch: 4, maxEpochs: 4 }),
    strategy: 'pbt',
    roundEpochs: 2,
    maxTrials: 4,
    maxParallel: 2,
    space: { [LR]: [0.05, 0.02, 0.005, 0.001] },
  };
  const workflowId = uniqueId('pbt');
  const handle = await harness.stack.client.workflow.start('hyperparameterSearch', { taskQueue: harness.worker.taskQueue, workflowId, args: [input] });
  const result = (await handle.result()) as SearchResult;

  assert.deepEqual(result.rungs.map((r) => r.epochs), [2, 4]);
  assert.equal(result.lineage.length, 1, JSON.stringify(result.lineage));
  const copy = result.lineage[0]!;
  const [to, from] = [result.trials[copy.trial - 1]!, result.trials[copy.from - 1]!];
  // The donor is the best of round 1, the recipient the worst.
  assert.ok(copy.fromValue !== null && copy.value !== null && copy.fromValue < copy.value, JSON.stringify(copy));
  assert.equal(copy.step, 8);
  assert.deepEqual(checkpointWeights(to.runUri, 8), checkpointWeights(from.runUri, 8));
  for (const [run, key] of [[to.runUri, lineageKey(1, 'copied-from', from.id)], [from.runUri, lineageKey(1, 'copied-to', to.id)]] as const) {
    const record = JSON.parse(fs.readFileSync(fileURLToPath(joinUri(run, key)), 'utf8'));
    assert.equal(record.from, from.id);
    assert.equal(record.to, to.id);
  }

  const explored = copy.params[LR] as number;
  assert.ok([0.05, 0.02, 0.005, 0.001].includes(explored), `explored ${explored}`);
  assert.deepEqual(to.params, copy.params);
  // Round 2 of the recipient: its own folder, from step 8, at the new rate, 8 steps and no more.
  const round2 = `${workflowId}/${to.id}/rung-2`;
  const trained = await epochTraining(harness.stack.client.workflow.getHandle(round2));
  assert.equal(trained[0]!.resumedFromStep, 8);
  assert.equal(trained.reduce((a, r) => a + r.stepsRun, 0), 8);
  const finished = await childResult(harness.stack.client, round2);
  assert.equal(finished.runUri, to.runUri);
  assert.equal(finished.step, 16);
  assert.equal(finished.learningRate, explored);
  assert.ok(result.trials.every((t) => t.status === 'completed' && t.epochs === 4), JSON.stringify(result.trials.map((t) => [t.status, t.epochs])));

  for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, [{ workflowId, history: await handle.fetchHistory() }])) {
    assert.equal(r.error, undefined, `${r.runId}: ${r.error}`);
  }
});
