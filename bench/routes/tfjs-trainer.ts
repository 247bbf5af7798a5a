/**
 * The engine alone: the real trainer process (TrainerClient) trains `steps` steps in one request,
 * with no Temporal and one checkpoint at the end, after an untimed warm-up request of the same run
 * (so the model is built, the data loaded and tfjs warm). Sits between the bare loop and trainModel.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseTrainConfig } from '../../src/config/train-config';
import type { DescribeResult, TrainUntilStepResult } from '../../src/training/protocol';
import { TrainerClient } from '../../src/training/trainer-client';
import { benchInput, LEARNING_RATE } from '../models';
import type { BenchRoute } from '../route';

const WARMUP_STEPS = 10;
let trainer: TrainerClient | undefined;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-trainer-'));
let runs = 0;

const route: BenchRoute = {
  name: 'engine: trainer process, no Temporal',
  async available() {
    return true;
  },
  async measure({ model, batchSize, steps }) {
    if (!trainer) {
      trainer = new TrainerClient({ backend: process.env.DT_BACKEND ?? 'auto', log: () => undefined });
      // The trainer's store opener refuses every URI outside its allow-list, as on a worker.
      trainer.allowUris([pathToFileURL(root).href]);
    }
    const d = await trainer.request<DescribeResult>({ type: 'describe' });
    const total = WARMUP_STEPS + steps;
    const config = parseTrainConfig(benchInput(model, batchSize, total, 1, { checkpoint: { everySteps: 0, everySeconds: 0 } }));
    const runUri = pathToFileURL(path.join(root, `run-${runs++}`)).href;
    const train = (targetStep: number) =>
      trainer!.request<TrainUntilStepResult>({ type: 'train', request: { runUri, config, targetStep, learningRate: LEARNING_RATE } });
    await train(WARMUP_STEPS);
    const r = await train(total);
    if (r.resumedFromStep !== WARMUP_STEPS || r.stepsRun !== steps) throw new Error(`unexpected resume: ${JSON.stringify(r)}`);
    return { msPerStep: (r.seconds * 1000) / steps, note: `backend ${d.backend.name} (${d.backend.package}); includes one checkpoint at the end` };
  },
  async close() {
    await trainer?.close();
    fs.rmSync(root, { recursive: true, force: true });
  },
};
export default route;
