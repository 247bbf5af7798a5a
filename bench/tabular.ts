/**
 * Tabular accuracy against Keras: durable-train's real trainer process (TrainerClient: the `csv`
 * dataset, its preprocessing, checkpoints, evaluation) trains an MLP on scikit-learn's wine and
 * breast_cancer tables with `normalize` standard and none, and bench/tabular_keras.py trains a
 * Keras MLP of the same shape for the same steps on standardized features. Prints test accuracy,
 * the mean over seeds, per dataset.
 *
 *   npx tsx bench/tabular.ts [--seeds 1,2,3,4,5] [--steps 400]
 *
 * Keras runs on the reference Python (bench/python.ts: $DT_PYTHON, else scripts/setup-bench-python.sh's venv).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { referencePython } from './python';
import { parseTrainConfig } from '../src/config/train-config';
import type { EvaluateResult, TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { writeSklearnCsvs, type SklearnDataset } from '../test/helpers/sklearn-csv';

const arg = (name: string, fallback: string): string => {
  const k = process.argv.indexOf(`--${name}`);
  return k >= 0 ? process.argv[k + 1]! : fallback;
};
export const TABULAR_SETUP = { hidden: [32], learningRate: 0.003, batchSize: 32, steps: Number(arg('steps', '400')) };
const seeds = arg('seeds', '1,2,3,4,5').split(',').map(Number);
const DATASETS: SklearnDataset[] = ['wine', 'breast_cancer'];

/** The trainModel input of one run: the same split (stratified, 20 % test) for train and eval. */
export function tabularInput(uri: string, normalize: string, seed: number, steps = TABULAR_SETUP.steps): Record<string, unknown> {
  const params = { uri, label: 'target', normalize, stratify: true };
  return {
    model: { name: 'mlp', params: { hiddenUnits: TABULAR_SETUP.hidden } },
    data: { train: { name: 'csv', split: 'train', params }, eval: { name: 'csv', split: 'test', params } },
    hyperparameters: { optimizer: 'adam', learningRate: TABULAR_SETUP.learningRate, batchSize: TABULAR_SETUP.batchSize },
    stepsPerEpoch: steps,
    maxEpochs: 1,
    seed,
    checkpoint: { everySteps: 0, everySeconds: 0 },
  };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-tabular-'));
  const trainer = new TrainerClient({ backend: process.env.DT_BACKEND ?? 'auto', log: () => undefined });
  try {
    const csvs = writeSklearnCsvs(dir, DATASETS);
    const reference = referencePython();
    if ('reason' in reference) throw new Error(reference.reason);
    const { python } = reference;
    const rows: string[] = [];
    let run = 0;
    for (const name of DATASETS) {
      const ours: Record<string, number[]> = {};
      for (const normalize of ['standard', 'none']) {
        ours[normalize] = [];
        for (const seed of seeds) {
          const config = parseTrainConfig(tabularInput(csvs[name], normalize, seed));
          const runUri = pathToFileURL(path.join(dir, `run-${run++}`)).href;
          const steps = TABULAR_SETUP.steps;
          await trainer.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep: steps, learningRate: TABULAR_SETUP.learningRate } });
          const r = await trainer.request<EvaluateResult>({ type: 'evaluate', request: { runUri, config, step: steps } });
          ours[normalize]!.push(r.metrics.val_accuracy!);
        }
      }
      const keras = JSON.parse(
        execFileSync(
          python,
          [path.join(__dirname, 'tabular_keras.py'), '--csv', fileURLToPath(csvs[name]), '--label', 'target', '--hidden', TABULAR_SETUP.hidden.join(','),
            '--lr', String(TABULAR_SETUP.learningRate), '--batch', String(TABULAR_SETUP.batchSize), '--steps', String(TABULAR_SETUP.steps), '--seeds', seeds.join(','), '--stratify'],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
        ).trim().split('\n').pop()!,
      ) as { mean: number; accuracies: number[]; test: number; tensorflow: string; keras: string };
      const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
      const pct = (v: number): string => `${(100 * v).toFixed(1)} %`;
      rows.push(`| ${name} (${keras.test} test rows) | ${pct(mean(ours.standard!))} | ${pct(mean(ours.none!))} | ${pct(keras.mean)} | ${(100 * (mean(ours.standard!) - keras.mean)).toFixed(1)} |`);
      console.error(`${name}: standard ${ours.standard!.join(' ')}; none ${ours.none!.join(' ')}; keras ${keras.accuracies.join(' ')} (TF ${keras.tensorflow}, Keras ${keras.keras})`);
    }
    console.log(`MLP ${TABULAR_SETUP.hidden.join('-')}, Adam ${TABULAR_SETUP.learningRate}, batch ${TABULAR_SETUP.batchSize}, ${TABULAR_SETUP.steps} steps, stratified 80/20 split; mean test accuracy over seeds ${seeds.join(', ')}\n`);
    console.log('| dataset | durable-train standard | durable-train none | Keras (standardized) | points vs Keras |');
    console.log('|---|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    await trainer.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
