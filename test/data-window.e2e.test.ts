/**
 * Scheduled retraining on fresh data (issue #21 point 8) against a real dev server, an in-process
 * worker with its trainer, and MNIST rows as daily JSONL.gz partitions on file://: a real Temporal
 * Schedule fires retrainModel twice (two backfills, a year apart), its sharded train and eval URIs
 * naming `dt={date}` with `window: 1`. Each run resolves the window from its schedule slot
 * (TemporalScheduledStartTime), not from when it ran, and records it: the challenger's run.json
 * (fingerprint: the globs and the shards listed) and the champion decision (evalData). The second
 * retrain evaluates the first's champion on the second, newer eval window.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import type { DecisionRecord } from '../src/activities/champion';
import { createRetrainSchedule, deleteRetrainSchedule, describeRetrainSchedule } from '../src/schedules';
import type { RetrainResult } from '../src/workflows';
import { jsonlOf, mnistRows } from './helpers/mnist-shards';
import { tempDir, uniqueId, useStackAndWorker, waitFor } from './helpers/temporal';
import zlib from 'node:zlib';

const dataDir = tempDir('dt-window-data-');
const dataUri = pathToFileURL(dataDir).href;
// (Under the test sandbox, which TEST_ALLOWED_URIS lets every test worker and trainer read.)

/** Never fires on its own during a test: 03:00 UTC on 1 January. */
const YEARLY = '0 3 1 1 *';
const DAYS = ['2024-12-31', '2025-12-31'] as const;
const SLOTS = ['2025-01-01T03:00:00Z', '2026-01-01T03:00:00Z'] as const;

const readJson = <T>(uri: string, name: string): T => JSON.parse(fs.readFileSync(path.join(fileURLToPath(uri), name), 'utf8')) as T;

function writePartitions(): void {
  const rows = mnistRows(1000);
  DAYS.forEach((day, d) => {
    const base = d * 500;
    for (const [split, from, count, parts] of [['train', base, 400, 2], ['eval', base + 400, 100, 1]] as const) {
      const dir = path.join(dataDir, split, `dt=${day}`);
      fs.mkdirSync(dir, { recursive: true });
      const per = count / parts;
      for (let k = 0; k < parts; k++) fs.writeFileSync(path.join(dir, `part-${k}.jsonl.gz`), zlib.gzipSync(jsonlOf(rows.slice(from + k * per, from + (k + 1) * per))));
    }
  });
}

const windowed = (split: string) => ({
  name: 'sharded',
  params: { uri: `${dataUri}/${split}/dt={date}/part-*.jsonl.gz`, window: 1, format: 'jsonl', label: 'y', features: ['pixels'], classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], shuffleWindow: 64 },
});

async function nthRun(client: Client, scheduleId: string, n: number): Promise<{ workflowId: string; result: RetrainResult }> {
  const workflowId = await waitFor(async () => (await describeRetrainSchedule(client, scheduleId)).recentRuns[n - 1]?.workflowId, 60_000, `run ${n} of ${scheduleId}`);
  return { workflowId, result: (await client.workflow.getHandle(workflowId).result()) as RetrainResult };
}

describe('data windows on a schedule', () => {
  writePartitions();
  const harness = useStackAndWorker();

  test('a schedule that fires twice trains and judges each run on its own slot\'s partitions', { timeout: 8 * 60_000 }, async () => {
    const { client } = harness.stack;
    const scheduleId = uniqueId('window');
    const modelName = uniqueId('window-mlp');
    const input = {
      modelName,
      train: {
        model: { name: 'mlp', params: { hiddenUnits: [16] } },
        data: { train: windowed('train'), eval: windowed('eval') },
        hyperparameters: { optimizer: 'adam', learningRate: 0.005, batchSize: 32 },
        stepsPerEpoch: 6,
        maxEpochs: 2,
        seed: 5,
        checkpoint: { everySeconds: 0 },
        timeouts: { heartbeatSeconds: 5 },
      },
      metric: 'val_loss',
      mode: 'min',
    };
    const handle = await createRetrainSchedule(client, { scheduleId, input, taskQueue: harness.worker.taskQueue, cron: [YEARLY] });
    try {
      const runs: Array<{ workflowId: string; result: RetrainResult }> = [];
      for (const [i, slot] of SLOTS.entries()) {
        const at = new Date(slot);
        // The schedule's own action at its slot, however long ago: the run's nominal time is the slot.
        await handle.backfill({ start: new Date(at.getTime() - 60_000), end: new Date(at.getTime() + 60_000) });
        runs.push(await nthRun(client, scheduleId, i + 1));
      }
      const [first, second] = runs as [(typeof runs)[0], (typeof runs)[0]];
      console.log(`scheduled runs: ${runs.map((r) => `${r.workflowId}: ${r.result.reason}`).join(' | ')}`);

      for (const [i, run] of runs.entries()) {
        const day = DAYS[i]!;
        const decision: DecisionRecord = run.result.decision;
        // The decision records the eval window both models were measured on: the slot's, not today's.
        const evalParams = decision.evalData.params as Record<string, unknown>;
        assert.equal(evalParams.windowEnd, day, `run ${i + 1} (${run.workflowId}) evaluated on ${String(evalParams.windowEnd)}`);
        assert.deepEqual(evalParams.uris, [`${dataUri}/eval/dt=${day}/part-*.jsonl.gz`]);
        // The challenger's run identity pins its train window: the globs and the shards they listed.
        const runJson = readJson<{ identity: { data: { train: { params: Record<string, unknown> } }; dataset: { shards: Array<{ uri: string }> } } }>(run.result.train.runUri, 'run.json');
        assert.equal(runJson.identity.data.train.params.windowEnd, day);
        assert.deepEqual(runJson.identity.data.train.params.uris, [`${dataUri}/train/dt=${day}/part-*.jsonl.gz`]);
        assert.deepEqual(
          runJson.identity.dataset.shards.map((s) => s.uri),
          [0, 1].map((k) => `${dataUri}/train/dt=${day}/part-${k}.jsonl.gz`),
        );
      }
      // Different data: the two runs' data indexes list other shards with other bytes.
      const index = (r: RetrainResult) => readJson<{ records: number; shards: Array<{ uri: string; sha256: string }> }>(r.train.runUri, 'data-index.json');
      const [a, b] = [index(first.result), index(second.result)];
      assert.equal(a.records, 400);
      assert.equal(b.records, 400);
      const hashes = new Set(a.shards.map((s) => s.sha256));
      assert.ok(b.shards.every((s) => !hashes.has(s.sha256)), 'the second run read none of the first run\'s shards');

      // The second retrain judged the first's champion on the second window: the same model scores
      // differently there than on the window it was chosen on.
      assert.equal(first.result.promoted, true, first.result.reason);
      const judged = second.result.decision.champion;
      assert.ok(judged, 'the second retrain compared against a champion');
      assert.equal(judged.modelUri, first.result.train.modelUri);
      assert.notEqual(judged.metrics.val_loss, first.result.decision.challenger.metrics.val_loss);
    } finally {
      await deleteRetrainSchedule(client, scheduleId).catch(() => undefined);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
