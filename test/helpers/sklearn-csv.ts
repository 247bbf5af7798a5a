/**
 * The tabular datasets scikit-learn ships inside its PyPI package (wine, breast_cancer), written as
 * CSV at run time by tools/sklearn_tabular.py with the venv of scripts/setup-python-tools.sh
 * --sklearn (installed on first use). Never committed: each caller writes them into its temp dir.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(__dirname, '../..');

export type SklearnDataset = 'wine' | 'breast_cancer';

/** Writes `<dir>/<name>.csv` for each name; returns their file:// URIs (label column `target`). */
export function writeSklearnCsvs(dir: string, names: readonly SklearnDataset[]): Record<SklearnDataset, string> {
  const python = execFileSync('bash', [path.join(ROOT, 'scripts/setup-python-tools.sh'), '--sklearn'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  execFileSync(python, [path.join(ROOT, 'tools/sklearn_tabular.py'), dir, ...names], { stdio: ['ignore', 'ignore', 'inherit'] });
  return Object.fromEntries(names.map((n) => [n, pathToFileURL(path.join(dir, `${n}.csv`)).href])) as Record<SklearnDataset, string>;
}
