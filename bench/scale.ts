/**
 * Scale, measured (issue #15): a random search of many tiny trials (an 8-unit MLP on the synthetic
 * blobs, one epoch of `--steps` steps each) through a real dev server (src/dev-server.ts) and one
 * real worker process (src/worker.ts, as a user runs it) per trainer-slot setting
 * (DT_TRAINER_SLOTS). Prints one table: wall time, the trainer's own time and the rest (scheduling
 * overhead) per trial, history events per trial run and per search run (every run of the search's
 * continue-as-new chain), the largest search run and its carried state, and the worker's peak RSS
 * (worker + trainers, sampled) in the first and second half of the search.
 *
 *   npm run bench:scale                                    # 200 trials with 1, 2 and 4 slots
 *   npm run bench:scale -- --trials 40 --slots 1           # the reference point is 40 trials
 *   npm run bench:scale -- --parallel 2 --every 50 --steps 1
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { DevServer } from '../src/dev-server';
import type { SearchResult } from '../src/workflows';
import { chainHistories as chain, type HistoryEvent } from '../test/search-e2e-support';


interface Args {
  trials: number;
  slots: number[];
  /** maxParallel; default twice the slots, so a slot never waits on a workflow task. */
  parallel: number | undefined;
  every: number;
  steps: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { trials: 200, slots: [1, 2, 4], parallel: undefined, every: 50, steps: 1 };
  const whole = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`Expected \`${flag}\` to be a whole number from ${min} and up, got \`${v}\``);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[++i];
    if (a === '--trials') args.trials = whole(a, v, 1);
    else if (a === '--slots') args.slots = (v ?? '').split(',').map((s) => whole(a, s, 1));
    else if (a === '--parallel') args.parallel = whole(a, v, 1);
    else if (a === '--every') args.every = whole(a, v, 0);
    else if (a === '--steps') args.steps = whole(a, v, 1);
    else throw new Error(`Unknown argument \`${a}\` (expected --trials, --slots, --parallel, --every, --steps)`);
  }
  return args;
}

function searchInput(a: Args, trials: number, maxParallel: number): Record<string, unknown> {
  return {
    base: {
      model: { name: 'mlp', params: { hiddenUnits: [8] } },
      data: {
        train: { name: 'synthetic', params: { size: 256, noise: 1.5 } },
        eval: { name: 'synthetic', split: 'test', params: { size: 128, noise: 1.5 } },
      },
      hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 32 },
      stepsPerEpoch: a.steps,
      maxEpochs: 1,
      seed: 3,
    },
    strategy: 'random',
    maxTrials: trials,
    maxParallel,
    seed: 1,
    continueAsNewEvery: a.every,
    space: { 'hyperparameters.learningRate': { loguniform: [0.001, 0.1] } },
  };
}

