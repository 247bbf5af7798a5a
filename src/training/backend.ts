/**
 * Picks the fastest TensorFlow.js backend that is installed: tfjs-node-gpu (on a machine with an
 * NVIDIA device), tfjs-node (native TensorFlow on CPU), wasm, then the pure JS cpu backend. Runs
 * only in the trainer process.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

export type BackendPreference = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** `tensorflow`, `wasm` or `cpu` (tfjs's own name for the backend). */
  readonly name: string;
  /** The npm package that provided it. */
  readonly package: string;
  /** True only when TensorFlow reports that it places ops on a GPU. */
  readonly gpu: boolean;
  /** Why a faster backend was not used, one line per candidate tried, and GPU warnings. */
  readonly notes: readonly string[];
}

/** An explicitly requested backend cannot be used; retrying on the same machine cannot help. */
export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
}

function tryRequire(name: string): { ok: true; module: any } | { ok: false; error: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { ok: true, module: require(name) };
  } catch (err) {
    const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    return { ok: false, error: message };
  }
}

/** Reads the preference from `DT_BACKEND`; an unknown value is an error, not a silent fallback. */
export function backendPreferenceFromEnv(env: NodeJS.ProcessEnv = process.env): BackendPreference {
  const value = env.DT_BACKEND || 'auto';
  if (!(BACKEND_PREFERENCES as readonly string[]).includes(value)) {
    throw new BackendUnavailableError(`Expected \`DT_BACKEND\` to be one of ${BACKEND_PREFERENCES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as BackendPreference;
}

const GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';

/**
 * tfjs-node-gpu from the folder DT_TFJS_NODE_GPU_DIR names, else from node_modules, else the build
 * `scripts/setup-native.sh --gpu` leaves under .cache/ (outside node_modules, so npm never runs its
 * downloading install script), named in .cache/tfjs-node-gpu-path relative to the project root.
 * Returns the package folder too.
 */
function requireGpuPackage(): { ok: true; module: any; dir: string } | { ok: false; error: string } {
  const chosen = process.env.DT_TFJS_NODE_GPU_DIR;
  if (chosen) {
    const loaded = tryRequire(path.resolve(chosen));
    return loaded.ok ? { ...loaded, dir: path.resolve(chosen) } : { ok: false, error: `DT_TFJS_NODE_GPU_DIR=${chosen}: ${loaded.error}` };
  }
  const installed = tryRequire(GPU_PACKAGE);
  if (installed.ok) return { ...installed, dir: GPU_PACKAGE };
  const root = path.resolve(__dirname, '..', '..');
  let dir: string;
  try {
    dir = path.resolve(root, fs.readFileSync(path.join(root, '.cache', 'tfjs-node-gpu-path'), 'utf8').trim());
  } catch {
    return { ok: false, error: `${installed.error}; no build from \`scripts/setup-native.sh --gpu\` in ${path.join(root, '.cache')}` };
  }
  const built = tryRequire(dir);
  return built.ok ? { ...built, dir } : { ok: false, error: `the build in ${dir}: ${built.error}` };
}

const nativeModules = new Map<string, unknown>();

/**
 * The tfjs-node or tfjs-node-gpu module that selectBackend loaded for `pkg` (the GPU build can live
 * outside node_modules, where `require(pkg)` does not find it).
 */
export function nativeModule(pkg: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return nativeModules.get(pkg) ?? require(pkg);
}

/** An NVIDIA device node exists: the machine has a GPU that a GPU build could use. */
function nvidiaDevicePresent(): boolean {
  try {
    return fs.existsSync('/dev/nvidia0') || fs.existsSync('/proc/driver/nvidia/version');
  } catch {
    return false;
  }
}

function warn(notes: string[], message: string): void {
  notes.push(message);
  console.warn(`[durable-train] WARNING: ${message}`);
}

/** `auto` fell back below native TensorFlow: say why, once, where the worker's operator looks, and what fixes it. */
function warnNoNative(notes: string[], fallback: string): void {
  const why = notes.find((n) => n.startsWith('@tensorflow/tfjs-node:')) ?? '@tensorflow/tfjs-node: not tried';
  warn(
    notes,
    `native TensorFlow is not usable (${why.replace(/^@tensorflow\/tfjs-node: /, '')}): training runs on the ${fallback} backend, several times slower. ` +
      'Run `npx durable-train setup-native` where the package is installed (or `bash scripts/setup-native.sh` in the repository) to build it',
  );
}

/**
 * Loads and activates a backend. `auto` tries tensorflow-gpu, tensorflow, wasm, cpu in turn; any
 * other preference is that backend or a BackendUnavailableError naming it (never a silent fallback).
 */
