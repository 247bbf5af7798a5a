/**
 * Issue #21 point 6, exactness under fire on streamed data: the fault suite's server restart and
 * SIGTERM kinds on a `sharded` dataset of MNIST rows as JSONL.gz shards in the GCS emulator (training
 * and evaluation both streamed). One run takes both faults at moments drawn from a printed seed
 * (DT_TEST_SEED=<n> replays a draw), each mid-epoch and mid-shard (the position the run resumes at is
 * inside a shard of the epoch's shuffled order, src/data/order.ts); the run must complete with the
 * exported weights, the last optimizer state and every epoch's metrics bitwise equal to an
 * uninterrupted run's, and every epoch recorded once. (A worker and a trainer SIGKILLed on sharded
 * data: test/sharded-data.e2e.test.ts.)
 *
 *   - the dev server stopped (2 s down) and restarted while the trainer streams shards;
 *   - the worker holding the training activity sent SIGTERM (its pid, as Kubernetes does): it stops at
 *     its next step, commits a checkpoint, hands the attempt back (WorkerShuttingDown) and exits; a
 *     new worker resumes from that checkpoint, computing its (shard, offset), and trains on.
 *
 *   node --import tsx --test test/sharded-faults.e2e.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { MANIFEST, checkpointKey } from '../src/checkpoints/layout';
import { ShardedOrder } from '../src/data/order';
import type { TrainModelResult } from '../src/workflows';
import { tinyInput } from './e2e-support';
import { EPOCHS, EVERY, LAST, STEPS_PER_EPOCH, assertSameRun, fileOutcome, fileRun, useFaultSuite, type FaultRow, type Outcome } from './helpers/fault-suite';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { jsonlOf, mnistRows } from './helpers/mnist-shards';
import { resultThroughOutages } from './helpers/restart';
import { mulberry32, testSeed } from './helpers/seed';
import { uniqueId, waitFor } from './helpers/temporal';

const SUITE = 'sharded-faults';
const SEED = testSeed(SUITE);
const BUCKET = 'dt-e2e';
const PREFIX = uniqueId('sharded-faults');
const SHARD_RECORDS = 100;
const SHARDS = 6;
const BATCH = 32;
const SHUFFLE_WINDOW = 96;
const RUN_SEED = 3;
/** Milliseconds before each step of the faulted run's workers: an epoch takes 2 s or more, so a fault lands inside its training. */
const STEP_DELAY_MS = 100;

const spec = (split: string) => ({
  name: 'sharded',
  params: { uri: `gs://${BUCKET}/${PREFIX}/${split}/part-*.jsonl.gz`, format: 'jsonl', label: 'y', features: ['pixels'], classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], shuffleWindow: SHUFFLE_WINDOW },
});
const input = (runId: string) =>
  tinyInput({
    runId,
    model: { name: 'mlp', params: { hiddenUnits: [32] } },
    data: { train: spec('train'), eval: spec('eval') },
    hyperparameters: { optimizer: 'adam', learningRate: 0.005, batchSize: BATCH },
    stepsPerEpoch: STEPS_PER_EPOCH,
    maxEpochs: EPOCHS,
    seed: RUN_SEED,
    checkpoint: { everySteps: EVERY, everySeconds: 0, keepLast: 1000 },
    timeouts: { heartbeatSeconds: 3 },
  });

/** The run's data order: where the first example after step `s` lives. */
const ORDER = new ShardedOrder(Array.from({ length: SHARDS }, () => SHARD_RECORDS), RUN_SEED, SHUFFLE_WINDOW);
function position(s: number): { midEpoch: boolean; midShard: boolean; where: string } {
  const g = s * BATCH;
  const { epoch, position: p } = ORDER.windowOf(g);
  const { starts } = ORDER.epochLayout(epoch);
  const at = ORDER.locate(g);
  return {
    midEpoch: s % STEPS_PER_EPOCH !== 0,
    midShard: !Array.from(starts).includes(p),
    where: `data epoch ${epoch}, record ${p} of ${ORDER.size}; next example: shard ${at.shard} record ${at.offset}`,
  };
}
/** A checkpoint step after which the next few steps are all mid-epoch and mid-shard (a fault lands within them). */
const SLACK = 4;
const candidates = Array.from({ length: LAST / EVERY - 2 }, (_, i) => (i + 1) * EVERY).filter((s) =>
  Array.from({ length: SLACK }, (_, k) => position(s + k)).every((p) => p.midEpoch && p.midShard),
);

