/**
 * The user's trainer module (`trainerModule`, `DT_TRAINER_MODULE`): resolved once, in the worker,
 * against the worker's working directory (where the user typed the path), so the trainer process
 * (whose own files live inside the installed package) loads the same file. A TypeScript module is
 * loaded through tsx, which the package ships; anything that cannot be found fails the worker's
 * start, naming the file, instead of every trainer start failing later.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface ResolvedTrainerModule {
  /** The absolute file the trainer requires. */
  readonly file: string;
  /** Node flags the trainer needs to load it (tsx for TypeScript). */
  readonly execArgv: readonly string[];
}

const TYPESCRIPT = /\.(?:c|m)?tsx?$/;

/** Resolves `spec` (a path relative to `cwd`, an absolute path, or a package name) or throws naming it. */
export function resolveTrainerModule(spec: string, cwd: string = process.cwd()): ResolvedTrainerModule {
  const shown = JSON.stringify(spec.length > 300 ? `${spec.slice(0, 300)}…` : spec);
  let file: string;
  if (path.isAbsolute(spec) || spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..') {
    file = path.resolve(cwd, spec);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
      throw new Error(`Expected \`trainerModule\` (DT_TRAINER_MODULE) to name a module file, got ${shown}: ${file} does not exist (relative paths are resolved from the worker's working directory, ${cwd})`);
    }
  } else {
    try {
      file = require.resolve(spec, { paths: [cwd] });
    } catch {
      throw new Error(`Expected \`trainerModule\` (DT_TRAINER_MODULE) to name a module file or a package installed where the worker runs, got ${shown}: not found from ${cwd}`);
    }
  }
  return { file, execArgv: TYPESCRIPT.test(file) ? ['--import', tsxLoaderUrl(file)] : [] };
}

function tsxLoaderUrl(file: string): string {
  try {
    return pathToFileURL(require.resolve('tsx')).href;
  } catch {
    throw new Error(`The trainer module ${file} is TypeScript, and tsx (which loads it) is not installed: install tsx, or compile the module to .js/.mjs`);
  }
}
