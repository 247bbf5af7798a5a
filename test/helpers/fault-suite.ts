/**
 * What the fault suites (test/faults-*.e2e.test.ts) share: the seed they print and replay
 * (`DT_TEST_SEED`), the run they fault, what its outcome is compared on, the table of faults
 * they print for the note, and their stack and worker processes (useFaultSuite).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before } from 'node:test';
import { MANIFEST, METRICS_JSONL, METRICS_PREFIX, OPTIMIZER_BIN, checkpointObjectKey } from '../../src/checkpoints/layout';
import type { TrainModelResult } from '../../src/workflows';
import { comparable, modelWeights, sha256, tinyInput } from '../e2e-support';
import { workerEnv, workerProcesses, type WorkerProcesses } from './restart';
import { startStack, tempDir, uniqueId, type Stack } from './temporal';

export const STEPS_PER_EPOCH = 20;
export const EPOCHS = 8;
export const EVERY = 5;
export const LAST = STEPS_PER_EPOCH * EPOCHS;

/** The faulted run: a tiny synthetic MLP (milliseconds per step), a checkpoint every 5 steps, every checkpoint kept. */
export function faultInput(runId: string, checkpointUri?: string): Record<string, unknown> {
  return tinyInput({
    runId,
    stepsPerEpoch: STEPS_PER_EPOCH,
    maxEpochs: EPOCHS,
    checkpoint: { everySteps: EVERY, everySeconds: 0, keepLast: 1000, ...(checkpointUri !== undefined && { uri: checkpointUri }) },
    timeouts: { heartbeatSeconds: 3 },
  });
}

/** What two runs of one config must agree on bit for bit. */
export interface Outcome {
  readonly exportedWeights: string;
  readonly lastOptimizer: string;
  readonly history: ReturnType<typeof comparable>;
}

/** The outcome of a file:// run (exported weights.bin, the last checkpoint's optimizer.bin, every epoch's metrics). */
export function fileOutcome(result: TrainModelResult): Outcome {
  const runDir = fileURLToPath(result.runUri);
  return {
    exportedWeights: sha256(modelWeights(result)),
    lastOptimizer: sha256(fs.readFileSync(path.join(runDir, checkpointObjectKey(LAST, OPTIMIZER_BIN)))),
    history: comparable(result.history),
  };
}

/** A file:// run's outcome, its metrics.jsonl and its epoch records' keys: what assertSameRun takes. */
export function fileRun(result: TrainModelResult): { outcome: Outcome; jsonl: string; records: string[] } {
  const runDir = fileURLToPath(result.runUri);
  return {
    outcome: fileOutcome(result),
    jsonl: fs.readFileSync(path.join(runDir, METRICS_JSONL), 'utf8'),
    // The store's own temp files (`.dt-*`, left by a kill inside a write) are not records: the store
    // never lists them, and retention collects them once they are older than one write can be.
    records: fs.readdirSync(path.join(runDir, METRICS_PREFIX)).filter((n) => !n.startsWith('.dt-')).sort().map((n) => `${METRICS_PREFIX}${n}`),
  };
}

/** Asserts the run completed like the uninterrupted one, and recorded every epoch exactly once. */
export function assertSameRun(result: TrainModelResult, outcome: Outcome, reference: Outcome, metricsJsonl: string, recordKeys: readonly string[]): void {
  assert.equal(result.status, 'completed');
  assert.equal(result.step, LAST);
  assert.equal(outcome.exportedWeights, reference.exportedWeights, 'exported weights.bin (SHA-256)');
  assert.equal(outcome.lastOptimizer, reference.lastOptimizer, `optimizer.bin of the last checkpoint (SHA-256)`);
  assert.deepEqual(outcome.history, reference.history, 'every epoch, metrics bit for bit');
  const epochs = metricsJsonl.trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
  const expected = Array.from({ length: EPOCHS }, (_, i) => i + 1);
  assert.deepEqual(epochs, expected, `${METRICS_JSONL}: every epoch once`);
  assert.deepEqual(recordKeys.map((k) => Number(/(\d+)\.json$/.exec(k)?.[1])), expected, `${METRICS_PREFIX}: one record per epoch`);
}

/** Committed manifests and epoch records of a file:// run folder: what "training again" adds to. */
export function progressMarkers(runDir: string): Set<string> {
  const out = new Set<string>();
  for (const sub of ['checkpoints', 'metrics']) {
    const dir = path.join(runDir, sub);
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      if (sub === 'metrics' || fs.existsSync(path.join(dir, name, MANIFEST))) out.add(`${sub}/${name}`);
    }
  }
  return out;
}

export interface FaultRow {
  readonly fault: string;
  readonly moment: string;
  outcome: string;
  /** Seconds from the fault to the run's next progress (a new checkpoint or epoch record, or its end). */
  recoverSeconds?: number;
}

export function printTable(suite: string, seed: number, rows: readonly FaultRow[]): void {
  console.log(`[${suite}] seed ${seed}`);
  console.log(`[${suite}] | fault | moment | outcome | time to recover (s) |`);
  for (const r of rows) console.log(`[${suite}] | ${r.fault} | ${r.moment} | ${r.outcome} | ${r.recoverSeconds?.toFixed(1) ?? '-'} |`);
}

export interface FaultSuite {
  readonly stack: Stack;
  /** The file:// checkpoint root of the suite's worker processes, as a path. */
  readonly root: string;
  readonly taskQueue: string;
  readonly workers: WorkerProcesses;
  /** The table printed after the suite. */
  readonly rows: FaultRow[];
}

/**
 * Registers a fault suite's hooks in its describe: a stack (`own`: a server the suite may
 * restart), worker processes on one task queue writing to one temp root (`env` on top, read at
 * each start); after the tests the table printed, every worker SIGKILLed, the stack closed and
 * the root removed.
 */
export function useFaultSuite(suite: string, seed: number, options: { own?: boolean; env?: () => Record<string, string> } = {}): FaultSuite {
  let stack: Stack | undefined;
  const root = tempDir(`dt-${suite}-`);
  const taskQueue = uniqueId(`tq-${suite}`);
  const rows: FaultRow[] = [];
  const started = (): Stack => {
    if (!stack) throw new Error(`Expected the ${suite} stack to be started (read it in a test or hook), got undefined`);
    return stack;
  };
  const workers = workerProcesses(() => ({ ...workerEnv(started().address, taskQueue, pathToFileURL(root).href), ...options.env?.() }));
  before(async () => {
    stack = await startStack({ own: options.own });
  });
  after(async () => {
    printTable(suite, seed, rows);
    await workers.killAll();
    await stack?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return {
    get stack() {
      return started();
    },
    root,
    taskQueue,
    workers,
    rows,
  };
}
