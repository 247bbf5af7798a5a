/** The Python tools the tests read runs with (TensorBoard's reader, MLflow), from scripts/setup-python-tools.sh. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

/** The venv's python with TensorBoard (and MLflow when asked) installed; installs on first use. */
export function pythonTools(options: { mlflow?: boolean } = {}): string {
  const args = [path.join(ROOT, 'scripts/setup-python-tools.sh'), ...(options.mlflow ? ['--mlflow'] : [])];
  return execFileSync('bash', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export type TensorBoardScalars = Record<string, Record<string, Array<[number, number, number]>>> & { _files: number; _records: number };

/** Every scalar under `logdir`, read by TensorBoard's own EventMultiplexer (CRCs verified first). */
export function readTensorBoard(logdir: string): TensorBoardScalars {
  const out = execFileSync(pythonTools(), [path.join(ROOT, 'tools/read_tensorboard.py'), logdir], { encoding: 'utf8' });
  return JSON.parse(out) as TensorBoardScalars;
}
