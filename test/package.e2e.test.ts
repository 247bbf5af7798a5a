/**
 * The package as a user gets it: `npm pack` (its prepack runs `npm run build`), the tarball
 * installed with `npm install` into a fresh folder outside the repository, a worker written there
 * against the package's public entry (`import { DurableTrainPlugin } from 'durable-train'`) and
 * type-checked against its declarations, a tiny run trained through it on a real dev server, and
 * `durable-train --help` from the installed bin.
 *
 * tfjs-node's install script downloads libtensorflow from a Google host this machine cannot reach,
 * so the install uses --ignore-scripts; `auto` then falls back to wasm with a warning naming the fix, and
 * the package's own `durable-train setup-native` puts the native build in place (its warm path: the build
 * that scripts/setup.sh cached in the repository's .cache/, DT_NATIVE_CACHE); the worker asks for the
 * `tensorflow` backend explicitly, so a missing native backend fails instead of falling back.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { ROOT, startStack, uniqueId, type Stack } from './helpers/temporal';
import { tinyInput } from './e2e-support';

const NATIVE_CACHE = path.join(ROOT, '.cache/tfjs-node-4.22.0-tf2.21.0');

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command as a user's shell would: without the npm_* variables of an enclosing `npm test`. */
function sh(command: string, args: readonly string[], cwd: string, env: Record<string, string> = {}): Promise<Ran> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function ok(r: Ran, what: string): Ran {
  assert.equal(r.code, 0, `${what} exited ${r.code}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return r;
}

// A user's worker: plain ESM against the package, checked with // @ts-check against its .d.ts.
const WORKER = `// @ts-check
import { NativeConnection, Worker } from '@temporalio/worker';
import { DurableTrainPlugin, workflowsPath } from 'durable-train';

const plugin = new DurableTrainPlugin({
  checkpointRoot: process.env.CHECKPOINT_ROOT,
  // Relative to the worker's working directory, and TypeScript: the trainer loads it through tsx.
  trainer: { backend: 'tensorflow', trainerModule: './my-registry.ts' },
});
const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS });
const worker = await Worker.create({
  connection,
  taskQueue: process.env.TASK_QUEUE ?? 'durable-train',
  plugins: [plugin],
});
console.log(\`ready \${workflowsPath}\`);
try {
  await worker.run(); // until SIGTERM
} finally {
  await plugin.close();
  await connection.close();
}
`;

// The user's own dataset, in TypeScript (README "In your own worker"): 4 features, 2 classes, the class of
// an example is whether its features sum above 0 (learnable, so the run's accuracy says the data arrived).
const REGISTRY = `import type { Dataset } from 'durable-train';
interface Spec { readonly split?: string; readonly params?: { readonly size?: number } }
export function register({ datasets }: { datasets: { register(name: string, factory: (spec: Spec) => Dataset): void } }): void {
  datasets.register('mine', (spec: Spec): Dataset => {
    const size = spec.params?.size ?? 256;
    const x = new Float32Array(size * 4);
    const y = new Float32Array(size * 2);
    let state = spec.split === 'test' ? 7 : 3;
    for (let i = 0; i < size; i++) {
      let sum = 0;
      for (let j = 0; j < 4; j++) {
        state = (state * 1103515245 + 12345) % 2147483648;
        const v = state / 1073741824 - 1;
        x[i * 4 + j] = v;
        sum += v;
      }
      y[i * 2 + (sum > 0 ? 1 : 0)] = 1;
    }
    return { x, y, xShape: [4], yShape: [2], size };
  });
}
`;

// A client of the same user: the workflow by name and its result type, from the package's types.
const TYPES = `import type { TrainInput, TrainModelResult, DurableTrainPluginOptions } from 'durable-train';
import { WORKFLOW_TYPES, progressQuery, trainModel } from 'durable-train';
import { trainModel as fromWorkflows } from 'durable-train/workflows';
const input: TrainInput = { model: { name: 'mlp' }, data: { train: { name: 'synthetic' } }, maxEpochs: 1 };
const options: DurableTrainPluginOptions = { checkpointRoot: 'file:///tmp/runs' };
export const checks: [string, typeof trainModel, TrainInput, DurableTrainPluginOptions, string] = [WORKFLOW_TYPES.train, fromWorkflows, input, options, progressQuery.name];
export type Result = Promise<TrainModelResult> extends ReturnType<typeof trainModel> ? true : never;
`;

describe('the packed tarball, installed outside the repository', () => {
  let starting: Promise<Stack> | undefined;
  let dir: string;
  let app: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-package-'));
    app = path.join(dir, 'app');
    // The dev server starts while the package is packed and installed.
    starting = startStack();
    starting.catch(() => undefined);
  });
  after(async () => {
    await (await starting?.catch(() => undefined))?.close();
    if (dir) await fs.promises.rm(dir, { recursive: true, force: true });
  });

  test('npm pack, npm install <tarball>, a worker with the plugin trains a run; durable-train --help exits 0', { timeout: 600_000 }, async () => {
    const t0 = Date.now();
    const packed = ok(await sh('npm', ['pack', '--json', '--pack-destination', dir], ROOT), 'npm pack');
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; size: number; entryCount: number; files: Array<{ path: string }> }>;
    assert.ok(info, 'npm pack --json names the tarball');
    const files = info.files.map((f) => f.path);
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/workflows/index.js', 'dist/training/trainer-process.js', 'dist/cli/main.js', 'bin/durable-train.js', 'README.md']) {
      assert.ok(files.includes(f), `the tarball holds ${f}`);
    }
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/')), 'no TypeScript sources or tests in the tarball');
    const tPacked = Date.now();

    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'dt-user-app', private: true, type: 'module' }));
    ok(await sh('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, info.filename)], app), 'npm install <tarball>');
    const tInstalled = Date.now();
    const installed = path.join(app, 'node_modules/durable-train');
    assert.ok(fs.existsSync(path.join(installed, 'dist/index.js')) && !fs.existsSync(path.join(installed, 'src')));

    // Without a native build, `auto` falls back to wasm and says so, naming the fix.
    const backendJs = path.join(installed, 'dist/training/backend.js');
    const fallback = ok(await sh(process.execPath, ['-e', `require(${JSON.stringify(backendJs)}).selectBackend('auto').then((b) => console.log('backend=' + b.name))`], app), 'selectBackend before setup-native');
    assert.match(fallback.stdout, /backend=wasm/);
    assert.match(fallback.stderr, /WARNING: native TensorFlow is not usable \(.+\): training runs on the wasm backend.*npx durable-train setup-native/);

    // `durable-train setup-native`, shipped in the package: here its warm path, the native build that
    // scripts/setup.sh cached in the repository's .cache (DT_NATIVE_CACHE), into the installed tfjs-node.
    assert.ok(fs.existsSync(path.join(NATIVE_CACHE, '.complete')), `${NATIVE_CACHE} exists (run bash scripts/setup.sh first)`);
    const native = ok(await sh(path.join(app, 'node_modules/.bin/durable-train'), ['setup-native'], app, { DT_NATIVE_CACHE: path.join(ROOT, '.cache') }), 'durable-train setup-native');
    assert.match(native.stdout, /\[setup-native\]/);
    const after = ok(await sh(process.execPath, ['-e', `require(${JSON.stringify(backendJs)}).selectBackend('auto').then((b) => console.log('backend=' + b.name))`], app), 'selectBackend after setup-native');
    assert.match(after.stdout, /backend=tensorflow/);
    assert.doesNotMatch(after.stderr, /WARNING: native TensorFlow/);

    const help = await sh(path.join(app, 'node_modules/.bin/durable-train'), ['--help'], app);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: durable-train <command>/);

    fs.writeFileSync(path.join(app, 'worker.mjs'), WORKER);
    fs.writeFileSync(path.join(app, 'client-types.ts'), TYPES);
    fs.writeFileSync(path.join(app, 'my-registry.ts'), REGISTRY);
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    const typecheck = await sh(process.execPath, [tsc, '--noEmit', '--strict', '--allowJs', '--checkJs', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', 'worker.mjs', 'client-types.ts', 'my-registry.ts'], app);
    assert.equal(typecheck.code, 0, `the user's files type-check against the package's declarations:\n${typecheck.stdout}${typecheck.stderr}`);
    const tChecked = Date.now();

    const stack = await starting!;
    const taskQueue = uniqueId('pkg');
    const runs = path.join(app, 'runs');
    const worker = spawn(process.execPath, ['worker.mjs'], {
      cwd: app,
      env: { ...process.env, TEMPORAL_ADDRESS: stack.address, TASK_QUEUE: taskQueue, CHECKPOINT_ROOT: pathToFileURL(runs).href },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    worker.stdout.on('data', (d) => (output += d));
    worker.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    try {
      const ready = await Promise.race([
        new Promise<string>((resolve) => worker.stdout.on('data', () => {
          const m = /ready (\S+)/.exec(output);
          if (m) resolve(m[1]!);
        })),
        exited.then((code) => assert.fail(`the worker exited (${code}) before it was ready:\n${output}`)),
      ]);
      assert.equal(ready, path.join(fs.realpathSync(installed), 'dist/workflows/index.js'), 'the plugin bundles the installed, built workflows');

      const result = await stack.client.workflow.execute('trainModel', {
        taskQueue,
        workflowId: uniqueId('pkg-run'),
        args: [tinyInput({ maxEpochs: 2, stepsPerEpoch: 3, data: { train: { name: 'mine' }, eval: { name: 'mine', split: 'test', params: { size: 64 } } } })],
        workflowExecutionTimeout: '5 minutes',
      });
      assert.equal(result.status, 'completed');
      assert.equal(result.epochs, 2);
      assert.equal(result.backend, 'tensorflow', 'the native backend, as linked in above');
      assert.ok(result.modelUri.startsWith(pathToFileURL(runs).href), result.modelUri);
      assert.ok(fs.existsSync(fileURLToPath(result.modelUri)), 'the exported model is in the app folder');
    } finally {
      worker.kill('SIGTERM');
      const code = await exited;
      assert.equal(code, 0, `the worker shuts down cleanly on SIGTERM:\n${output}`);
    }
    const tDone = Date.now();
    const s = (a: number, b: number) => `${((b - a) / 1000).toFixed(1)} s`;
    console.log(
      `[package] tarball ${info.filename}: ${(info.size / 1024).toFixed(0)} KiB, ${info.entryCount} files; ` +
        `pack+build ${s(t0, tPacked)}, install ${s(tPacked, tInstalled)}, typecheck ${s(tInstalled, tChecked)}, train ${s(tChecked, tDone)}, total ${s(t0, tDone)}`,
    );
  });
});
