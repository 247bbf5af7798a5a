/**
 * Issue #12, the fault suite (1/2): SIGKILL at 12 moments of one trainModel run, drawn from a seed
 * the test prints. The run is on a real dev server with real worker processes; each kill takes the
 * worker and its trainer down together (their process group), a fresh worker process carries the
 * next fault, and the last one finishes. The run must complete with every epoch recorded once and
 * the exported weights and the last checkpoint's optimizer state bitwise equal to an uninterrupted
 * run's. The six moments the issue names are always drawn; six more come from the whole catalogue.
 *
 *   node --import tsx --test test/faults-kill.e2e.test.ts      (DT_TEST_SEED=<n> replays a draw)
 *
 * Moments are scripted with test-only variables: DT_FAULT_KILL_AT (src/checkpoints/fault-hooks.ts,
 * in the file store), DT_FAULT_KILL_IN_EVALUATION and DT_FAULT_PAUSE_BEFORE_STEP (the trainer).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { LATEST_KEY, MANIFEST, MODEL_JSON, OPTIMIZER_BIN, STATE_JSON, WEIGHTS_BIN, checkpointKey, checkpointObjectKey, epochRecordKey } from '../src/checkpoints/layout';
import type { TrainModelResult } from '../src/workflows';
import {
  EPOCHS,
  EVERY,
  LAST,
  STEPS_PER_EPOCH,
  assertSameRun,
  faultInput,
  fileOutcome,
  fileRun,
  progressMarkers,
  useFaultSuite,
  type FaultRow,
  type Outcome,
} from './helpers/fault-suite';
import { mulberry32, testSeed } from './helpers/seed';
import { uniqueId, waitFor } from './helpers/temporal';

const SUITE = 'faults-kill';
const SEED = testSeed(SUITE);

interface Moment {
  readonly fault: string;
  readonly moment: string;
  /** Order in the run's timeline (a step, with fractions for what happens around it). */
  readonly at: number;
  readonly env: Record<string, string>;
  /** Held by DT_FAULT_PAUSE_BEFORE_STEP: the test kills the group when the trainer says it holds. */
  readonly pausedAt?: number;
  /** What the kill must have left behind in the run folder (the moment was really hit). */
  readonly leftover?: (runDir: string) => boolean;
}

const internalFile = (runDir: string, step: number, prefix: string): boolean =>
  fs.readdirSync(path.join(runDir, checkpointKey(step))).some((n) => n.startsWith(prefix));

type Kind = (r: () => number) => Moment;
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
/** A checkpoint step before the last one, and an epoch. */
const ckptStep = (r: () => number): number => EVERY * (1 + Math.floor(r() * (LAST / EVERY - 1)));
const epochOf = (r: () => number, last = EPOCHS): number => 1 + Math.floor(r() * last);

const KINDS: Record<string, Kind> = {
  'tmp-write': (r) => {
    const s = ckptStep(r);
    const object = pick(r, [MODEL_JSON, WEIGHTS_BIN, OPTIMIZER_BIN, STATE_JSON]);
    const key = checkpointObjectKey(s, object);
    return { fault: 'SIGKILL in a temporary-file write', moment: `half of ${key} in its temp file`, at: s - 0.3, env: { DT_FAULT_KILL_AT: `in-tmp-write:${key}` }, leftover: (d) => internalFile(d, s, '.dt-tmp-') };
  },
  // The pointer is the one compare-and-swap a checkpoint takes the lock for (its objects and manifest
  // are created by link, lock-free): the kill comes at the worker's first move of latest.json after
  // it resumed, at the latest at checkpoint s.
  'holding-lock': (r) => {
    const s = ckptStep(r);
    return { fault: 'SIGKILL holding the store lock', moment: `lock of ${LATEST_KEY} taken, nothing written`, at: s - 0.2, env: { DT_FAULT_KILL_AT: `holding-lock:${LATEST_KEY}` }, leftover: (d) => fs.existsSync(path.join(d, `.dt-lock-${LATEST_KEY}`)) };
  },
  'manifest-latest': (r) => {
    const s = ckptStep(r);
    const key = checkpointObjectKey(s, MANIFEST);
    return { fault: 'SIGKILL between manifest and latest.json', moment: `${key} committed, latest.json not moved`, at: s - 0.1, env: { DT_FAULT_KILL_AT: `after-put:${key}` }, leftover: (d) => fs.existsSync(path.join(d, key)) };
  },
  evaluation: (r) => {
    const e = epochOf(r);
    return { fault: 'SIGKILL during an evaluation', moment: `epoch ${e} evaluated, result not yet returned`, at: e * STEPS_PER_EPOCH + 0.1, env: { DT_FAULT_KILL_IN_EVALUATION: String(e * STEPS_PER_EPOCH) }, leftover: (d) => !fs.existsSync(path.join(d, epochRecordKey(e))) };
  },
  'record-tmp-write': (r) => {
    const e = epochOf(r);
    const key = epochRecordKey(e);
    return { fault: 'SIGKILL in a temporary-file write', moment: `half of ${key} in its temp file`, at: e * STEPS_PER_EPOCH + 0.15, env: { DT_FAULT_KILL_AT: `in-tmp-write:${key}` }, leftover: (d) => !fs.existsSync(path.join(d, key)) };
  },
  'after-record': (r) => {
    const e = epochOf(r);
    const key = epochRecordKey(e);
    return { fault: "SIGKILL right after an epoch's record", moment: `${key} written`, at: e * STEPS_PER_EPOCH + 0.2, env: { DT_FAULT_KILL_AT: `after-put:${key}` }, leftover: (d) => fs.existsSync(path.join(d, key)) };
  },
  'epoch-start': (r) => {
    const step = epochOf(r, EPOCHS - 1) * STEPS_PER_EPOCH + 1;
    return { fault: 'SIGKILL at an epoch start', moment: `before step ${step} (epoch ${Math.ceil(step / STEPS_PER_EPOCH)}'s first)`, at: step - 0.5, env: { DT_FAULT_PAUSE_BEFORE_STEP: String(step) }, pausedAt: step };
  },
  'mid-epoch': (r) => {
    let step: number;
    do step = 2 + Math.floor(r() * (LAST - 2));
    while ((step - 1) % STEPS_PER_EPOCH === 0);
    return { fault: 'SIGKILL mid-epoch', moment: `before step ${step}`, at: step - 0.5, env: { DT_FAULT_PAUSE_BEFORE_STEP: String(step) }, pausedAt: step };
  },
};
/** The six, once each; then six more of any kind but the two whose lock outlives the kill (30 s each to go stale). */
const REQUIRED = ['tmp-write', 'holding-lock', 'evaluation', 'manifest-latest', 'after-record', 'epoch-start'];
const EXTRA = ['manifest-latest', 'evaluation', 'record-tmp-write', 'after-record', 'epoch-start', 'mid-epoch'];