/** pid → parent pid, RSS and command line, from /proc (Linux). */
function processTable(): Map<number, { ppid: number; rssKb: number; cmd: string }> {
  const out = new Map<number, { ppid: number; rssKb: number; cmd: string }>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = fs.readFileSync(`/proc/${name}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      out.set(Number(name), { ppid, rssKb, cmd });
    } catch {
      // exited while we read
    }
  }
  return out;
}

/** RSS of `root` and all its descendants, and how many of them are trainer processes. */
function treeRss(root: number): { rssMb: number; trainers: number } {
  const table = processTable();
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of table) {
      if (tree.has(pid) || !tree.has(p.ppid)) continue;
      tree.add(pid);
      grew = true;
    }
  }
  let kb = 0;
  let trainers = 0;
  for (const pid of tree) {
    const p = table.get(pid);
    kb += p?.rssKb ?? 0;
    if (p?.cmd.includes('trainer-process')) trainers++;
  }
  return { rssMb: kb / 1024, trainers };
}

interface WorkerProc {
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

function startWorker(address: string, taskQueue: string, root: string, slots: number): WorkerProc {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '../src/worker.ts')], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'default', DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: pathToFileURL(root).href, DT_TRAINER_SLOTS: String(slots) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // gone
    }
  };
  process.on('exit', () => kill('SIGKILL'));
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    async stop() {
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function until(what: string, timeoutMs: number, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const encodedBytes = (events: HistoryEvent[]): number => temporal.api.history.v1.History.encode({ events }).finish().length;

/** Workflow and activity tasks a history dispatched through the task queue (attempts not counted). */
const tasks = (events: HistoryEvent[]): number => events.filter((e) => e.workflowTaskScheduledEventAttributes || e.activityTaskScheduledEventAttributes).length;

/** `seconds` of a trainer result, or of its parts (trainEpoch returns `trained` and `evaluated`). */
function secondsIn(result: unknown): number {
  if (!result || typeof result !== 'object') return 0;
  const r = result as { seconds?: unknown; trained?: unknown; evaluated?: unknown };
  if (typeof r.seconds === 'number') return r.seconds;
  return secondsIn(r.trained) + secondsIn(r.evaluated);
}

/** Seconds the trainer itself reported in every completed activity's result. */
function trainerSeconds(events: HistoryEvent[]): number {
  let s = 0;
  for (const e of events) {
    const payload = e.activityTaskCompletedEventAttributes?.result?.payloads?.[0];
    if (payload) s += secondsIn(defaultPayloadConverter.fromPayload<unknown>(payload));
  }
  return s;
}

interface Row {
  slots: number;
  maxParallel: number;
  trials: number;
  wallS: number;
  trainerS: number;
  childEvents: number;
  searchEvents: number;
  /** Task-queue tasks (workflow + activity) per trial: its run's and its share of the search's. */
  tasks: number;
  searchRuns: number;
  maxRunEvents: number;
  maxRunKb: number;
  carriedKb: number;
  rssFirstMb: number;
  rssSecondMb: number;
  trainersSeen: number;
  load: string;
}

async function measure(client: Client, address: string, a: Args, slots: number): Promise<Row> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-scale-'));
  const taskQueue = `dt-scale-${process.pid}-${slots}`;
  const worker = startWorker(address, taskQueue, root, slots);
  try {
    await until('the worker to poll', 120_000, () => worker.output().includes('[durable-train] worker on'));
    const maxParallel = a.parallel ?? 2 * slots;
    // Untimed warm-up: starts the trainers and warms tfjs for this model.
    const warm = await client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: `scale-warm-${process.pid}-${slots}`, args: [searchInput(a, 2 * slots, maxParallel)] });
    await warm.result();

    const samples: Array<{ t: number; rssMb: number; trainers: number }> = [];
    const sample = () => samples.push({ t: Date.now(), ...treeRss(worker.child.pid!) });
    const sampler = setInterval(sample, 500);
    const load = os.loadavg()[0]!;
    const started = Date.now();
    const handle = await client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: `scale-${process.pid}-${slots}`, args: [searchInput(a, a.trials, maxParallel)] });
    const result = (await handle.result()) as SearchResult;
    const wallS = (Date.now() - started) / 1000;
    sample();
    clearInterval(sampler);
    const loadEnd = os.loadavg()[0]!;
    const failed = result.trials.filter((t) => t.status !== 'completed');
    if (failed.length > 0) throw new Error(`${failed.length} trials did not complete: ${JSON.stringify(failed[0])}`);

    const runs = await chain(client, handle.workflowId, handle.firstExecutionRunId);
    let childEvents = 0;
    let trainerS = 0;
    let taskCount = runs.reduce((n, r) => n + tasks(r), 0);
    const ids = result.trials.map((t) => t.workflowId!);
    for (let i = 0; i < ids.length; i += 20) {
      const histories = await Promise.all(ids.slice(i, i + 20).map(async (id) => (await client.workflow.getHandle(id).fetchHistory()).events ?? []));
      for (const h of histories) {
        childEvents += h.length;
        taskCount += tasks(h);
        trainerS += trainerSeconds(h);
      }
    }
    const carried = runs.flatMap((r) => r[r.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.input?.payloads ?? []);
    const half = started + (wallS * 1000) / 2;
    const peak = (xs: typeof samples) => Math.max(0, ...xs.map((s) => s.rssMb));
    return {
      slots,
      maxParallel,
      trials: a.trials,
      wallS,
      trainerS,
      childEvents: childEvents / a.trials,
      searchEvents: runs.reduce((n, r) => n + r.length, 0) / a.trials,
      tasks: taskCount / a.trials,
      searchRuns: runs.length,
      maxRunEvents: Math.max(...runs.map((r) => r.length)),
      maxRunKb: Math.max(...runs.map(encodedBytes)) / 1024,
      carriedKb: Math.max(0, ...carried.map((p) => (p.data?.length ?? 0) + (p.metadata ? Object.values(p.metadata).reduce((n, m) => n + m.length, 0) : 0))) / 1024,
      rssFirstMb: peak(samples.filter((s) => s.t <= half)),
      rssSecondMb: peak(samples.filter((s) => s.t > half)),
      trainersSeen: Math.max(0, ...samples.map((s) => s.trainers)),
      load: `${load.toFixed(1)} → ${loadEnd.toFixed(1)}`,
    };
  } finally {
    await worker.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function print(rows: Row[], a: Args): void {
  const f = (n: number, d = 2) => n.toFixed(d);
  console.log(`\n${a.trials}-trial random search, one epoch of ${a.steps} step(s) a trial (8-unit MLP, synthetic), continueAsNewEvery ${a.every}, one worker process`);
  console.log(`${os.cpus().length} cores; load average (1 min) at the start → end of each search in the last column\n`);
  console.log('| trainer slots | maxParallel | trainers seen | wall s | s/trial | trainer s/trial | overhead s/trial | events/trial run | search events/trial | tasks/trial | search runs | max events/search run | max search run KB | carried state KB | peak RSS MB 1st / 2nd half | load |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const perTrial = r.wallS / r.trials;
    const trainer = r.trainerS / r.trials;
    // Wall time the trainers' own work does not explain: the slots work in parallel, the rest is scheduling.
    const overhead = perTrial - trainer / r.slots;
    console.log(
      `| ${r.slots} | ${r.maxParallel} | ${r.trainersSeen} | ${f(r.wallS, 1)} | ${f(perTrial, 3)} | ${f(trainer, 3)} | ${f(overhead, 3)} | ${f(r.childEvents, 1)} | ${f(r.searchEvents, 1)} | ${f(r.tasks, 1)} | ${r.searchRuns} | ${r.maxRunEvents} | ${f(r.maxRunKb, 0)} | ${f(r.carriedKb, 1)} | ${f(r.rssFirstMb, 0)} / ${f(r.rssSecondMb, 0)} | ${r.load} |`,
    );
  }
  console.log('\noverhead s/trial = s/trial − trainer s/trial ÷ slots (the trainer\'s own seconds of training, checkpointing and evaluating, from the activities\' results).');
  console.log('search events/trial counts every run of the search workflow id (continue-as-new included); tasks/trial: workflow and activity tasks scheduled (trial run + its share of the search); carried state is the largest continue-as-new input.');
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const server = await DevServer.start();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const rows: Row[] = [];
  try {
    for (const slots of a.slots) {
      console.log(`[bench:scale] ${a.trials} trials with ${slots} trainer slot(s)…`);
      rows.push(await measure(client, server.address, a, slots));
    }
  } finally {
    await connection.close();
    await server.stop();
    fs.rmSync(path.dirname(server.dbFile), { recursive: true, force: true });
  }
  print(rows, a);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