export async function selectBackend(preference: BackendPreference): Promise<BackendInfo> {
  // Let the trainer grow GPU memory as needed instead of taking the whole card at start.
  process.env.TF_FORCE_GPU_ALLOW_GROWTH ??= 'true';
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  const notes: string[] = [];
  const order: BackendPreference[] =
    preference === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [preference];

  const hasNvidia = nvidiaDevicePresent();
  for (const candidate of order) {
    if (candidate === 'tensorflow-gpu' && preference === 'auto' && !hasNvidia) {
      // Its TensorFlow would only run on the CPU, and it and tfjs-node cannot both load.
      notes.push(`${GPU_PACKAGE}: not tried (no NVIDIA device on this machine)`);
      continue;
    }
    if (candidate === 'tensorflow-gpu' || candidate === 'tensorflow') {
      const pkg = candidate === 'tensorflow-gpu' ? GPU_PACKAGE : '@tensorflow/tfjs-node';
      const loaded = candidate === 'tensorflow-gpu' ? requireGpuPackage() : { ...tryRequire(pkg), dir: pkg };
      if (!loaded.ok) {
        notes.push(`${pkg}: not usable (${loaded.error})`);
        continue;
      }
      if (!(await tf.setBackend('tensorflow'))) {
        notes.push(`${pkg}: loaded, but tfjs could not initialise its \`tensorflow\` backend`);
        continue;
      }
      await tf.ready();
      nativeModules.set(pkg, loaded.module);
      fastStepKernel(loaded.dir);
      const gpu = isUsingGpu(loaded.module);
      if (candidate === 'tensorflow-gpu' && !gpu) {
        // TensorFlow's GPU build silently runs on the CPU when it finds no usable GPU: say so loudly.
        warn(
          notes,
          hasNvidia
            ? `no GPU device: ${pkg} loaded but TensorFlow lists no GPU although this machine has an NVIDIA device (check the driver, and the CUDA 12 / cuDNN 9 libraries from \`scripts/setup-native.sh --gpu --cuda\`): training runs on the CPU`
            : `no GPU device: ${pkg} loaded but TensorFlow lists no GPU (this machine has no NVIDIA device): training runs on the CPU`,
        );
      }
      if (candidate === 'tensorflow' && preference === 'auto' && hasNvidia) {
        warn(notes, 'this machine has an NVIDIA GPU but @tensorflow/tfjs-node-gpu is not installed: training runs on the CPU');
      }
      return { name: 'tensorflow', package: pkg, gpu, notes };
    }
    if (candidate === 'wasm') {
      const loaded = tryRequire('@tensorflow/tfjs-backend-wasm');
      if (loaded.ok && (await tf.setBackend('wasm'))) {
        await tf.ready();
        if (preference === 'auto') warnNoNative(notes, 'wasm');
        return { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', gpu: false, notes };
      }
      notes.push(`@tensorflow/tfjs-backend-wasm: not usable${loaded.ok ? '' : ` (${loaded.error})`}`);
      continue;
    }
    if (await tf.setBackend('cpu')) {
      await tf.ready();
      if (preference === 'auto') warnNoNative(notes, 'cpu');
      return { name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', gpu: false, notes };
    }
    notes.push('@tensorflow/tfjs-backend-cpu: tfjs could not initialise it');
  }
  throw new BackendUnavailableError(`Backend \`${preference}\` (DT_BACKEND) is not available: ${notes.join('; ')}`);
}

function isUsingGpu(tfnode: any): boolean {
  try {
    // NodeJSKernelBackend sets this from TensorFlow's own device list at start.
    const backend = tf.backend() as any;
    if (typeof backend?.isUsingGpuDevice === 'boolean') return backend.isUsingGpuDevice;
    if (typeof tfnode?.isUsingGpuDevice === 'function') return Boolean(tfnode.isUsingGpuDevice());
  } catch {
    // fall through
  }
  return false;
}

/**
 * tfjs-node's `Step` kernel (the derivative of relu: every relu layer's backward pass calls it)
 * builds two full-size constant tensors and runs six ops. This one gives the same values, NaN
 * included, with four ops and no constants: 2-3x faster, and a few % of an MLP or CNN step.
 * Any other alpha (leaky steps) still goes to tfjs-node's own kernel.
 */
function fastStepKernel(pkgDir: string): void {
  const original = tf.getKernel('Step', 'tensorflow');
  const nodeBackend = tryRequire(`${pkgDir}/dist/nodejs_kernel_backend`);
  if (!original || !nodeBackend.ok || typeof nodeBackend.module.createTensorsTypeOpAttr !== 'function') return;
  const typeAttr = nodeBackend.module.createTensorsTypeOpAttr as (name: string, dtype: tf.DataType) => unknown;
  tf.unregisterKernel('Step', 'tensorflow');
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.Tensor;
      if (((args.attrs as { alpha?: number } | undefined)?.alpha ?? 0) !== 0 || x.dtype !== 'float32') return original.kernelFunc(args);
      const backend = args.backend as unknown as { executeSingleOutput(op: string, attrs: unknown[], inputs: tf.Tensor[]): tf.Tensor };
      return tf.tidy(() => {
        const nans = backend.executeSingleOutput('IsNan', [typeAttr('T', 'float32')], [x]);
        const positive = tf.cast(tf.greater(x, tf.scalar(0, 'float32')), 'float32');
        return backend.executeSingleOutput('Select', [typeAttr('T', 'float32')], [nans, x, positive]);
      }) as unknown as tf.TensorInfo;
    },
  });
}
