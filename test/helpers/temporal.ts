/**
 * Test harness on real parts: a real Temporal dev server (shared through DT_TEST_TEMPORAL_ADDRESS
 * when .ci/run or `npm run test:fast` started one, else started here), real workers (in-process,
 * or as separate processes that a test can SIGKILL), and a temp checkpoint root per test. Every
 * folder and process it makes is gone when the test process exits (./cleanup).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before } from 'node:test';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import { DevServer } from '../../src/dev-server';
import { DurableTrainPlugin } from '../../src/plugin';
import { killGroupOnExit, removeDirs, tempDir } from './cleanup';

export { tempDir, removeDirs } from './cleanup';

export const ROOT = path.resolve(__dirname, '../..');

/**
 * The allow-list (README "Security model") of every worker and trainer a test starts, in process
 * or as a process: the temp dirs tests write data and runs to, the shipped fixtures, and the
 * emulator's test buckets. Set here once, so the defaults stay what a user gets.
 */
export const TEST_ALLOWED_URIS = [
  pathToFileURL(os.tmpdir()).href,
  pathToFileURL(path.join(ROOT, 'test/fixtures')).href,
  ...['dt-e2e', 'dt-tabular', 'dt-checkpoints', 'dt-outage', 'no-such-bucket'].map((bucket) => `gs://${bucket}`),
];
process.env.DT_ALLOWED_URIS = TEST_ALLOWED_URIS.join(',');

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  // Expected workflow failures (bad input tests) would log at WARN: keep test output readable.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
}

export interface Stack {
  readonly address: string;
  readonly client: Client;
  /** Present when this file started its own server (it can then be restarted). */
  readonly server: DevServer | undefined;
  close(): Promise<void>;
}

/** Connects to the shared dev server, or starts one (pass own: true for a server this file may restart). */
export async function startStack(options: { own?: boolean } = {}): Promise<Stack> {
  quietRuntime();
  const shared = process.env.DT_TEST_TEMPORAL_ADDRESS;
  const server = shared && !options.own ? undefined : await DevServer.start();
  const address = server?.address ?? shared!;
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  return {
    address,
    client,
    server,
    async close() {
      await connection.close().catch(() => undefined);
      await server?.stop();
      // Its database and log (a server this file started is gone with it).
      if (server) removeDirs(path.dirname(server.dbFile));
    },
  };
}

let bundle: Promise<WorkflowBundleOption> | undefined;
/**
 * Workflows are bundled once per test file and shared by its workers; `npm run test:fast` bundles
 * once for all its files and passes the file in DT_TEST_WORKFLOW_BUNDLE.
 */
export function workflowBundle(): Promise<WorkflowBundleOption> {
  const prebuilt = process.env.DT_TEST_WORKFLOW_BUNDLE;
  bundle ??= prebuilt
    ? Promise.resolve({ codePath: prebuilt })
    : bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: new DefaultLogger('WARN') });
  return bundle;
}

export function tempCheckpointRoot(): string {
  return pathToFileURL(tempDir('dt-runs-')).href;
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

export interface InProcessWorker {
  readonly taskQueue: string;
  readonly plugin: DurableTrainPlugin;
  stop(): Promise<void>;
}

/** A real worker in this process (its trainer is still a child process). */
export async function startWorker(
  address: string,
  options: { taskQueue?: string; checkpointRoot?: string; backend?: string } = {},
): Promise<InProcessWorker> {
  quietRuntime();
  const taskQueue = options.taskQueue ?? uniqueId('tq');
  const plugin = new DurableTrainPlugin({
    trainer: { backend: options.backend ?? process.env.DT_BACKEND ?? 'auto', log: () => undefined },
    checkpointRoot: options.checkpointRoot ?? tempCheckpointRoot(),
  });
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    plugins: [plugin],
    maxConcurrentActivityTaskExecutions: 2,
  });
  const running = worker.run();
  return {
    taskQueue,
    plugin,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await plugin.close();
      await connection.close();
    },
  };
}

export interface StackAndWorker {
  readonly stack: Stack;
  readonly worker: InProcessWorker;
  /** What our CLI needs to reach this stack and run on this worker (TEMPORAL_ADDRESS, DT_TASK_QUEUE). */
  readonly cliEnv: Record<string, string>;
}

/**
 * Registers node:test hooks (in the enclosing describe, or the file) that start a stack and an
 * in-process worker before its tests and stop both after them; read them through the getters.
 */
export function useStackAndWorker(options: { own?: boolean } = {}): StackAndWorker {
  let stack: Stack | undefined;
  let worker: InProcessWorker | undefined;
  before(async () => {
    stack = await startStack(options);
    worker = await startWorker(stack.address);
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`Expected the ${what} to be started (read it in a test or hook, after the before hook), got undefined`);
    return value;
  };
  return {
    get stack() {
      return started(stack, 'stack');
    },
    get worker() {
      return started(worker, 'worker');
    },
    get cliEnv() {
      return { TEMPORAL_ADDRESS: started(stack, 'stack').address, DT_TASK_QUEUE: started(worker, 'worker').taskQueue };
    },
  };
}

export interface RunningWorker {
  readonly taskQueue: string;
  stop(): Promise<void>;
}

/**
 * A worker in this process running the real workflows with the activities given (the fast tier's
 * scripted mocks): no trainer process, no tfjs. Typed as `Activities`, so a changed activity
 * signature breaks the mock at compile time.
 */
export async function startWorkerWithActivities(address: string, activities: Activities, options: { taskQueue?: string } = {}): Promise<RunningWorker> {
  quietRuntime();
  const taskQueue = options.taskQueue ?? uniqueId('tq');
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({ connection, taskQueue, workflowBundle: await workflowBundle(), activities });
  const running = worker.run();
  return {
    taskQueue,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  /** SIGKILLs the worker and its trainer (the whole process group): nothing gets to clean up. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** `src/worker.ts` as its own process group, configured through the environment like a user's. */
export function startWorkerProcess(env: Record<string, string>): WorkerProcess {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/worker.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killGroupOnExit(child);
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  return {
    child,
    output: () => output,
    async kill() {
      signalGroup('SIGKILL');
      await exited;
    },
    async stop() {
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs our CLI as a user does (`bin/durable-train.js` in its own process) and collects its output. */
export function runDurableTrain(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/durable-train.js'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Event types of a workflow's history, for asserting what was (not) scheduled. */
export async function historyEventTypes(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  // eventType arrives as the enum's number: name it, so tests can match on names.
  return (history.events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType));
}

/** Awaits a workflow that must fail with a non-retryable InvalidConfig application failure; returns that failure. */
export async function invalidConfigFailure(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => assert.fail('the workflow should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError);
  assert.ok(err.cause instanceof ApplicationFailure, `cause: ${String(err.cause)}`);
  assert.equal(err.cause.type, 'InvalidConfig');
  assert.equal(err.cause.nonRetryable, true);
  return err.cause;
}

/** Polls `fn` until it returns a truthy value or the timeout passes. */
export async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A small MNIST run: fast on every backend, still real digits and real learning. */
export function mnistInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { name: 'mlp', params: { hiddenUnits: [64] } },
    data: { train: { name: 'mnist', split: 'train' }, eval: { name: 'mnist', split: 'test', limit: 500 } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.002, batchSize: 32 },
    stepsPerEpoch: 40,
    maxEpochs: 3,
    seed: 7,
    timeouts: { heartbeatSeconds: 5 },
    ...overrides,
  };
}
