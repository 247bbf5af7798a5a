/**
 * What the data e2e files share (image-shards, data-formats, sharded-data through workflows;
 * data-streamed, user-streamed-dataset in the trainer process): their stack, the seeded
 * kill-and-resume and the table of bad inputs that must fail fast.
 *
 * - useShardedStack: registers before/after hooks in a describe: a temp root, the dev server
 *   (shared), the GCS emulator when buckets are asked for (started beside the server connection),
 *   worker processes on one task queue writing runs under `<root>/runs`; after the tests every
 *   worker killed, the stack closed, the emulator disposed, the root removed. Register the file's
 *   own `before` (its data) after it: node:test runs before hooks in order.
 * - expectBadInputsFail: runs each case as a workflow and requires FAILED within `withinMs`, at
 *   the first attempt, with a message (the cause chain) matching the case; prints a table row per
 *   case and asserts once, listing every case that did not.
 * - killPausedTrainer: the trainer-level kill: a trainer paused before a seeded step
 *   (DT_FAULT_PAUSE_BEFORE_STEP) is SIGKILLed once the checkpoint before it is committed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { checkpointKey, MANIFEST } from '../../src/checkpoints/layout';
import type { TrainerClient } from '../../src/training/trainer-client';
import { startGcsEmulator, type GcsEmulator } from './gcs-emulator';
import { startStack, startWorkerProcess, tempDir, uniqueId, type Stack, type WorkerProcess } from './temporal';

export interface ShardedStack {
  /** The dev server connection (after the helper's before hook). */
  readonly stack: Stack;
  /** The GCS emulator (only when `buckets` were given). */
  readonly emu: GcsEmulator;
  /** The file's temp folder; runs go to `<root>/runs`. */
  readonly root: string;
  readonly runsUri: string;
  readonly taskQueue: string;
  /** A worker process on the task queue (`extra` on top of its environment), killed after the tests. */
  worker(extra?: Record<string, string>): WorkerProcess;
}

export function useShardedStack(name: string, options: { buckets?: readonly string[] } = {}): ShardedStack {
  const root = tempDir(`dt-${name}-`);
  const runsUri = pathToFileURL(path.join(root, 'runs')).href;
  const taskQueue = uniqueId(`tq-${name}`);
  const workers: WorkerProcess[] = [];
  let stack: Stack | undefined;
  let emu: GcsEmulator | undefined;

  before(async () => {
    [emu, stack] = await Promise.all([options.buckets ? startGcsEmulator({ buckets: options.buckets }) : undefined, startStack()]);
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await stack?.close();
    await emu?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const started = (): Stack => {
    assert.ok(stack, "the stack starts in useShardedStack's before hook");
    return stack;
  };
  return {
    get stack() {
      return started();
    },
    get emu() {
      assert.ok(emu, 'no emulator: pass `buckets` to useShardedStack');
      return emu;
    },
    root,
    runsUri,
    taskQueue,
    worker(extra = {}) {
      const w = startWorkerProcess({
        TEMPORAL_ADDRESS: started().address,
        DT_TASK_QUEUE: taskQueue,
        DT_CHECKPOINT_URI: runsUri,
        ...(emu && { STORAGE_EMULATOR_HOST: emu.endpoint }),
        ...extra,
      });
      workers.push(w);
      return w;
    },
  };
}

/** An error's message and its causes', outermost first. */
export function messages(err: unknown): string {
  const out: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) out.push(e.message ?? String(e));
  return out.join(' <- ');
}

export interface BadInput {
  readonly name: string;
  /** The workflow input (its runId is set by the helper's caller through `input`). */
  readonly input: (runId: string) => Record<string, unknown>;
  /** What the failure's message (its cause chain) must match. */
  readonly names: RegExp;
}

/** Each case ends FAILED within `withinMs` (10 s) at its first attempt, its message matching; every case runs before the one assertion. */
export async function expectBadInputsFail(s: ShardedStack, cases: readonly BadInput[], withinMs = 10_000): Promise<void> {
  const problems: string[] = [];
  for (const c of cases) {
    const runId = uniqueId('bad');
    const started = Date.now();
    const handle = await s.stack.client.workflow.start('trainModel', { taskQueue: s.taskQueue, workflowId: runId, args: [c.input(runId)], workflowExecutionTimeout: '2 minutes' });
    const err = await handle.result().then(() => undefined, (e: unknown) => e);
    const seconds = (Date.now() - started) / 1000;
    const events = (await handle.fetchHistory()).events ?? [];
    const attempts = Math.max(1, ...events.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1));
    const message = err instanceof WorkflowFailedError ? messages(err.cause) : String(err);
    console.log(`| ${c.name} | ${err instanceof WorkflowFailedError ? 'FAILED' : 'not failed'} | ${seconds.toFixed(1)} s | ${attempts} | ${message.slice(0, 240)} |`);
    if (!(err instanceof WorkflowFailedError)) problems.push(`${c.name}: ${String(err)}`);
    if (seconds > withinMs / 1000) problems.push(`${c.name}: ${seconds.toFixed(1)} s`);
    if (attempts > 1) problems.push(`${c.name}: ${attempts} attempts`);
    if (!c.names.test(message)) problems.push(`${c.name}: the message does not match ${c.names}: ${message.slice(0, 400)}`);
  }
  assert.deepEqual(problems, []);
}

/** Polls (100 ms) until the worker process says it paused before `step` and `manifest` exists. */
export async function waitForPause(worker: WorkerProcess, step: number, manifest: string, timeoutMs: number): Promise<void> {
  for (let waited = 0; !fs.existsSync(manifest) || !worker.output().includes(`paused before step ${step}`); waited += 100) {
    assert.ok(waited < timeoutMs, `never paused before step ${step} with ${manifest} committed: ${worker.output().slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The newest checkpoint step strictly before `step` with one every `every` steps. */
export const checkpointBefore = (step: number, every: number): number => Math.floor((step - 1) / every) * every;

/** SHA-256 of the files that hold a checkpoint's weights and optimizer state. */
export function checkpointHashes(runDir: string, step: number): Record<string, string> {
  const sha = (f: string): string => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  const dir = path.join(runDir, checkpointKey(step));
  return { 'weights.bin': sha(path.join(dir, 'weights.bin')), 'optimizer.bin': sha(path.join(dir, 'optimizer.bin')) };
}

/**
 * Trainer level: `doomed` (a client started with DT_FAULT_PAUSE_BEFORE_STEP=killAt whose log
 * calls `onLog`) runs `request`; once it pauses and the checkpoint before `killAt` is committed
 * under `runDir` (written in the background), its process is SIGKILLed. Returns that checkpoint's step.
 */
export async function killPausedTrainer(doomed: TrainerClient, paused: Promise<void>, request: Promise<unknown>, runDir: string, killAt: number, every: number): Promise<number> {
  request.catch(() => undefined);
  await paused;
  const last = checkpointBefore(killAt, every);
  const manifest = path.join(runDir, checkpointKey(last), MANIFEST);
  for (let waited = 0; last > 0 && !fs.existsSync(manifest); waited += 20) {
    assert.ok(waited < 30_000, `checkpoint ${last} was never committed`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  process.kill(doomed.pid!, 'SIGKILL');
  await assert.rejects(request);
  await doomed.close();
  return last;
}
