/**
 * Starts and stops a real Temporal dev server (the `temporal` CLI built by scripts/setup.sh),
 * for the quick-start demo and the tests. It can be stopped and started again on the same port
 * and database, to show that runs survive a server restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_CLI_ARGS } from './workflows/search-attributes';

const ROOT = path.resolve(__dirname, '..');

/** The `temporal` binary: TEMPORAL_CLI_PATH, the one setup.sh found or built, or PATH. */
export function temporalCliPath(): string {
  const candidates = [
    process.env.TEMPORAL_CLI_PATH,
    readIfExists(path.join(ROOT, '.cache/temporal-path'))?.trim(),
    path.join(ROOT, '.cache/bin/temporal'),
  ];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'temporal');
    if (dir && fs.existsSync(p)) return p;
  }
  throw new Error('The Temporal CLI was not found: run `bash scripts/setup.sh` (it builds it with go install), or set TEMPORAL_CLI_PATH');
}

function readIfExists(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface DevServerOptions {
  readonly dbFile?: string;
  readonly port?: number;
  /** Serve the Temporal Web UI on this port (127.0.0.1); headless when omitted. */
  readonly uiPort?: number;
}

export class DevServer {
  private process: ChildProcess | undefined;
  readonly address: string;

  private constructor(readonly port: number, readonly dbFile: string, readonly logFile: string, readonly uiPort: number | undefined) {
    this.address = `127.0.0.1:${port}`;
  }

  /** The Web UI's address, when the server serves it. */
  get uiUrl(): string | undefined {
    return this.uiPort === undefined ? undefined : `http://127.0.0.1:${this.uiPort}`;
  }

  /** Starts a dev server on a free port with its own database file (in a temp dir unless given). */
  static async start(options: DevServerOptions = {}): Promise<DevServer> {
    const port = options.port ?? (await freePort());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-temporal-'));
    const server = new DevServer(port, options.dbFile ?? path.join(dir, 'temporal.db'), path.join(dir, 'server.log'), options.uiPort);
    await server.restart();
    return server;
  }

  /** Starts (again) on the same port and database. */
  async restart(): Promise<void> {
    if (this.process) throw new Error('The dev server is already running');
    const metricsPort = await freePort();
    const ui = this.uiPort === undefined ? ['--headless', '--ui-port', String(await freePort())] : ['--ui-ip', '127.0.0.1', '--ui-port', String(this.uiPort)];
    const log = fs.openSync(this.logFile, 'a');
    const child = spawn(
      temporalCliPath(),
      [
        'server', 'start-dev', ...ui, '--ip', '127.0.0.1', '--port', String(this.port),
        '--metrics-port', String(metricsPort),
        '--db-filename', this.dbFile, '--log-level', 'warn',
        ...SEARCH_ATTRIBUTE_CLI_ARGS.flatMap((a) => ['--search-attribute', a]),
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    this.process = child;
    child.on('exit', () => {
      if (this.process === child) this.process = undefined;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!this.process) throw new Error(`The dev server exited at start; see ${this.logFile}`);
      try {
        const connection = await Connection.connect({ address: this.address, connectTimeout: 1000 });
        try {
          await connection.workflowService.getSystemInfo({});
        } finally {
          await connection.close();
        }
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`The dev server did not answer within 60 s: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }

  /** Kills the server with SIGKILL, as a crash would (what it had not flushed is lost); restart() starts it again. */
  async kill(): Promise<void> {
    const child = this.process;
    if (!child) return;
    this.process = undefined;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** Stops the server (SIGTERM, then SIGKILL after 10 s). */
  async stop(): Promise<void> {
    const child = this.process;
    if (!child) return;
    this.process = undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
