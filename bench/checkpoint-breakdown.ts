/**
 * Where an epoch's time beyond its steps goes: the real trainer process (TrainerClient, no
 * Temporal) trains the bench models one epoch per `train` request, as trainModel asks for them,
 * each ending with its checkpoint on file://, and prints the per-part checkpoint timing every
 * request returns (`checkpointTiming`, src/checkpoints/timing.ts) beside the request's time.
 *
 *   npx tsx bench/checkpoint-breakdown.ts [--epochs 4] [--steps 600] [--batch 128] [--routes eager,graph] [--every 0] [--baseline <tree>]
 *
 * `--baseline <tree>`: a checkout of an older commit (with a node_modules link) whose trainer runs
 * the same requests in the same run, after this tree's (it must return checkpointTiming).
 * `--every N` adds a mid-epoch checkpoint every N steps (written in the background). The graph
 * route uses the bench's exported MLP (bench/routes/savedmodel.ts, needs Python with TensorFlow)
 * and falls back to the CNN fixture SavedModel of the tests when it cannot export.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseTrainConfig } from '../src/config/train-config';
import type { CheckpointTiming } from '../src/checkpoints/timing';
import type { TrainUntilStepResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import { benchInput, LEARNING_RATE } from './models';
import { exported } from './routes/savedmodel';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const EPOCHS = Number(arg('epochs', '4'));
const STEPS = Number(arg('steps', '600'));
const BATCH = Number(arg('batch', '128'));
const EVERY = Number(arg('every', '0'));
const ROUTES = arg('routes', 'eager,graph').split(',');
const BASELINE = arg('baseline', '');
const FIXTURE = path.resolve(__dirname, '../test/fixtures/savedmodel/mnist-cnn');

function graphModel(): { label: string; spec: { kind: 'savedmodel'; uri: string } } {
  try {
    return { label: 'graph MLP 784-256-256-10', spec: { kind: 'savedmodel', uri: pathToFileURL(exported('mlp')).href } };
  } catch (err) {
    console.error(`(no bench SavedModel: ${(err as Error).message.split('\n')[0]}; using the CNN fixture)`);
    return { label: 'graph CNN fixture', spec: { kind: 'savedmodel', uri: pathToFileURL(FIXTURE).href } };
  }
}

const PARTS = ['snapshotMs', 'hashMs', 'writeMs', 'fsyncMs', 'pointerMs', 'blockedMs'] as const;

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-ckpt-'));
  const models = ROUTES.map((name) => ({ name, ...(name === 'graph' ? graphModel() : { label: 'eager MLP 784-256-256-10', spec: undefined }) }));
  const allowed = [pathToFileURL(root).href, ...models.flatMap((m) => (m.spec ? [m.spec.uri] : []))];
  const options = { backend: process.env.DT_BACKEND ?? 'auto', log: () => undefined, env: { DT_ALLOWED_URIS: allowed.join(',') } };
  const trees: Array<{ tree: string; trainer: TrainerClient }> = [{ tree: 'this tree', trainer: new TrainerClient(options) }];
  if (BASELINE) {
    const baseline = (await import(path.resolve(BASELINE, 'src/training/trainer-client.ts'))) as { TrainerClient: typeof TrainerClient };
    trees.push({ tree: `baseline ${path.basename(path.resolve(BASELINE))}`, trainer: new baseline.TrainerClient(options) });
  }
  const rows: string[] = [];
  try {
    for (const [{ name: routeName, label: model, spec }, { tree, trainer }] of models.flatMap((m) => trees.map((t) => [m, t] as const))) {
      const label = BASELINE ? `${model}, ${tree}` : model;
      const input = benchInput('mlp', BATCH, STEPS, EPOCHS, { checkpoint: { everySteps: EVERY, everySeconds: 0 } });
      const config = parseTrainConfig(spec ? { ...input, model: spec } : input);
      const runUri = pathToFileURL(path.join(root, `${routeName}-${trees.findIndex((t) => t.tree === tree)}`)).href;
      const holder = { workflowId: 'bench', workflowRunId: routeName, activityId: '1', attempt: 1 };
      const sums: number[] = [];
      let seconds = 0;
      let bytes = 0;
      // Epoch 1 loads the model and warms tfjs up: reported, not summed.
      for (let epoch = 1; epoch <= EPOCHS; epoch++) {
        const r = await trainer.request<TrainUntilStepResult>({
          type: 'train',
          request: { runUri, config, targetStep: epoch * STEPS, learningRate: LEARNING_RATE, holder: { ...holder, activityId: String(epoch) } },
        });
        const t: CheckpointTiming | undefined = r.checkpointTiming;
        const loop = r.loopTiming;
        if (!t) throw new Error('the trainer returned no checkpointTiming');
        const ms = r.seconds * 1000;
        // A baseline from before loopTiming: NaN cells.
        const cells = [loop?.setupMs ?? NaN, loop?.stepsMs ?? NaN, ms - (loop?.stepsMs ?? NaN), ...PARTS.map((p) => t[p])];
        rows.push(`| ${label} | ${epoch} | ${ms.toFixed(0)} | ${cells.map((c) => c.toFixed(1)).join(' | ')} | ${t.checkpoints} | ${(t.bytes / 1e6).toFixed(2)} |`);
        if (epoch === 1) continue;
        seconds += r.seconds;
        bytes = t.bytes;
        cells.forEach((c, i) => (sums[i] = (sums[i] ?? 0) + c));
      }
      const n = EPOCHS - 1;
      if (n > 0) rows.push(`| **${label}** | mean 2–${EPOCHS} | ${((seconds * 1000) / n).toFixed(0)} | ${Object.values(sums).map((c) => (c / n).toFixed(1)).join(' | ')} | | ${(bytes / 1e6).toFixed(2)} |`);
    }
  } finally {
    for (const { trainer } of trees) await trainer.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
  console.log(`${EPOCHS} requests of ${STEPS} steps at batch ${BATCH}, a checkpoint at each end${EVERY ? ` and every ${EVERY} steps` : ''}; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('');
  console.log(`| model | epoch | request ms | setup | steps | beyond steps | ${PARTS.map((p) => p.replace('Ms', '')).join(' | ')} | ckpts | MB |`);
  console.log(`|---|---|---:|---:|---:|---:|${PARTS.map(() => '---:').join('|')}|---:|---:|`);
  for (const row of rows) console.log(row);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
