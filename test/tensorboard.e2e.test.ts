import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { epochEventFiles, type EpochScalars } from '../src/observability/tensorboard';
import { readTensorBoard } from './helpers/python-tools';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-tb-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const f32 = (v: number): number => Math.fround(v);

function write(epochs: EpochScalars[], into: string): void {
  for (const e of epochs) {
    for (const f of epochEventFiles(e)) {
      fs.mkdirSync(path.dirname(path.join(into, f.key)), { recursive: true });
      fs.writeFileSync(path.join(into, f.key), f.data);
    }
  }
}

const epochs: EpochScalars[] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map((epoch) => ({
  epoch,
  wallTime: 1_800_000_000 + epoch * 1.5,
  learningRate: epoch < 6 ? 1e-3 : 1e-4,
  metrics: { loss: 1 / epoch, val_loss: 1.2 / epoch, val_accuracy: 0.5 + epoch / 40, ...(epoch === 2 && { val_nan: Number.NaN }) },
  trainSeconds: 0.25 * epoch,
}));

test("TensorBoard's own reader reads every epoch's scalars, Keras-style train/validation runs, epoch as step", () => {
  write(epochs, dir);
  const tb = readTensorBoard(path.join(dir, 'tensorboard'));
  assert.equal(tb._files, 22);
  assert.deepEqual(Object.keys(tb).filter((k) => !k.startsWith('_')).sort(), ['train', 'validation']);
  const series = (run: string, tag: string) => tb[run]![tag]!.map(([step, value]) => [step, value]);
  assert.deepEqual(series('train', 'epoch_loss'), epochs.map((e) => [e.epoch, f32(e.metrics.loss!)]));
  assert.deepEqual(series('train', 'epoch_learning_rate'), epochs.map((e) => [e.epoch, f32(e.learningRate)]));
  assert.deepEqual(series('train', 'epoch_seconds'), epochs.map((e) => [e.epoch, f32(e.trainSeconds!)]));
  assert.deepEqual(series('validation', 'epoch_loss'), epochs.map((e) => [e.epoch, f32(e.metrics.val_loss!)]));
  assert.deepEqual(series('validation', 'epoch_accuracy'), epochs.map((e) => [e.epoch, f32(e.metrics.val_accuracy!)]));
  assert.equal(tb.validation!.epoch_nan, undefined, 'a non-finite value is not written');
  assert.deepEqual(tb.train!.epoch_loss!.map((p) => p[2]), epochs.map((e) => e.wallTime));
});

test('the same epoch always gives the same bytes, so a retried write is a no-op, not a second point', () => {
  const a = epochEventFiles(epochs[3]!);
  const b = epochEventFiles({ ...epochs[3]! });
  assert.deepEqual(a, b);
  assert.notDeepEqual(epochEventFiles({ ...epochs[3]!, wallTime: epochs[3]!.wallTime + 1 })[0]!.data, a[0]!.data);
});
