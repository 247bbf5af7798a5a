/**
 * Issue #22 part 5: no activity a dead worker can hold for minutes. A small PBT search (2 trials,
 * 2 one-epoch rounds: every activity a search and its trials run) and a retrain (the champion's
 * three) on worker processes; a test-only hook (DT_FAULT_HOLD_DIR, src/checkpoints/fault-hooks.ts)
 * holds the first attempt of each activity type in turn, at its start or with its work done (the
 * moment drawn from a printed seed), the worker alive and heartbeating as a slow activity's would
 * be; the test SIGKILLs that worker's process group there, with another worker running, and
 * measures the time from the kill to the attempt's retry starting on the other worker. Each must
 * be within its timeout + 5 s (+ 10 s for this shared 2-core machine): the heartbeat timeout for
 * activities (5 s for store work, WORKER_HEARTBEAT_TIMEOUT; the run's `timeouts.heartbeatSeconds`,
 * 5 here, for the trainer's), the workflow task timeout (10 s) for local activities. Before
 * heartbeat timeouts on store work, archiveTrialModel's retry came after its 10-minute
 * start-to-close. Both workflows must then complete as usual.
 *
 *   node --import tsx --test test/activity-liveness.e2e.test.ts      (DT_TEST_SEED=<n> replays a draw)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import type { RetrainResult, SearchResult } from '../src/workflows';
import { tinyInput } from './e2e-support';
import { useFaultSuite, type FaultRow } from './helpers/fault-suite';
import { workerEnv, workerProcesses, type WorkerProcesses } from './helpers/restart';
import { mulberry32, testSeed } from './helpers/seed';
import { tempDir, uniqueId, waitFor, type WorkerProcess } from './helpers/temporal';

const SUITE = 'activity-liveness';
const SEED = testSeed(SUITE);
/**
 * What this loaded machine may add to a bound (two cores shared by several test runs): at load 20
 * a fresh worker took 8 s for its first workflow activation (the replay before a local activity's retry).
 */
const MARGIN_SECONDS = 10;
const HEARTBEAT_SECONDS = 5;

type Moment = 'start' | 'end';
interface Case {
  readonly type: string;
  readonly workflow: 'search' | 'retrain';
  /** The timeout after which a dead worker's attempt is given up on: what the retry waits for. */
  readonly timeoutSeconds: number;
  readonly timeout: string;
}
const store = (type: string, workflow: Case['workflow']): Case => ({ type, workflow, timeoutSeconds: 5, timeout: 'heartbeat (store work)' });
const trainer = (type: string, workflow: Case['workflow']): Case => ({ type, workflow, timeoutSeconds: HEARTBEAT_SECONDS, timeout: "heartbeat (the run's)" });
const local = (type: string): Case => ({ type, workflow: 'search', timeoutSeconds: 10, timeout: 'workflow task (local activity)' });
const CASES: readonly Case[] = [
  local('checkUris'),
  local('describeWorker'),
  trainer('trainEpoch', 'search'),
  // A search's trials export in their last epoch activity (no finalizeRun): a retrain's run still finalizes.
  trainer('finalizeRun', 'retrain'),
  store('archiveTrialModel', 'search'),
  store('copyTrialCheckpoint', 'search'),
  trainer('readRunRecords', 'search'),
  store('writeSearchResults', 'search'),
  store('readChampion', 'retrain'),
  trainer('evaluateModels', 'retrain'),
  store('recordRetrainDecision', 'retrain'),
];

interface Held {
  readonly pid: number;
  readonly moment: Moment;
}
interface Measured {
  readonly type: string;
  readonly moment: Moment;
  readonly seconds: number;
  readonly bound: number;
  readonly attempt: number;
}

const readJson = <T>(file: string): T | undefined => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
};

