/**
 * `npm test`: the whole suite, the fast tier and the e2e files at once where they share nothing.
 *
 * - One dev server and one workflow bundle for every file (test/helpers/shared-stack.ts); files
 *   that restart a server start their own on a free port. Each test process has its own temp
 *   folder and worker cache (test/helpers/cleanup.ts), task queues and workflow ids carry its pid.
 * - The fast tier (every file not named `*.e2e.test.ts`) is one job: `node --test` with two files at
 *   a time, as `npm run test:fast` runs it.
 * - Each e2e file is a job of its own. DT_TEST_JOBS (default 3) jobs run at once, longest first
 *   (by the times the last run wrote to .cache/test-times.json, else by size).
 * - SERIAL files run after that, alone: they measure time against bounds or load the cores on
 *   purpose, and a neighbour's trainer would make them measure the neighbour.
 * - A file's output is printed whole when it ends (never interleaved), then a table of every file's
 *   time and the failures; the exit code is 1 when any file failed.
 *
 *   npm test                                   everything
 *   npm test -- test/a.e2e.test.ts test/b...   only these files (same rules)
 *   DT_TEST_JOBS=1 npm test                    one file at a time
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killGroupOnExit, SANDBOX } from './helpers/cleanup';
import { startSharedStack } from './helpers/shared-stack';
import { allTestFiles, fastTestFiles, isE2eTestFile, ROOT } from './helpers/tiers';

/** Run alone, after everything else, and why. */
export const SERIAL: Record<string, string> = {
  'test/activity-liveness.e2e.test.ts': 'asserts each activity is retried within its timeout + 5 s',
  'test/trainer-slots.e2e.test.ts': 'checks two trainers share the cores',
  'test/trainer-pool.e2e.test.ts': 'checks two trainer processes each get their share of the cores',
  'test/cli.e2e.test.ts': "`watch` must catch a retrain in its training phase, a few seconds long (failed once beside two other files)",
};

/** How many files run at once (see README "Development": 2 cores, trainers are CPU-bound, most of an e2e file is waiting). */
const JOBS = Number(process.env.DT_TEST_JOBS ?? 3);
/** A file still running after this long is killed and counted as failed (the slowest takes about 7 minutes alone). */
const FILE_TIMEOUT_MS = Number(process.env.DT_TEST_FILE_TIMEOUT_S ?? 1800) * 1000;
const TIMES_FILE = path.join(ROOT, '.cache/test-times.json');
const FAST = 'fast tier';

interface Job {
  readonly name: string;
  /** Its entry in .cache/test-times.json. */
  readonly key: string;
  readonly args: string[];
}

interface Outcome {
  readonly name: string;
  readonly key: string;
  readonly ok: boolean;
  readonly seconds: number;
  /** Its tests' lines from test/helpers/durations-reporter.mjs. */
  readonly tests: TestDuration[];
}

/** One line of test/helpers/durations-reporter.mjs. */
interface TestDuration {
  readonly file: string;
  readonly name: string;
  readonly nesting: number;
  readonly ms: number;
  readonly ok: boolean;
}

function readDurations(file: string): TestDuration[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: TestDuration[] = [];
  for (const line of text.split('\n')) {
    try {
      if (line.trim()) out.push(JSON.parse(line) as TestDuration);
    } catch {
      // a line torn by a kill
    }
  }
  return out;
}

/**
 * The leaf tests (no subtests) of a reporter's lines, which come children first: a line whose level
 * below saw no line since is a leaf. A describe's own time beyond its children's is its hooks.
 */
function leafTests(tests: readonly TestDuration[]): TestDuration[] {
  const seenBelow: boolean[] = [];
  const leaves: TestDuration[] = [];
  /** Leaves not yet named after their top-level describe (which comes after them). */
  let pending: TestDuration[] = [];
  for (const t of tests) {
    if (!seenBelow[t.nesting + 1]) (t.nesting === 0 ? leaves : pending).push(t);
    seenBelow[t.nesting + 1] = false;
    seenBelow[t.nesting] = true;
    if (t.nesting === 0 && pending.length > 0) {
      leaves.push(...pending.map((p) => ({ ...p, name: `${t.name} > ${p.name}` })));
      pending = [];
    }
  }
  return [...leaves, ...pending];
}

function readTimes(): Record<string, number> {
  try {
    return JSON.parse(fs.readFileSync(TIMES_FILE, 'utf8')) as Record<string, number>;
  } catch {
    return {};
  }
}

let jobCount = 0;

function runJob(job: Job, env: Record<string, string>): Promise<Outcome> {
  const started = Date.now();
  const durations = path.join(SANDBOX, `durations-${jobCount++}.jsonl`);
  const reporters = ['--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=./test/helpers/durations-reporter.mjs', `--test-reporter-destination=${durations}`];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', ...reporters, ...job.args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    killGroupOnExit(child);
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    const timer = setTimeout(() => {
      out.push(Buffer.from(`\n[npm test] ${job.name} still running after ${FILE_TIMEOUT_MS / 1000} s: killed\n`));
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }, FILE_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = (Date.now() - started) / 1000;
      const ok = code === 0 && !signal;
      process.stdout.write(`\n── ${job.name}: ${ok ? 'pass' : 'FAIL'} in ${seconds.toFixed(1)} s ──\n${Buffer.concat(out).toString('utf8')}`);
      resolve({ name: job.name, key: job.key, ok, seconds, tests: readDurations(durations) });
    });
  });
}

