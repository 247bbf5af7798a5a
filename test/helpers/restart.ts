/**
 * What the restart and fault tests share: worker processes (src/worker.ts, configured through the
 * environment like a user's) that a test SIGKILLs and starts again, a workflow result read through
 * dev server outages, and for the search restart tests a server of their own with an in-process
 * worker for the uninterrupted reference run.
 */
import { after } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { startWorkerProcess, tempCheckpointRoot, uniqueId, useStackAndWorker, type StackAndWorker, type WorkerProcess } from './temporal';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits for a workflow's result through server outages: the client call fails while the server is down. */
export async function resultThroughOutages<T>(handle: WorkflowHandle, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return (await handle.result()) as T;
    } catch (err) {
      if (Date.now() > deadline || (err as Error).name === 'WorkflowFailedError') throw err;
      await sleep(500);
    }
  }
}

/** The environment of a worker process on `taskQueue` of the server at `address`, writing runs under `checkpointUri`. */
export function workerEnv(address: string, taskQueue: string, checkpointUri: string): Record<string, string> {
  return { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'default', DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: checkpointUri };
}

export interface WorkerProcesses {
  /** Starts a worker process with the suite's environment, `env` on top. */
  start(env?: Record<string, string>): WorkerProcess;
  /** Every process started so far, oldest first. */
  readonly started: readonly WorkerProcess[];
  /** SIGTERMs each process in turn (SIGKILL after 15 s). */
  stopAll(): Promise<void>;
  /** SIGKILLs each process group in turn. */
  killAll(): Promise<void>;
}

/** Worker processes of one suite; `env` is read at each start, so it may use what a before hook made. */
export function workerProcesses(env: () => Record<string, string>): WorkerProcesses {
  const started: WorkerProcess[] = [];
  return {
    start(extra = {}) {
      const w = startWorkerProcess({ ...env(), ...extra });
      started.push(w);
      return w;
    },
    started,
    async stopAll() {
      for (const w of started) await w.stop();
    },
    async killAll() {
      for (const w of started) await w.kill();
    },
  };
}

export interface RestartStack extends StackAndWorker {
  /** Worker processes on a new task queue and checkpoint root, stopped after the file's tests. */
  faultedWorkers(prefix: string): WorkerProcesses & { readonly taskQueue: string };
  /** Stops this file's own server, keeps it down 2 s, and starts it again on the same database. */
  restartServer(onStopped?: () => void): Promise<void>;
}

/**
 * Registers node:test hooks for a restart test: a dev server of its own (so it can be restarted),
 * an in-process worker for the reference run, and after the tests every worker process stopped
 * before the worker and the server.
 */
export function useRestartStack(): RestartStack {
  const suites: WorkerProcesses[] = [];
  // Registered first, so it runs first: the processes go while the server is still up.
  after(async () => {
    for (const s of suites) await s.stopAll();
  });
  const harness = useStackAndWorker({ own: true });
  return {
    get stack() {
      return harness.stack;
    },
    get worker() {
      return harness.worker;
    },
    get cliEnv() {
      return harness.cliEnv;
    },
    faultedWorkers(prefix) {
      const taskQueue = uniqueId(prefix);
      const checkpointRoot = tempCheckpointRoot();
      const workers = workerProcesses(() => workerEnv(harness.stack.address, taskQueue, checkpointRoot));
      suites.push(workers);
      return { ...workers, taskQueue };
    },
    async restartServer(onStopped) {
      const { server } = harness.stack;
      if (!server) throw new Error('Expected a server this file started (startStack({ own: true })) to restart, got a shared one');
      await server.stop();
      onStopped?.();
      await sleep(2000);
      await server.restart();
    },
  };
}
