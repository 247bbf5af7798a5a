/** A real MLflow tracking server (PyPI `mlflow`, SQLite backend, loopback) for the tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/dev-server';
import { killGroupOnExit } from './cleanup';
import { pythonTools } from './python-tools';

export interface MlflowServer {
  readonly uri: string;
  stop(): Promise<void>;
}

export async function startMlflowServer(): Promise<MlflowServer> {
  const python = pythonTools({ mlflow: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-mlflow-'));
  const port = await freePort();
  const log = fs.openSync(path.join(dir, 'server.log'), 'a');
  const child: ChildProcess = spawn(
    python,
    ['-m', 'mlflow', 'server', '--host', '127.0.0.1', '--port', String(port), '--workers', '1',
      '--backend-store-uri', `sqlite:///${path.join(dir, 'mlflow.db')}`, '--default-artifact-root', path.join(dir, 'artifacts')],
    { stdio: ['ignore', log, log], detached: true, env: { ...process.env, MLFLOW_HOME: dir } },
  );
  killGroupOnExit(child);
  fs.closeSync(log);
  const uri = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ok = await fetch(`${uri}/health`).then((r) => r.ok).catch(() => false);
    if (ok) return { uri, stop };
    if (child.exitCode !== null || Date.now() > deadline) {
      const text = fs.readFileSync(path.join(dir, 'server.log'), 'utf8').slice(-2000);
      await stop();
      throw new Error(`MLflow server did not start: ${text}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
