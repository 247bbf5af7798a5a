/**
 * Issue #15, the GPU build from today's TensorFlow: `scripts/setup-native.sh --gpu` builds
 * @tensorflow/tfjs-node-gpu against PyPI's CUDA 12 `tensorflow` wheel. On any machine it must
 * install, load, be what DT_BACKEND=tensorflow-gpu selects, and train the quick-start run; with no
 * NVIDIA device TensorFlow runs it on the CPU and the trainer says "no GPU device". On a machine
 * with one, the same test expects TensorFlow to list the GPU instead. Device placement and speed
 * are beyond what a machine without a GPU can show.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { DescribeResult } from '../src/training/protocol';
import { TrainerClient } from '../src/training/trainer-client';
import type { TrainModelResult } from '../src/workflows';
import { ROOT, startStack, startWorkerProcess, tempDir, uniqueId, type Stack, type WorkerProcess } from './helpers/temporal';

const GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';
const hasNvidia = fs.existsSync('/dev/nvidia0') || fs.existsSync('/proc/driver/nvidia/version');

function runSetup(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(ROOT, 'scripts/setup-native.sh'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('GPU build (tfjs-node-gpu on TensorFlow 2.21, CUDA 12)', { timeout: 900_000 }, () => {
  let stack: Stack;
  const workers: WorkerProcess[] = [];
  const root = tempDir('dt-gpu-build-');

  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    for (const w of workers) await w.kill();
    await stack?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('scripts/setup-native.sh --gpu leaves a verified build linked against the CUDA 12 wheel', async (t) => {
    const started = Date.now();
    // Built already by .ci/run (then this only checks it); builds it (minutes) when it is not.
    const setup = await runSetup(['--gpu']);
    t.diagnostic(`setup-native.sh --gpu: exit ${setup.code} in ${Date.now() - started} ms`);
    assert.equal(setup.code, 0, setup.output);
    assert.match(setup.output, /@tensorflow\/tfjs-node-gpu (already loads|now loads|ready)/);

    const pkgDir = path.resolve(ROOT, fs.readFileSync(path.join(ROOT, '.cache/tfjs-node-gpu-path'), 'utf8').trim());
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { name: string; version: string };
    assert.deepEqual([pkg.name, pkg.version], [GPU_PACKAGE, '4.22.0']);
    // Outside node_modules: npm never sees it, so its downloading install script never runs.
    assert.ok(!fs.realpathSync(pkgDir).startsWith(fs.realpathSync(path.join(ROOT, 'node_modules'))), pkgDir);
    // The cache record names the wheel it was built from: the CUDA build, not tensorflow-cpu.
    const record = fs.readFileSync(path.join(path.dirname(path.dirname(path.dirname(pkgDir))), 'build', '.complete'), 'utf8');
    assert.match(record, /^tensorflow=2\.21\.0$/m);
    assert.match(record, /^wheel=tensorflow-2\.21\.0-.*manylinux.*\.whl$/m);
    // The addon resolves libtensorflow from the GPU build's own deps/lib.
    const addon = path.join(pkgDir, record.match(/^addon=(.+)$/m)![1]!);
    const { stdout: ldd } = await promisify(execFile)('ldd', [addon]);
    assert.doesNotMatch(ldd, /not found/);
    const cc = ldd.match(/libtensorflow_cc\.so\.2 => (\S+)/)?.[1];
    assert.ok(cc && fs.realpathSync(cc).startsWith(fs.realpathSync(path.join(pkgDir, 'deps/lib'))), ldd);
  });

  test('DT_BACKEND=tensorflow-gpu selects it in the trainer, with the "no GPU device" warning when TensorFlow lists no GPU', async (t) => {
    const trainer = new TrainerClient({ log: () => undefined, env: { DT_BACKEND: 'tensorflow-gpu' } });
    let d: DescribeResult;
    try {
      d = await trainer.request<DescribeResult>({ type: 'describe' });
    } finally {
      await trainer.close();
    }
    t.diagnostic(`describe.backend: ${JSON.stringify(d.backend)}`);
    assert.equal(d.backend.name, 'tensorflow');
    assert.equal(d.backend.package, GPU_PACKAGE);
    assert.equal(d.backend.gpu, hasNvidia, 'TensorFlow lists a GPU exactly when the machine has an NVIDIA device');
    const warning = d.backend.notes.find((n) => n.startsWith('no GPU device:'));
    if (hasNvidia) assert.equal(warning, undefined);
    else assert.match(warning ?? '', /no NVIDIA device on this machine|has no NVIDIA device/);
  });

  test('a worker with DT_BACKEND=tensorflow-gpu trains the quick-start run (examples/mnist-mlp.json, 2 epochs)', async (t) => {
    const taskQueue = uniqueId('tq-gpu');
    const worker = startWorkerProcess({
      TEMPORAL_ADDRESS: stack.address,
      DT_TASK_QUEUE: taskQueue,
      DT_CHECKPOINT_URI: pathToFileURL(root).href,
      DT_BACKEND: 'tensorflow-gpu',
    });
    workers.push(worker);
    const input = { ...JSON.parse(fs.readFileSync(path.join(ROOT, 'examples/mnist-mlp.json'), 'utf8')), maxEpochs: 2 };
    const started = Date.now();
    const handle = await stack.client.workflow.start('trainModel', { taskQueue, workflowId: uniqueId('gpu-quick-start'), args: [input] });
    const result = (await handle.result()) as TrainModelResult;
    t.diagnostic(`2 epochs x ${input.stepsPerEpoch} steps in ${Date.now() - started} ms: val_accuracy ${result.finalMetrics?.val_accuracy}, backend ${result.backend}`);
    assert.equal(result.status, 'completed');
    assert.equal(result.epochs, 2);
    assert.equal(result.backend, hasNvidia ? 'tensorflow (gpu)' : 'tensorflow');
    assert.ok((result.finalMetrics?.val_accuracy ?? 0) > 0.85, `val_accuracy ${result.finalMetrics?.val_accuracy}`);
    await worker.stop();
    const output = worker.output();
    assert.match(output, /backend=tensorflow-gpu/);
    if (!hasNvidia) assert.match(output, /WARNING: no GPU device: @tensorflow\/tfjs-node-gpu loaded but TensorFlow lists no GPU/);
  });
});
