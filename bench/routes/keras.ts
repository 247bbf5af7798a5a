/**
 * (3) Keras on TensorFlow (Python), same model, data, Adam and batch size: bench/keras_bench.py,
 * timed with train_on_batch, on the reference Python (bench/python.ts); says why when there is none.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { builtInDatasets } from '../../src/training/dataset-registry';
import { referencePython } from '../python';
import type { BenchRoute } from '../route';

const run = promisify(execFile);
let python: string | undefined;
let dataDir: string | undefined;

function findPython(): string | true {
  const found = referencePython();
  if ('reason' in found) return found.reason;
  python = found.python;
  return true;
}

async function writeData(): Promise<string> {
  const train = await builtInDatasets().load({ name: 'mnist', split: 'train' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-keras-'));
  fs.writeFileSync(path.join(dir, 'x.bin'), train.x);
  fs.writeFileSync(path.join(dir, 'y.bin'), train.y);
  return dir;
}

const route: BenchRoute = {
  name: 'Keras (Python TF)',
  available: async () => findPython(),
  async measure({ model, batchSize, steps }) {
    if (!python) throw new Error('no Python with TensorFlow: call available() first');
    dataDir ??= await writeData();
    const args = [path.join(__dirname, '..', 'keras_bench.py'), '--model', model, '--batch', String(batchSize), '--steps', String(steps), '--data', dataDir];
    const { stdout } = await run(python, args, { timeout: 30 * 60_000, maxBuffer: 1 << 24 });
    const line = stdout.trim().split('\n').pop() ?? '';
    const r = JSON.parse(line) as { msPerStep: number; tensorflow: string; keras: string; jitCompile: boolean };
    return {
      msPerStep: r.msPerStep,
      note: `TensorFlow ${r.tensorflow}, Keras ${r.keras} (${python}), train_on_batch, jit_compile=${r.jitCompile}`,
    };
  },
  async close() {
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  },
};
export default route;
