/**
 * `durable-train setup-native [--gpu]`: makes the native TensorFlow backend usable for an installed
 * package, as scripts/setup-native.sh does for the repository. tfjs-node's own install script
 * downloads libtensorflow from a Google host; where that fails, npm drops the package or leaves it
 * without its binding, and the worker would fall back to wasm. This installs tfjs-node without its
 * script where it is missing, then builds the binding from TensorFlow's PyPI wheel (the shipped
 * script), into the project that holds the package.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EXIT } from './args';
import type { Io } from './context';

export const SETUP_NATIVE = 'setup-native';

export const SETUP_NATIVE_USAGE = `Usage: durable-train setup-native [--gpu]

Builds the native TensorFlow backend (@tensorflow/tfjs-node; with --gpu, @tensorflow/tfjs-node-gpu)
for the project this package is installed in, from TensorFlow's wheel on PyPI (needs python3 with
pip, a C++ compiler and make). Builds are kept in <package>/.cache (DT_NATIVE_CACHE to change).
Exit 0 when the backend loads afterwards.`;

/** The package's own folder (dist/cli/ or src/cli/ → two up) and the project whose node_modules holds it. */
export function installRoots(packageRoot: string = path.resolve(__dirname, '..', '..')): { packageRoot: string; projectRoot: string } {
  const parent = path.dirname(packageRoot);
  const inNodeModules = path.basename(parent) === 'node_modules' || path.basename(path.dirname(parent)) === 'node_modules';
  if (!inNodeModules) return { packageRoot, projectRoot: packageRoot };
  // node_modules/durable-train, or node_modules/@scope/durable-train
  const nodeModules = path.basename(parent) === 'node_modules' ? parent : path.dirname(parent);
  return { packageRoot, projectRoot: path.dirname(nodeModules) };
}

function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => io.out(d.toString().replace(/\n$/, '')));
    child.stderr.on('data', (d: Buffer) => io.err(d.toString().replace(/\n$/, '')));
    child.on('error', (err) => {
      io.err(`${command}: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

export async function setupNativeCommand(argv: readonly string[], io: Io, packageRoot?: string): Promise<number> {
  let gpu: boolean;
  try {
    const { values } = parseArgs({ args: [...argv], options: { gpu: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true, allowPositionals: false });
    if (values.help) {
      io.out(SETUP_NATIVE_USAGE);
      return EXIT.ok;
    }
    gpu = values.gpu === true;
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${SETUP_NATIVE_USAGE}`);
    return EXIT.usage;
  }
  const roots = installRoots(packageRoot);
  const script = path.join(roots.packageRoot, 'scripts', 'setup-native.sh');
  if (!fs.existsSync(script)) {
    io.err(`${script} is missing: reinstall durable-train`);
    return EXIT.runFailed;
  }
  const env = { ...process.env, DT_NATIVE_ROOT: roots.projectRoot, DT_NATIVE_CACHE: process.env.DT_NATIVE_CACHE ?? path.join(roots.packageRoot, '.cache') };
  if (!gpu && !fs.existsSync(path.join(roots.projectRoot, 'node_modules/@tensorflow/tfjs-node/package.json'))) {
    const pkg = JSON.parse(fs.readFileSync(path.join(roots.packageRoot, 'package.json'), 'utf8')) as { optionalDependencies?: Record<string, string> };
    const version = pkg.optionalDependencies?.['@tensorflow/tfjs-node'] ?? 'latest';
    io.out(`[setup-native] @tensorflow/tfjs-node is not installed in ${roots.projectRoot}: installing ${version} without its download script`);
    const code = await run('npm', ['install', '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', `@tensorflow/tfjs-node@${version}`], roots.projectRoot, process.env, io);
    if (code !== 0) {
      io.err(`[setup-native] npm install @tensorflow/tfjs-node@${version} failed (exit ${code})`);
      return EXIT.runFailed;
    }
  }
  const code = await run('bash', [script, ...(gpu ? ['--gpu'] : [])], roots.projectRoot, env, io);
  return code === 0 ? EXIT.ok : EXIT.runFailed;
}