function drawMoments(seed: number): Moment[] {
  const r = mulberry32(seed);
  const moments: Moment[] = [];
  for (const kind of [...REQUIRED, ...Array.from({ length: 6 }, () => pick(r, EXTRA))]) {
    let m: Moment;
    do m = KINDS[kind]!(r);
    while (moments.some((o) => o.at === m.at));
    moments.push(m);
  }
  return moments.sort((a, b) => a.at - b.at);
}

describe(`${SUITE}: SIGKILL at 12 moments of one run (seed ${SEED})`, { timeout: 600_000 }, () => {
  const suite = useFaultSuite(SUITE, SEED);
  const { root, taskQueue, rows, workers } = suite;
  let reference: Outcome;

  before(async () => {
    const w = workers.start();
    const runId = uniqueId('straight');
    const handle = await suite.stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [faultInput(runId)] });
    const result = (await handle.result()) as TrainModelResult;
    await w.stop();
    reference = fileOutcome(result);
    const o = fileRun(result);
    assertSameRun(result, o.outcome, reference, o.jsonl, o.records);
  });

  test(`seed ${SEED}: 12 kills, each resumed on a fresh worker; completed, bitwise equal`, async (t) => {
    const moments = drawMoments(SEED);
    for (const m of moments) t.diagnostic(`moment at ${m.at}: ${m.fault}: ${m.moment}`);
    const runId = uniqueId('killed');
    const runDir = path.join(root, runId);
    let w = workers.start(moments[0]!.env);
    const handle = await suite.stack.client.workflow.start('trainModel', { taskQueue, workflowId: runId, args: [faultInput(runId)] });
    let done = false;
    const finished = handle.result().finally(() => (done = true)) as Promise<TrainModelResult>;
    const recoveries: Array<Promise<void>> = [];
    let lastKillAt = 0;
    for (const [i, m] of moments.entries()) {
      const row: FaultRow = { fault: m.fault, moment: m.moment, outcome: 'not reached' };
      rows.push(row);
      const hit = async (): Promise<boolean> => (m.pausedAt !== undefined ? w.output().includes(`paused before step ${m.pausedAt}`) : w.child.signalCode !== null || w.child.exitCode !== null);
      await waitFor(hit, 150_000, `moment ${i + 1} (${m.moment}); worker output:\n${w.output().slice(-2000)}`);
      if (m.pausedAt !== undefined) await w.kill();
      const killedAt = Date.now();
      // Reaching the next moment is training again too (it may come before any new checkpoint).
      const previous = rows[rows.length - 2];
      if (previous?.recoverSeconds === undefined && previous) previous.recoverSeconds = (killedAt - lastKillAt) / 1000;
      lastKillAt = killedAt;
      assert.equal(w.child.signalCode, 'SIGKILL', `the worker of moment ${i + 1} died of SIGKILL`);
      if (m.leftover) assert.ok(m.leftover(runDir), `moment ${i + 1} (${m.moment}) left its trace in ${runDir}`);
      row.outcome = 'killed; resumed';
      const before = progressMarkers(runDir);
      recoveries.push(
        waitFor(async () => done || row.recoverSeconds !== undefined || [...progressMarkers(runDir)].some((k) => !before.has(k)), 240_000, `progress after moment ${i + 1}`).then(() => {
          row.recoverSeconds ??= (Date.now() - killedAt) / 1000;
        }),
      );
      w = workers.start(moments[i + 1]?.env ?? {});
    }
    const result = await finished;
    await Promise.all(recoveries);
    const o = fileRun(result);
    assertSameRun(result, o.outcome, reference, o.jsonl, o.records);
    for (const row of rows) row.outcome = 'killed; resumed; COMPLETED, bitwise equal';
    // History keeps one started event per activity, with its last attempt: the retries are attempt - 1.
    const retries = ((await handle.fetchHistory()).events ?? []).reduce((n, e) => n + (e.activityTaskStartedEventAttributes?.attempt ?? 1) - 1, 0);
    t.diagnostic(`activity retries: ${retries}`);
    assert.ok(retries >= moments.length, `every kill cost its activity an attempt (${retries} retries for ${moments.length} kills)`);
  });
});
