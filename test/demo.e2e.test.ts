/**
 * `npm run demo`'s script as a new user runs it (its own dev server and worker), on a short run whose
 * epochs end faster than the script polls: every epoch is printed exactly once, in order, and the
 * lines agree with the run's stored records.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, tempDir } from './helpers/temporal';

test('the demo prints every epoch exactly once, in order', { timeout: 240_000 }, async () => {
  const dir = tempDir('dt-demo-');
  const maxEpochs = 7;
  const config = path.join(dir, 'tiny.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      model: { name: 'mlp', params: { hiddenUnits: [8] } },
      data: { train: { name: 'mnist', split: 'train', limit: 512 }, eval: { name: 'mnist', split: 'test', limit: 128 } },
      hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 32 },
      stepsPerEpoch: 4,
      maxEpochs,
      seed: 5,
      checkpoint: { uri: `file://${dir}/runs`, keepLast: 2 },
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, `demo exited ${code}\n${stdout}\n${stderr}`);
  const epochs = stdout
    .split('\n')
    .map((line) => /^\s+(\d+)\s+(\d+)\s+\d/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ epoch: Number(m[1]), step: Number(m[2]) }));
  assert.deepEqual(
    epochs.map((e) => e.epoch),
    Array.from({ length: maxEpochs }, (_, i) => i + 1),
    `epochs printed:\n${stdout}`,
  );
  assert.deepEqual(
    epochs.map((e) => e.step),
    epochs.map((e) => e.epoch * 4),
  );
  assert.match(stdout, new RegExp(`completed after ${maxEpochs} epochs`, "i"));
});
