/**
 * Runs the real fake-gcs-server (github.com/fsouza/fake-gcs-server v1.55.1) for tests.
 *
 *   const emu = await startGcsEmulator({ buckets: ['ckpt'], backend: 'filesystem' });
 *   ... new GcsCheckpointStore('gs://ckpt/run', { storage: emu.storage }) ...
 *   await emu.stop(); await emu.restart();   // same port, same data (filesystem backend)
 *   await emu.dispose();                     // in `after`: kill it and delete its data dir
 *
 * The binary is found at $FAKE_GCS_SERVER_PATH, else <repo>/.cache/bin/fake-gcs-server, else PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import type { Storage } from '@google-cloud/storage';

import { createGcsStorage } from '../../src/checkpoints/gcs-client';
// Its data dir goes to this process's temp folder, removed at exit even when `dispose` is never reached.
import './cleanup';

export type GcsEmulatorBackend = 'memory' | 'filesystem';

export interface GcsEmulatorOptions {
  /** Buckets created after the first start. */
  buckets?: readonly string[];
  /**
   * 'memory' (default): fast, but a restart loses every object and bucket (buckets are re-created).
   * 'filesystem': data lives in a temp dir and survives stop()/restart().
   */
  backend?: GcsEmulatorBackend;
  /** Project id the client sends (needed for bucket creation). Default 'durable-train-test'. */
  projectId?: string;
  /** Port to bind; default a free one picked on 127.0.0.1. */
  port?: number;
  /** How long to wait for the server to answer after (re)start. Default 20 000 ms. */
  startTimeoutMs?: number;
}

export interface GcsEmulator {
  /** `http://127.0.0.1:PORT`: pass as `apiEndpoint`. */
  readonly endpoint: string;
  readonly port: number;
  readonly projectId: string;
  readonly backend: GcsEmulatorBackend;
  /** Filesystem backend only: the emulator's data root. */
  readonly dataDir: string | undefined;
  /** A client pointed at the emulator, with the library's auto-retry off. */
  readonly storage: Storage;
  /** True while the server process is running. */
  readonly running: boolean;
  /** Stops the server (SIGTERM, then SIGKILL); data of the filesystem backend is kept. */
  stop(): Promise<void>;
  /** Starts it again on the same port (stopping it first if running) and waits until it answers. */
  restart(): Promise<void>;
  /** stop() and delete the data dir. Idempotent; call it in `after`. */
  dispose(): Promise<void>;
  /** The server's recent output, for diagnostics. */
  logs(): string;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const SETUP_HINT = 'run `bash scripts/setup.sh` to build it (GOBIN=<repo>/.cache/bin go install github.com/fsouza/fake-gcs-server@v1.55.1)';

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Locates the fake-gcs-server binary or throws an error that says how to get it. */
export function findFakeGcsServer(): string {
  const fromEnv = process.env.FAKE_GCS_SERVER_PATH;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(`FAKE_GCS_SERVER_PATH=${fromEnv} is not an executable file; unset it or ${SETUP_HINT}`);
  }
  const cached = path.join(REPO_ROOT, '.cache', 'bin', 'fake-gcs-server');
  if (isExecutable(cached)) return cached;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'fake-gcs-server');
    if (isExecutable(candidate)) return candidate;
  }
  throw new Error(`fake-gcs-server not found (looked at $FAKE_GCS_SERVER_PATH, ${cached} and PATH); ${SETUP_HINT}`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not pick a free port'))));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Processes still alive at exit are killed, so a crashed test run leaves no emulator behind. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

export async function startGcsEmulator(options: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const binary = findFakeGcsServer();
  const backend = options.backend ?? 'memory';
  const projectId = options.projectId ?? 'durable-train-test';
  const buckets = options.buckets ?? [];
  const startTimeoutMs = options.startTimeoutMs ?? 20_000;
  const port = options.port ?? (await freePort());
  const endpoint = `http://127.0.0.1:${port}`;
  const dataDir = backend === 'filesystem' ? mkdtempSync(path.join(tmpdir(), 'fake-gcs-')) : undefined;
  const storage = createGcsStorage({ apiEndpoint: endpoint, projectId });

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  let disposed = false;

  const args = [
    '-scheme', 'http',
    '-host', '127.0.0.1',
    '-port', String(port),
    '-external-url', endpoint,
    '-public-host', `127.0.0.1:${port}`,
    '-log-level', 'warn',
    '-backend', backend,
    ...(dataDir ? ['-filesystem-root', dataDir] : []),
  ];

  const appendOutput = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };

  async function waitUntilAnswering(proc: ChildProcess): Promise<void> {
    const deadline = Date.now() + startTimeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`fake-gcs-server exited (${proc.exitCode ?? proc.signalCode}) during startup:\n${output}`);
      }
      try {
        const res = await fetch(`${endpoint}/storage/v1/b?project=${encodeURIComponent(projectId)}`, {
          signal: AbortSignal.timeout(1_000),
        });
        if (res.ok) {
          await res.arrayBuffer();
          return;
        }
        lastError = new Error(`HTTP ${res.status}`);
      } catch (err) {
        lastError = err;
      }
      await sleep(50);
    }
    throw new Error(`fake-gcs-server did not answer on ${endpoint} within ${startTimeoutMs} ms: ${String(lastError)}\n${output}`);
  }

  async function start(): Promise<void> {
    installExitHook();
    const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    live.add(proc);
    proc.stdout?.on('data', appendOutput);
    proc.stderr?.on('data', appendOutput);
    exited = new Promise((resolve) => {
      proc.once('exit', () => {
        live.delete(proc);
        resolve();
      });
      proc.once('error', (err) => {
        appendOutput(Buffer.from(`spawn error: ${err.message}\n`));
        live.delete(proc);
        resolve();
      });
    });
    try {
      await waitUntilAnswering(proc);
    } catch (err) {
      await stop();
      throw err;
    }
  }

  async function stop(): Promise<void> {
    const proc = child;
    if (!proc) return;
    child = undefined;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const killed = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5_000))),
      ]);
      clearTimeout(timer);
      if (!killed) {
        proc.kill('SIGKILL');
        await exited;
      }
    }
    await exited;
  }

  async function createBuckets(): Promise<void> {
    for (const name of buckets) {
      const [exists] = await storage.bucket(name).exists();
      if (!exists) await storage.createBucket(name);
    }
  }

  await start();
  try {
    await createBuckets();
  } catch (err) {
    await stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }

  return {
    endpoint,
    port,
    projectId,
    backend,
    dataDir,
    storage,
    get running() {
      return child !== undefined;
    },
    stop,
    async restart() {
      if (disposed) throw new Error('gcs emulator was disposed');
      await stop();
      await start();
      // A memory backend comes back empty: give tests their buckets back.
      await createBuckets();
    },
    async dispose() {
      disposed = true;
      await stop();
      if (dataDir && existsSync(dataDir)) rmSync(dataDir, { recursive: true, force: true });
    },
    logs: () => output,
  };
}
