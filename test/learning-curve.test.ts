/**
 * The learning curve is drawn on the chart thread, never on the event loop that heartbeats the
 * worker's activities, and only where a person looks: renderLearningCurve draws a search's trial
 * on its owner's request (finalizeRun draws none for a search's trial: see FinalizeInput).
 *
 *   node --import tsx --test test/learning-curve.test.ts
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRunViewActivities, writeLearningCurve } from '../src/activities/run-views';
import type { EpochRecord } from '../src/activities/store-and-trainer';
import { LEARNING_CURVE_PNG, LEARNING_CURVE_SVG, SEARCH_JSON } from '../src/checkpoints/layout';
import { openStore } from '../src/checkpoints/open-store';
import { SEARCH_FORMAT } from '../src/checkpoints/search-identity';
import { learningCurveSpec, renderPng, renderSvg } from '../src/observability/charts';
import { tempDir } from './helpers/cleanup';

const EPOCHS = 400;
const records: EpochRecord[] = Array.from({ length: EPOCHS }, (_, i) => ({
  epoch: i + 1,
  step: (i + 1) * 10,
  learningRate: 0.01 / (1 + Math.floor(i / 100)),
  metrics: { loss: 2 / (i + 1), val_loss: 2.2 / (i + 1) + 0.001 * i, val_accuracy: 1 - 1 / (i + 2) },
  trainAttempt: i % 97 === 0 ? 2 : 1,
}));

/** The longest the event loop went without running a 5 ms timer while `fn` ran. */
async function longestStall(fn: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 5);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return Math.max(longest, performance.now() - last);
}

test('writeLearningCurve draws off the event loop: the loop keeps its timers while it renders, as it does not when rendering in place', async () => {
  const store = openStore(`${pathToFileURL(tempDir()).href}/run`);
  const points = records.map((r) => ({ epoch: r.epoch, learningRate: r.learningRate, metrics: r.metrics, interruptions: (r.trainAttempt ?? 1) - 1 }));
  // Warm both sides first (module loading is not what is measured).
  await writeLearningCurve(store, records.slice(0, 3), 'warm', {});
  await renderPng(await renderSvg(learningCurveSpec('warm', points.slice(0, 3), {})));
  const inPlace = await longestStall(async () => renderPng(await renderSvg(learningCurveSpec('run', points, { bestEpoch: 300 })), 1280));
  const offLoop = await longestStall(() => writeLearningCurve(store, records, 'run', { bestEpoch: 300 }));
  console.log(`longest event-loop stall: rendering in place ${inPlace.toFixed(0)} ms, writeLearningCurve ${offLoop.toFixed(0)} ms`);
  assert.ok(offLoop < inPlace / 3, `writeLearningCurve stalled the loop ${offLoop.toFixed(0)} ms, rendering in place ${inPlace.toFixed(0)} ms`);
  // The same bytes as rendering in place.
  const svg = await renderSvg(learningCurveSpec('run', points, { bestEpoch: 300 }));
  assert.equal((await store.get(LEARNING_CURVE_SVG))!.toString(), svg);
  assert.deepEqual(await store.get(LEARNING_CURVE_PNG), await renderPng(svg, 1280));
});

test("renderLearningCurve draws a search's trial for the search's owner only, from the trial's stored records", async () => {
  const searchUri = `${pathToFileURL(tempDir()).href}/search`;
  const runUri = `${searchUri}/trial-3`;
  const { renderLearningCurve } = createRunViewActivities({ openStore: (uri) => openStore(uri) });
  const as = (workflowId: string, input: Parameters<typeof renderLearningCurve>[0]) =>
    new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'r' } }).run(renderLearningCurve, input) as ReturnType<typeof renderLearningCurve>;
  const refused = async (p: Promise<unknown>, type: string, message: RegExp) => {
    const err = await p.then(() => assert.fail('Expected a failure'), (e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure && err.type === type && err.nonRetryable, String(err));
    assert.match(err.message, message);
  };
  const trial = openStore(runUri);
  for (const r of records.slice(0, 5)) await trial.put(`metrics/epoch-${String(r.epoch).padStart(8, '0')}.json`, Buffer.from(JSON.stringify(r)));
  const input = { runUri, title: 'trial-3: best of the search', markers: { bestEpoch: 4 } };
  await refused(as('search-1', input), 'NotSearchOwner', /no search\.json/);
  await openStore(searchUri).put(SEARCH_JSON, Buffer.from(JSON.stringify({ format: SEARCH_FORMAT, fingerprint: 'f', identity: {}, createdAt: '', owners: ['search-1'] })));
  await refused(as('someone-else', input), 'NotSearchOwner', /someone-else/);
  await refused(as('search-1', { ...input, title: 'x'.repeat(201) }), 'InvalidConfig', /`title`.*at most 200 characters/);
  await refused(as('search-1', { ...input, markers: { bestEpoch: -1 } }), 'InvalidConfig', /`markers\.bestEpoch`/);
  assert.equal(await trial.get(LEARNING_CURVE_SVG), undefined);
  const out = await as('search-1', input);
  assert.deepEqual(out, { svgUri: trial.uriOf(LEARNING_CURVE_SVG), pngUri: trial.uriOf(LEARNING_CURVE_PNG) });
  assert.match((await trial.get(LEARNING_CURVE_SVG))!.toString(), /<svg[\s\S]*val_loss/);
  assert.deepEqual([...(await trial.get(LEARNING_CURVE_PNG))!.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
});
