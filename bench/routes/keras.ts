/**
 * (3) Keras on TensorFlow (Python), same model, data, Adam and batch size: bench/keras_bench.py,
 * timed with train_on_batch. Uses the first Python that can `import tensorflow`: $DT_PYTHON,
 * python3, then the project's reference venv (.cache/pyref-venv); says which were tried when none.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { builtInDatasets } from '../../src/training/datasets';
import type { BenchRoute } from '../route';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
let python: string | undefined;
let dataDir: string | undefined;

async function findPython(): Promise<string | true> {
  const candidates = [process.env.DT_PYTHON, 'python3', path.join(ROOT, '.cache/pyref-venv/bin/python')].filter((c): c is string => !!c);
  const tried: string[] = [];
  for (const c of candidates) {
    try {
      await run(c, ['-c', 'import os; os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"; import tensorflow as tf, keras; print(tf.__version__, keras.__version__)'], { timeout: 120_000 });
      python = c;
      return true;
    } catch (err) {
      const e = err as { code?: string; stderr?: string };
      const last = e.code === 'ENOENT' ? 'not found' : (e.stderr ?? String(err)).trim().split('\n').pop();
      tried.push(`${c}: ${last}`);
    }
  }
  return `no Python with TensorFlow and Keras found (tried ${tried.join('; ')}); set DT_PYTHON to one`;
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
  available: findPython,
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
