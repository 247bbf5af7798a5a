/**
 * The Python the benchmarks compare against (TensorFlow with Keras 3): $DT_PYTHON, else the venv
 * scripts/setup-bench-python.sh installs (.cache/py-bench, what `npm run bench` sets up), else the
 * older .cache/pyref-venv, else python3. One place, so every Keras column uses the same one.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

export type ReferencePython = { readonly python: string; readonly tensorflow: string; readonly keras: string } | { readonly reason: string };

let found: ReferencePython | undefined;

export function referencePython(): ReferencePython {
  if (found) return found;
  const candidates = [
    process.env.DT_PYTHON,
    path.join(ROOT, '.cache/py-bench/bin/python'),
    path.join(ROOT, '.cache/pyref-venv/bin/python'),
    'python3',
  ].filter((c): c is string => !!c);
  const tried: string[] = [];
  for (const python of candidates) {
    try {
      const out = execFileSync(python, ['-c', 'import tensorflow as tf, keras; print(tf.__version__, keras.__version__)'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', KERAS_BACKEND: 'tensorflow' },
        timeout: 120_000,
      }).trim();
      const [tensorflow = '', keras = ''] = out.split(/\s+/);
      const [major = 0, minor = 0] = tensorflow.split('.').map(Number);
      if ((major > 2 || (major === 2 && minor >= 16)) && keras.startsWith('3.')) return (found = { python, tensorflow, keras });
      tried.push(`${python}: TensorFlow ${tensorflow}, Keras ${keras} (need TensorFlow >= 2.16 with Keras 3)`);
    } catch (err) {
      const e = err as { code?: string; stderr?: string };
      tried.push(`${python}: ${e.code === 'ENOENT' ? 'not found' : ((e.stderr ?? String(err)).trim().split('\n').pop() ?? 'failed')}`);
    }
  }
  return (found = { reason: `no Python with TensorFlow and Keras 3 (tried ${tried.join('; ')}); run scripts/setup-bench-python.sh or set DT_PYTHON` });
}