async function runPool(jobs: Job[], width: number, env: Record<string, string>): Promise<Outcome[]> {
  const queue = [...jobs];
  const outcomes: Outcome[] = [];
  const lane = async (): Promise<void> => {
    for (let job = queue.shift(); job; job = queue.shift()) outcomes.push(await runJob(job, env));
  };
  await Promise.all(Array.from({ length: Math.max(1, width) }, lane));
  return outcomes;
}

async function main(): Promise<number> {
  const started = Date.now();
  const files = process.argv.length > 2 ? process.argv.slice(2) : allTestFiles();
  const fast = files.filter((f) => !isE2eTestFile(f));
  const e2e = files.filter(isE2eTestFile);
  const times = readTimes();
  // Before any run has recorded times: the fast tier is about 4 minutes, an e2e file's size in kB is its seconds, roughly.
  const estimate = (job: Job): number => times[job.key] ?? (job.key === FAST ? 240 : fs.statSync(path.join(ROOT, job.key)).size / 1000);
  const longestFirst = (a: Job, b: Job): number => estimate(b) - estimate(a);
  const parallel: Job[] = [
    ...(fast.length > 0 ? [{ name: `${FAST} (${fast.length} files)`, key: FAST, args: ['--test-concurrency=2', ...fast] }] : []),
    ...e2e.filter((f) => !SERIAL[f]).map((f) => ({ name: f, key: f, args: [f] })),
  ].sort(longestFirst);
  const serial = e2e.filter((f) => SERIAL[f]).map((f) => ({ name: f, key: f, args: [f] })).sort(longestFirst);

  // The machine's 1-minute load average every 30 s: the suite's time means little without it (2 shared cores).
  const loads = [os.loadavg()[0]!];
  const sampler = setInterval(() => loads.push(os.loadavg()[0]!), 30_000);
  sampler.unref();
  const stack = await startSharedStack();
  console.log(`[npm test] dev server ${stack.address} and workflow bundle ready in ${((Date.now() - started) / 1000).toFixed(1)} s; ${parallel.length} jobs ${JOBS} at a time, then ${serial.length} alone`);
  let outcomes: Outcome[] = [];
  try {
    outcomes = [...(await runPool(parallel, JOBS, stack.env)), ...(await runPool(serial, 1, stack.env))];
  } finally {
    await stack.stop();
  }

  const recorded = { ...times };
  // The fast tier's time only from a run of all of it.
  for (const o of outcomes) if (o.key !== FAST || fast.length === fastTestFiles().length) recorded[o.key] = Math.round(o.seconds);
  try {
    fs.writeFileSync(TIMES_FILE, `${JSON.stringify(recorded, null, 1)}\n`);
  } catch {
    // no .cache: the next run orders by size
  }
  const failed = outcomes.filter((o) => !o.ok);
  printTables(outcomes);
  clearInterval(sampler);
  const total = ((Date.now() - started) / 1000).toFixed(0);
  const sorted = [...loads].sort((a, b) => a - b);
  const load = `load average ${sorted[0]!.toFixed(1)}-${sorted.at(-1)!.toFixed(1)}, median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} (${os.availableParallelism()} cores)`;
  console.log(`[npm test] ${files.length} files, ${outcomes.length - failed.length} jobs passed, ${failed.length} failed${failed.length ? `: ${failed.map((o) => o.name).join(', ')}` : ''}; ${total} s with ${JOBS} at a time; ${load}`);
  return failed.length === 0 ? 0 : 1;
}

/** Seconds per file, split into its leaf tests and the rest; then the slowest tests of the suite. */
function printTables(outcomes: readonly Outcome[]): void {
  const col = (n: number): string => n.toFixed(1).padStart(7);
  console.log('\n[npm test] seconds per file (longest first); "in tests": its leaf tests; "outside": process start, imports (tfjs), before/after hooks:');
  console.log(`  ${'file'.padStart(7)}  ${'in tests'.padStart(8)}  ${'outside'.padStart(7)}`);
  for (const o of [...outcomes].sort((a, b) => b.seconds - a.seconds)) {
    const inTests = leafTests(o.tests).reduce((sum, t) => sum + t.ms, 0) / 1000;
    // The fast tier runs two files at once: its tests' times add up past its wall time.
    const split = o.key === FAST ? `${'-'.padStart(8)}  ${'-'.padStart(7)}` : `${col(inTests).padStart(8)}  ${col(Math.max(0, o.seconds - inTests))}`;
    console.log(`  ${col(o.seconds)}  ${split}  ${o.ok ? '    ' : 'FAIL'}  ${o.name}${SERIAL[o.name] ? '  (alone)' : ''}`);
  }
  const slowest = outcomes
    .filter((o) => o.key !== FAST)
    .flatMap((o) => leafTests(o.tests).map((t) => ({ ...t, job: o.name })))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 20);
  console.log('\n[npm test] the 20 slowest tests (seconds, e2e files):');
  for (const t of slowest) console.log(`  ${col(t.ms / 1000)}  ${t.job}: ${t.name.length > 110 ? `${t.name.slice(0, 107)}...` : t.name}`);
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
