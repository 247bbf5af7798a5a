/**
 * Nothing a test process starts outlives it. Importing this module (every helper does) gives the
 * process its own temp folder, `<tmp>/dt-test-<pid>-XXXXXX`, and points TMPDIR at it, so whatever
 * this process or its children (dev servers, worker processes, trainers, fake-gcs-server) put in
 * `os.tmpdir()` lands there, and so does the worker cache (DT_CACHE_DIR): test files running at
 * the same time share no folder. The folder is removed when the process exits, however the tests
 * ended. Child processes still running at exit are killed: direct children by parent pid, and
 * the process groups of detached children registered with `killGroupOnExit`.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const outerTmp = os.tmpdir();

/** This process's temp folder (also `os.tmpdir()` from now on, here and in every child started after). */
export const SANDBOX = fs.mkdtempSync(path.join(outerTmp, `dt-test-${process.pid}-`));
process.env.TMPDIR = SANDBOX;
// The worker cache (SavedModel mirror, README "Environment") too: two files' GCS emulators can hand
// out the same object generation for different bytes, and one file must not meet another's mirror.
process.env.DT_CACHE_DIR = path.join(SANDBOX, 'cache');
// The workflow bundle is the one thing worth sharing from it: `npm test` builds it once into
// DT_TEST_SHARED_BUNDLES (test/helpers/shared-stack.ts) and each test process links it into its own
// cache, where src/workflow-bundle.ts finds it and reuses it after checking every bundled source
// still reads the same (else it builds anew). Without it each file's first worker process bundles (~3 s of CPU).
const sharedBundles = process.env.DT_TEST_SHARED_BUNDLES;
if (sharedBundles) {
  try {
    const own = path.join(process.env.DT_CACHE_DIR, 'workflow-bundles');
    fs.mkdirSync(own, { recursive: true, mode: 0o700 });
    for (const name of fs.readdirSync(sharedBundles).filter((n) => n.endsWith('.js'))) {
      // A hard link: the cache never writes a file in place (temp file and rename).
      fs.linkSync(path.join(sharedBundles, name), path.join(own, name));
    }
  } catch {
    // no shared bundle: the first worker builds one
  }
}

// tsx keeps its compile cache in `<tmp>/tsx-<uid>`: share the outer one, or every child process compiles from scratch.
const tsxCache = `tsx-${process.geteuid?.() ?? os.userInfo().username}`;
try {
  fs.symlinkSync(path.join(outerTmp, tsxCache), path.join(SANDBOX, tsxCache));
} catch {
  // no cache to share: children build their own inside the sandbox
}

const groups = new Set<number>();

/** Kills the process group `child` leads (started with `detached: true`) at exit, if it still runs. */
export function killGroupOnExit(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  groups.add(pid);
  child.once('exit', () => groups.delete(pid));
}

function cleanUp(): void {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    // Our own children only (a dev server, an in-process worker's trainer, an emulator): by parent pid.
    execFileSync('pkill', ['-KILL', '-P', String(process.pid)], { stdio: 'ignore', timeout: 5000 });
  } catch {
    // none left (pkill exits 1), or no pkill: the `after` hooks stopped them already
  }
  // rmSync does not follow the tsx symlink: the shared cache stays.
  fs.rmSync(SANDBOX, { recursive: true, force: true, maxRetries: 3 });
}

process.once('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    cleanUp();
    // Die of the same signal, as without this handler.
    process.kill(process.pid, signal);
  });
}

/** A fresh folder in this process's sandbox; `after` hooks may delete it early, the exit hook deletes it anyway. */
export function tempDir(prefix = 'dt-test-'): string {
  return fs.mkdtempSync(path.join(SANDBOX, prefix));
}

/** Deletes folders made by `tempDir` (idempotent): for `after` hooks that free disk before the file ends. */
export function removeDirs(...dirs: readonly string[]): void {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}