describe(`${SUITE}: SIGKILL inside each activity type (seed ${SEED})`, { timeout: 300_000 }, () => {
  // Two groups at once, each with its own task queue, workers and holds (a retrain's child runs
  // the trials' activities too): the search's eight types, and the retrain's three.
  const holdDirs = { search: tempDir('dt-hold-search-'), retrain: tempDir('dt-hold-retrain-') };
  const retrainQueue = uniqueId(`tq-${SUITE}-retrain`);
  const retrainWorkers = workerProcesses(() => ({ ...workerEnv(suite.stack.address, retrainQueue, pathToFileURL(suite.root).href), DT_FAULT_HOLD_DIR: holdDirs.retrain }));
  // Registered before the suite's own hooks, so these workers go before its stack closes.
  after(async () => {
    await retrainWorkers.killAll();
    for (const dir of Object.values(holdDirs)) fs.rmSync(dir, { recursive: true, force: true });
  });
  const suite = useFaultSuite(SUITE, SEED, { env: () => ({ DT_FAULT_HOLD_DIR: holdDirs.search }) });
  const { rows } = suite;
  const r = mulberry32(SEED);
  const moments = new Map<string, Moment>(CASES.map((c) => [c.type, r() < 0.5 ? 'start' : 'end']));
  const measured: Measured[] = [];
  /** Alive, and past its start line (connected, workflows bundled): it polls the task queue. */
  const isReady = (w: WorkerProcess): boolean => w.child.exitCode === null && w.child.signalCode === null && w.output().includes('[durable-train] worker on');

  const t0 = Date.now();
  const timeline: string[] = [];
  const note = (what: string): void => {
    timeline.push(`+${((Date.now() - t0) / 1000).toFixed(1)} s ${what}`);
  };

  /**
   * Arms the group's holds and starts three workers (one holds, one takes the retry, one is up for
   * the next hold while a replacement starts); then kills whichever worker holds an activity, once
   * another is up to take its retry, and measures the retry, until `finished` and nothing is held.
   */
  async function startGroup(group: Case['workflow'], workers: WorkerProcesses): Promise<void> {
    const holdDir = holdDirs[group];
    const cases = CASES.filter((c) => c.workflow === group);
    fs.writeFileSync(path.join(holdDir, 'hold'), cases.map((c) => `${c.type}@${moments.get(c.type)}`).join('\n'));
    for (let i = 0; i < 3; i++) workers.start();
    await waitFor(async () => workers.started.filter(isReady).length >= 2, 120_000, `two ${group} workers up`);
    note(`two ${group} workers up`);
  }

  async function killHolders(group: Case['workflow'], workers: WorkerProcesses, finished: () => boolean): Promise<void> {
    const holdDir = holdDirs[group];
    const cases = CASES.filter((c) => c.workflow === group);
    const pending = new Set(cases.map((c) => c.type));
    for (;;) {
      const type = [...pending].find((t) => fs.existsSync(path.join(holdDir, `held-${t}`)));
      if (type === undefined) {
        if (finished()) return;
        await new Promise((res) => setTimeout(res, 100));
        continue;
      }
      pending.delete(type);
      note(`${type} held`);
      const c = cases.find((x) => x.type === type)!;
      const held = await waitFor(async () => readJson<Held>(path.join(holdDir, `held-${type}`)), 5000, `held-${type}`);
      const holder = workers.started.find((w) => w.child.pid === held.pid);
      assert.ok(holder, `the holder of ${type} (pid ${held.pid}) is one of the ${group} workers`);
      await waitFor(async () => workers.started.some((w) => w !== holder && isReady(w)), 120_000, `another worker up before killing the holder of ${type}`);
      await holder.kill();
      const killedAt = Date.now();
      note(`${type}: its worker killed`);
      assert.equal(holder.child.signalCode, 'SIGKILL');
      workers.start();
      const row: FaultRow = { fault: `SIGKILL holding ${type}`, moment: `at its ${held.moment} (${c.timeout} timeout ${c.timeoutSeconds} s)`, outcome: 'killed' };
      rows.push(row);
      const resumed = await waitFor(
        async () => readJson<{ at: number; attempt: number }>(path.join(holdDir, `resumed-${type}`)),
        // Past the bound with room to spare, so a retry that waits for a start-to-close fails soon.
        (c.timeoutSeconds + 5 + MARGIN_SECONDS + 30) * 1000,
        `the retry of ${type} on another worker`,
      );
      note(`${type} retried`);
      const seconds = (resumed.at - killedAt) / 1000;
      row.recoverSeconds = seconds;
      row.outcome = `retried (attempt ${resumed.attempt})`;
      measured.push({ type, moment: held.moment, seconds, bound: c.timeoutSeconds + 5, attempt: resumed.attempt });
    }
  }

  /** Starts a workflow, kills the holders of the group's activities, and returns its result. */
  async function drive<T>(group: Case['workflow'], workers: WorkerProcesses, taskQueue: string, type: string, input: unknown): Promise<T> {
    await startGroup(group, workers);
    const handle = await suite.stack.client.workflow.start(type, { taskQueue, workflowId: uniqueId(`${SUITE}-${group}`), args: [input] });
    let done = false;
    const result = handle.result().finally(() => (done = true)) as Promise<T>;
    await killHolders(group, workers, () => done);
    const out = await result;
    note(`${group} completed`);
    return out;
  }

  test(`seed ${SEED}: each activity type held and its worker SIGKILLed; retried within its timeout + 5 s (+ ${MARGIN_SECONDS} s)`, async (t) => {
    for (const c of CASES) t.diagnostic(`hold ${c.type} at its ${moments.get(c.type)}`);
    const [s, rr] = await Promise.all([
      // PBT: two trials, two rounds of one epoch; the worse one copies the better one's checkpoint.
      drive<SearchResult>('search', suite.workers, suite.taskQueue, 'hyperparameterSearch', {
        base: tinyInput({ stepsPerEpoch: 2, maxEpochs: 2 }),
        strategy: 'pbt',
        roundEpochs: 1,
        maxTrials: 2,
        maxParallel: 1,
        space: { 'hyperparameters.learningRate': [0.05, 0.001] },
      }),
      drive<RetrainResult>('retrain', retrainWorkers, retrainQueue, 'retrainModel', { modelName: uniqueId('liveness'), train: tinyInput({ maxEpochs: 1 }) }),
    ]);
    for (const line of timeline) t.diagnostic(line);
    assert.equal(s.lineage.length, 1, 'one exploit (the copy)');
    assert.ok(s.trials.every((tr) => tr.status === 'completed' && tr.epochs === 2), JSON.stringify(s.trials.map((tr) => [tr.status, tr.epochs])));
    assert.equal(rr.promoted, true, rr.reason);

    console.log(`[${SUITE}] | activity | held at | seconds to retry | bound (timeout + 5 s) |`);
    for (const m of measured) console.log(`[${SUITE}] | ${m.type} | ${m.moment} | ${m.seconds.toFixed(1)} | ${m.bound} |`);
    assert.deepEqual(measured.map((m) => m.type).sort(), CASES.map((c) => c.type).sort(), 'every activity type was held, killed and retried');
    for (const m of measured) {
      assert.ok(m.seconds <= m.bound + MARGIN_SECONDS, `${m.type} (held at its ${m.moment}) retried ${m.seconds.toFixed(1)} s after the kill: over ${m.bound} s + ${MARGIN_SECONDS} s`);
    }
  });
});
