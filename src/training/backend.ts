/**
 * Picks the fastest TensorFlow.js backend that is installed: tfjs-node-gpu, tfjs-node (native
 * TensorFlow on CPU), wasm, then the pure JS cpu backend. Runs only in the trainer process.
 */
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
  /** Why a faster backend was not used, one line per candidate tried. */
  readonly notes: readonly string[];
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
  const value = env.DT_BACKEND ?? 'auto';
  if (!(BACKEND_PREFERENCES as readonly string[]).includes(value)) {
    throw new Error(`Expected \`DT_BACKEND\` to be one of ${BACKEND_PREFERENCES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as BackendPreference;
}

/** Loads and activates a backend. Throws when an explicitly requested backend is unavailable. */
export async function selectBackend(preference: BackendPreference): Promise<BackendInfo> {
  // Let the trainer grow GPU memory as needed instead of taking the whole card at start.
  process.env.TF_FORCE_GPU_ALLOW_GROWTH ??= 'true';
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  const notes: string[] = [];
  const order: BackendPreference[] =
    preference === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [preference];

  for (const candidate of order) {
    if (candidate === 'tensorflow-gpu' || candidate === 'tensorflow') {
      const pkg = candidate === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      const loaded = tryRequire(pkg);
      if (!loaded.ok) {
        notes.push(`${pkg}: not usable (${loaded.error})`);
        continue;
      }
      await tf.setBackend('tensorflow');
      await tf.ready();
      const gpu = isUsingGpu(loaded.module);
      if (candidate === 'tensorflow-gpu' && !gpu) {
        // tfjs-node-gpu silently runs on CPU when CUDA/cuDNN do not match: say so loudly.
        notes.push(`${pkg}: loaded, but TensorFlow placed no op on a GPU (check CUDA 11.2 / cuDNN 8.1 libraries)`);
        console.warn(`[durable-train] WARNING: ${pkg} is installed but is NOT using a GPU; training runs on CPU.`);
      }
      return { name: 'tensorflow', package: pkg, gpu, notes };
    }
    if (candidate === 'wasm') {
      const loaded = tryRequire('@tensorflow/tfjs-backend-wasm');
      if (loaded.ok && (await tf.setBackend('wasm'))) {
        await tf.ready();
        return { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', gpu: false, notes };
      }
      notes.push(`@tensorflow/tfjs-backend-wasm: not usable${loaded.ok ? '' : ` (${loaded.error})`}`);
      continue;
    }
    await tf.setBackend('cpu');
    await tf.ready();
    return { name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', gpu: false, notes };
  }
  throw new Error(`Backend \`${preference}\` is not available: ${notes.join('; ')}`);
}

function isUsingGpu(tfnode: any): boolean {
  try {
    const backend = tf.backend() as any;
    if (typeof backend?.isUsingGpuDevice === 'boolean') return backend.isUsingGpuDevice;
    if (typeof tfnode?.isUsingGpuDevice === 'function') return Boolean(tfnode.isUsingGpuDevice());
  } catch {
    // fall through
  }
  return false;
}