describe(`${SUITE}: server restart and SIGTERM on streamed GCS shards (seed ${SEED})`, { timeout: 600_000 }, () => {
  let emu: GcsEmulator | undefined;
  const suite = useFaultSuite(SUITE, SEED, { own: true, env: () => ({ STORAGE_EMULATOR_HOST: emu!.endpoint }) });
  const { root, taskQueue, rows, workers } = suite;
  let reference: Outcome;
  // The emulator is this file's own child: left running, it keeps the test process alive after the last test.
  after(async () => {
    await emu?.dispose();
  });

  before(async () => {
    emu = await startGcsEmulator({ buckets: [BUCKET] });
    const rowsOf = mnistRows(SHARDS * SHARD_RECORDS + 100);
    const put = (name: string, data: Buffer) => emu!.storage.bucket(BUCKET).file(`${PREFIX}/${name}`).save(data, { resumable: false });
    for (let k = 0; k < SHARDS; k++) await put(`train/part-${k}.jsonl.gz`, zlib.gzipSync(jsonlOf(rowsOf.slice(k * SHARD_RECORDS, (k + 1) * SHARD_RECORDS))));
    for (let k = 0; k < 2; k++) await put(`eval/part-${k}.jsonl.gz`, zlib.gzipSync(jsonlOf(rowsOf.slice(SHARDS * SHARD_RECORDS + k * 50, SHARDS * SHARD_RECORDS + (k + 1) * 50))));
    const w = workers.start();
    const runId = uniqueId('straight');
    const result = (await suite.stack.client.workflow.execute('trainModel', { taskQueue, workflowId: runId, args: [input(runId)] })) as TrainModelResult;
    await w.stop();
    reference = fileOutcome(result);
    const o = fileRun(result);
    assertSameRun(result, o.outcome, reference, o.jsonl, o.records);
    // The order the test reasons with is the run's: its data index counts these shards.
    const index = JSON.parse(fs.readFileSync(path.join(root, runId, 'data-index.json'), 'utf8')) as { shards: Array<{ records: number }> };
    assert.deepEqual(index.shards.map((s) => s.records), ORDER.counts);
  });

  test(`seed ${SEED}: the server restarted and the worker SIGTERMed mid-epoch, mid-shard; completed, bitwise equal`, async (t) => {
    const random = mulberry32(SEED);
    assert.ok(candidates.length >= 2, `checkpoint steps with mid-epoch, mid-shard steps after them: ${candidates.join(', ')}`);
    const first = candidates[Math.floor(random() * (candidates.length - 1))]!;
    const later = candidates.filter((s) => s >= first + 2 * EVERY);
    const second = later.length > 0 ? later[Math.floor(random() * later.length)]! : candidates.at(-1)!;
    const kinds = random() < 0.5 ? (['server restart', 'SIGTERM'] as const) : (['SIGTERM', 'server restart'] as const);
    const moments = [
      { kind: kinds[0], after: first },
      { kind: kinds[1], after: second },
    ];
    for (const m of moments) t.diagnostic(`${m.kind} once checkpoint ${m.after} is committed (${position(m.after).where})`);

    const runId = uniqueId('faulted');
    const runDir = path.join(root, runId);
    const delay = { DT_FAULT_STEP_DELAY_MS: String(STEP_DELAY_MS) };
    let w = workers.start(delay);
    const handle = await suite.stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [input(runId)] });
    for (const m of moments) {
      const row: FaultRow = { fault: `${m.kind} (sharded, gs://)`, moment: `after checkpoint ${m.after}`, outcome: 'not reached' };
      rows.push(row);
      const manifest = path.join(runDir, checkpointKey(m.after), MANIFEST);
      await waitFor(async () => fs.existsSync(manifest), 180_000, `checkpoint ${m.after}; worker output:\n${w.output().slice(-2000)}`);
      const at = Date.now();
      if (m.kind === 'server restart') {
        await suite.stack.server!.stop();
        await new Promise((r) => setTimeout(r, 2000));
        await suite.stack.server!.restart();
        row.outcome = 'server restarted';
      } else {
        const exited = new Promise<void>((res) => w.child.once('exit', () => res()));
        process.kill(w.child.pid!, 'SIGTERM');
        await exited;
        assert.equal(w.child.exitCode, 0, `the SIGTERMed worker exits cleanly:\n${w.output().slice(-3000)}`);
        const stopped = /training stopped at step (\d+) and committed checkpoint (\d+)/.exec(w.output());
        row.outcome = stopped ? `stopped at step ${stopped[1]}, checkpoint ${stopped[2]} committed` : 'exited';
        w = workers.start(delay);
      }
      row.recoverSeconds = (Date.now() - at) / 1000;
    }
    const result = await resultThroughOutages<TrainModelResult>(handle, 300_000);
    const o = fileRun(result);
    assertSameRun(result, o.outcome, reference, o.jsonl, o.records);

    // The SIGTERM landed inside a training activity, mid-epoch and mid-shard: the attempt it stopped
    // handed back the step it committed, and the next attempt resumed right after it.
    const events = (await handle.fetchHistory()).events ?? [];
    const shutdowns = events.map((e) => e.activityTaskStartedEventAttributes?.lastFailure).filter((f) => f?.applicationFailureInfo?.type === 'WorkerShuttingDown');
    assert.equal(shutdowns.length, 1, 'one training attempt handed back by the SIGTERMed worker');
    const stoppedAt = Number(/committed checkpoint (\d+)/.exec(shutdowns[0]!.message ?? '')?.[1]);
    const p = position(stoppedAt);
    t.diagnostic(`SIGTERM: stopped and committed at step ${stoppedAt}: resumed at ${p.where}`);
    assert.ok(p.midEpoch && p.midShard, `the SIGTERM's stop (step ${stoppedAt}) is mid-epoch and mid-shard: ${p.where}`);
    for (const row of rows) row.outcome += '; COMPLETED, bitwise equal';
  });
});
