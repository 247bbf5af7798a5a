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
 *   npm run bench:scale -- --trials 400 --slots 2 --trial-seconds 1    # one-second trials vs the floor
 *   npm run bench:scale -- --trials 20000 --slots 2 --no-children --stop-after-minutes 30
 *   npm run bench:scale -- --trials 200 --slots 2 --baseline /tmp/older-checkout     # before and after, one run
 *
 * --baseline <tree>: a checkout of an older commit (with a node_modules link); each slot setting is
 * measured with that tree's worker (its workflows and activities) first, then with this tree's, on
 * the same dev server, with the same steps (calibrated once). --print-trial prints the events of one
 * trial (the middle one) with their times.
 * --trial-seconds S sizes the steps so one trial trains about S seconds (a calibration search of
 * 200-step trials first); the floor is then trials × trainer s/trial ÷ slots. --no-children skips
 * reading every trial's history (20,000 fetches). --stop-after-minutes ends the search at that
 * time (terminated) and reports what ran. A second table gives the scale figures: trials finished,
 * wall time, history events per search run (mean and largest), the largest payload in the search's
 * history, store objects written, and the worker's RSS when 10 %, 50 % and 100 % of them were done.
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
  /** Size steps so a trial trains about this many seconds (calibrated). */
  trialSeconds: number | undefined;
  children: boolean;
  stopAfterMinutes: number | undefined;
  /** An older checkout to measure first, with the same settings. */
  baseline: string | undefined;
  printTrial: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { trials: 200, slots: [1, 2, 4], parallel: undefined, every: 50, steps: 1, trialSeconds: undefined, children: true, stopAfterMinutes: undefined, baseline: undefined, printTrial: false };
  const whole = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`Expected \`${flag}\` to be a whole number from ${min} and up, got \`${v}\``);
    return n;
  };
  const positive = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!(n > 0)) throw new Error(`Expected \`${flag}\` to be a number above 0, got \`${v}\``);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--no-children' || a === '--print-trial') {
      if (a === '--no-children') args.children = false;
      else args.printTrial = true;
      continue;
    }
    const v = argv[++i];
    if (a === '--trials') args.trials = whole(a, v, 1);
    else if (a === '--slots') args.slots = (v ?? '').split(',').map((s) => whole(a, s, 1));
    else if (a === '--parallel') args.parallel = whole(a, v, 1);
    else if (a === '--every') args.every = whole(a, v, 0);
    else if (a === '--steps') args.steps = whole(a, v, 1);
    else if (a === '--trial-seconds') args.trialSeconds = positive(a, v);
    else if (a === '--stop-after-minutes') args.stopAfterMinutes = positive(a, v);
    else if (a === '--baseline') {
      if (!v || !fs.existsSync(path.join(v, 'src/worker.ts'))) throw new Error(`Expected \`--baseline\` to be a checkout with src/worker.ts, got \`${v}\``);
      args.baseline = path.resolve(v);
    } else throw new Error(`Unknown argument \`${a}\` (expected --trials, --slots, --parallel, --every, --steps, --trial-seconds, --no-children, --stop-after-minutes, --baseline, --print-trial)`);
  }
  return args;
}

function searchInput(a: Args, trials: number, maxParallel: number, steps = a.steps): Record<string, unknown> {
  return {
    base: {
      model: { name: 'mlp', params: { hiddenUnits: [8] } },
      data: {
        train: { name: 'synthetic', params: { size: 256, noise: 1.5 } },
        eval: { name: 'synthetic', split: 'test', params: { size: 128, noise: 1.5 } },
      },
      hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 32 },
      stepsPerEpoch: steps,
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

/** `root` and all its descendants in `table`. */
function processTree(table: ReturnType<typeof processTable>, root: number): Set<number> {
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, p] of table) {
      if (tree.has(pid) || !tree.has(p.ppid)) continue;
      tree.add(pid);
      grew = true;
    }
  }
  return tree;
}

/** RSS of `root` and all its descendants, and how many of them are trainer processes. */
function treeRss(root: number): { rssMb: number; trainers: number } {
  const table = processTable();
  const tree = processTree(table, root);
  let kb = 0;
  let trainers = 0;
  for (const pid of tree) {
    const p = table.get(pid);
    kb += p?.rssKb ?? 0;
    if (p?.cmd.includes('trainer-process')) trainers++;
  }
  return { rssMb: kb / 1024, trainers };
}

/** CPU seconds (user + system) of a live process, from /proc/<pid>/stat; 0 when it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14, 15) in ticks of 1/100 s
  } catch {
    return 0;
  }
}

/** CPU seconds so far of the worker's main process, of its trainers, and of this process's other descendants (the dev server). */
function cpuByPart(workerPid: number): { worker: number; trainers: number; server: number } {
  const table = processTable();
  const workerTree = processTree(table, workerPid);
  let trainers = 0;
  for (const pid of workerTree) if (pid !== workerPid) trainers += cpuSeconds(pid);
  let server = 0;
  for (const pid of processTree(table, process.pid)) if (pid !== process.pid && !workerTree.has(pid)) server += cpuSeconds(pid);
  return { worker: cpuSeconds(workerPid), trainers, server };
}

interface WorkerProc {
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

function startWorker(address: string, taskQueue: string, root: string, slots: number, tree: string): WorkerProc {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(tree, 'src/worker.ts')], {
    cwd: tree,
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
  /** Trials finished (all of them, unless --stop-after-minutes ended the search first). */
  finished: number;
  steps: number;
  wallS: number;
  trainerS: number;
  childEvents: number;
  searchEvents: number;
  /** Task-queue tasks (workflow + activity) per trial: its run's and its share of the search's. */
  tasks: number;
  searchRuns: number;
  meanRunEvents: number;
  maxRunEvents: number;
  maxRunKb: number;
  carriedKb: number;
  /** The largest single payload anywhere in the search's runs (input, result, a child's result, continue-as-new input). */
  maxPayloadKb: number;
  storeObjects: number;
  rssFirstMb: number;
  rssSecondMb: number;
  /** Worker tree RSS when 10 %, 50 % and 100 % of the finished trials were done. */
  rssAtMb: [number, number, number];
  trainersSeen: number;
  load: string;
  /** CPU seconds during the measured search: the worker's main process (workflows, activities' store work), its trainers, the dev server. */
  cpu: { worker: number; trainers: number; server: number };
  /** Which tree's worker ran it: 'this tree' or 'baseline <dir>'. */
  label: string;
  /** Seconds of each phase of a trial (trialPhases), one array entry per trial read. */
  phases: Map<string, number[]>;
}

/** Every payload's encoded size in an event (any attribute's `payloads`), walked without recursion limits of note (events are shallow). */
function largestPayload(value: unknown, depth = 0): number {
  if (!value || typeof value !== 'object' || depth > 12) return 0;
  let most = 0;
  const v = value as Record<string, unknown>;
  if (Array.isArray(v.payloads)) {
    for (const p of v.payloads as Array<{ data?: Uint8Array | null; metadata?: Record<string, Uint8Array> | null }>) {
      most = Math.max(most, (p.data?.length ?? 0) + Object.values(p.metadata ?? {}).reduce((n, m) => n + m.length, 0));
    }
  }
  for (const child of Object.values(v)) if (child && typeof child === 'object' && !(child instanceof Uint8Array)) most = Math.max(most, largestPayload(child, depth + 1));
  return most;
}

/** An event's server time in ms. */
function eventMs(e: HistoryEvent): number {
  const t = e.eventTime;
  return t ? Number(t.seconds?.toString() ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
}

/** The name of an event's type (`ACTIVITY_TASK_STARTED`…) without its prefix. */
function eventName(e: HistoryEvent): string {
  return String(temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? e.eventType).replace(/^EVENT_TYPE_/, '');
}

/**
 * One trial's time, phase by phase: every gap between two consecutive events of its run is charged
 * to the event that ends it (a workflow task's wait for a worker, its run: local activities
 * included, an activity's wait and its run by type), plus the search's side: from the search's
 * command to the child's first event (child start) and from the child's last event to the end of
 * the search's workflow task that took its result (result noticed). The phases add up to the
 * trial's whole span. An activity's run is split into the trainer's own seconds (from its result)
 * and the rest (store round trips, lease, records, export).
 */
function trialPhases(child: HistoryEvent[], initiatedMs: number | undefined, noticedMs: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  const add = (k: string, s: number) => out.set(k, (out.get(k) ?? 0) + s);
  const activityType = new Map<string, string>();
  for (let i = 0; i < child.length; i++) {
    const e = child[i]!;
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) activityType.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    if (i === 0) {
      if (initiatedMs !== undefined) add('child start (search command → child started)', (eventMs(e) - initiatedMs) / 1000);
      continue;
    }
    const dt = (eventMs(e) - eventMs(child[i - 1]!)) / 1000;
    if (dt === 0) continue;
    const name = eventName(e);
    const act = e.activityTaskStartedEventAttributes?.scheduledEventId ?? e.activityTaskCompletedEventAttributes?.scheduledEventId;
    const type = act !== undefined && act !== null ? activityType.get(String(act)) : undefined;
    if (name === 'WORKFLOW_TASK_STARTED') add('workflow tasks: wait for the worker', dt);
    else if (name === 'WORKFLOW_TASK_COMPLETED') add('workflow tasks: run (local activities included)', dt);
    else if (name === 'ACTIVITY_TASK_STARTED') add(`${type}: wait for a slot`, dt);
    else if (name === 'ACTIVITY_TASK_COMPLETED') {
      const trainer = secondsIn(defaultPayloadConverter.fromPayload<unknown>(e.activityTaskCompletedEventAttributes!.result!.payloads![0]!));
      if (trainer > 0) add(`${type}: trainer (train, checkpoint, evaluate)`, Math.min(trainer, dt));
      add(`${type}: the rest (store, records, export)`, dt - Math.min(trainer, dt));
    } else add(`other (${name})`, dt);
  }
  if (noticedMs !== undefined && child.length > 0) add('result noticed (child ended → search task done)', (noticedMs - eventMs(child[child.length - 1]!)) / 1000);
  return out;
}

/** Per child workflow id: when the search commanded its start, and when the search's task that took its end completed. */
function searchSideTimes(runs: HistoryEvent[][]): { initiated: Map<string, number>; noticed: Map<string, number> } {
  const initiated = new Map<string, number>();
  const noticed = new Map<string, number>();
  for (const events of runs) {
    let pending: string[] = [];
    for (const e of events) {
      const start = e.startChildWorkflowExecutionInitiatedEventAttributes;
      if (start?.workflowId) initiated.set(start.workflowId, eventMs(e));
      const ended = e.childWorkflowExecutionCompletedEventAttributes ?? e.childWorkflowExecutionFailedEventAttributes;
      if (ended?.workflowExecution?.workflowId) pending.push(ended.workflowExecution.workflowId);
      if (e.workflowTaskCompletedEventAttributes && pending.length > 0) {
        for (const id of pending) noticed.set(id, eventMs(e));
        pending = [];
      }
    }
  }
  return { initiated, noticed };
}

/** Files under `dir` (the checkpoint root), the file store's own temporary and lock files left out. */
function countFiles(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.dt-')) continue;
    if (e.isDirectory()) n += countFiles(path.join(dir, e.name));
    else n++;
  }
  return n;
}

/** Steps for a trial of about `seconds` of training: one calibration search of 200-step trials. */
async function calibrateSteps(client: Client, taskQueue: string, a: Args, slots: number, seconds: number): Promise<number> {
  const handle = await client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: `scale-calibrate-${taskQueue}`, args: [searchInput(a, 2 * slots, 2 * slots, 200)] });
  const result = (await handle.result()) as SearchResult;
  let trainer = 0;
  for (const t of result.trials) trainer += trainerSeconds((await client.workflow.getHandle(t.workflowId!).fetchHistory()).events ?? []);
  const perStep = trainer / result.trials.length / 200;
  const steps = Math.max(1, Math.round(seconds / perStep));
  console.log(`[bench:scale] calibration: ${(perStep * 1000).toFixed(2)} ms a step (trainer time of 200-step trials) → ${steps} steps for ~${seconds} s trials`);
  return steps;
}

/** Steps calibrated per slot setting, so a baseline and this tree train the same trials. */
const calibrated = new Map<number, number>();

async function measure(client: Client, address: string, a: Args, slots: number, tree: string, label: string): Promise<Row> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-scale-'));
  const taskQueue = `dt-scale-${process.pid}-${slots}-${label.replace(/\W+/g, '-')}`;
  const worker = startWorker(address, taskQueue, root, slots, tree);
  try {
    await until('the worker to poll', 120_000, () => worker.output().includes('[durable-train] worker on'));
    const maxParallel = a.parallel ?? 2 * slots;
    // Untimed warm-up: starts the trainers and warms tfjs for this model.
    const warm = await client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: `scale-warm-${taskQueue}`, args: [searchInput(a, 2 * slots, maxParallel)] });
    await warm.result();
    if (a.trialSeconds !== undefined && !calibrated.has(slots)) calibrated.set(slots, await calibrateSteps(client, taskQueue, a, slots, a.trialSeconds));
    const steps = calibrated.get(slots) ?? a.steps;
    const objectsBefore = countFiles(root);

    const samples: Array<{ t: number; rssMb: number; trainers: number; finished: number }> = [];
    let finished = 0;
    const sample = () => samples.push({ t: Date.now(), finished, ...treeRss(worker.child.pid!) });
    const load = os.loadavg()[0]!;
    const cpuBefore = cpuByPart(worker.child.pid!);
    const started = Date.now();
    const handle = await client.workflow.start('hyperparameterSearch', { taskQueue, workflowId: `scale-${taskQueue}`, args: [searchInput(a, a.trials, maxParallel, steps)] });
    // Trials finished, from the search's DurableTrainEpoch attribute (for a search: trials finished).
    const poll = async () => {
      const d = await handle.describe().catch(() => undefined);
      const n = (d?.searchAttributes as Record<string, unknown[] | undefined> | undefined)?.DurableTrainEpoch?.[0];
      if (typeof n === 'number') finished = Math.max(finished, n);
    };
    const sampler = setInterval(() => {
      sample();
      void poll();
    }, 2000);
    let stoppedEarly = false;
    const deadline = a.stopAfterMinutes !== undefined ? started + a.stopAfterMinutes * 60_000 : Infinity;
    const done = handle.result().then((r) => r as SearchResult);
    const outcome = await Promise.race([done, new Promise<'deadline'>((r) => setTimeout(() => r('deadline'), Math.min(deadline - Date.now(), 2 ** 31 - 1)).unref())]);
    let result: SearchResult | undefined;
    if (outcome === 'deadline') {
      stoppedEarly = true;
      await poll();
      await handle.terminate('bench:scale --stop-after-minutes');
      done.catch(() => undefined);
    } else {
      result = outcome;
      finished = result.trials.filter((t) => t.status === 'completed').length;
    }
    const wallS = (Date.now() - started) / 1000;
    const cpuAfter = cpuByPart(worker.child.pid!);
    sample();
    clearInterval(sampler);
    const loadEnd = os.loadavg()[0]!;
    if (result) {
      const failed = result.trials.filter((t) => t.status !== 'completed');
      if (failed.length > 0) throw new Error(`${failed.length} trials did not complete: ${JSON.stringify(failed[0])}`);
    }

    const runs = await chain(client, handle.workflowId, handle.firstExecutionRunId);
    let childEvents = 0;
    let trainerS = 0;
    let taskCount = runs.reduce((n, r) => n + tasks(r), 0);
    const ids = a.children && result ? result.trials.map((t) => t.workflowId!) : [];
    const side = searchSideTimes(runs);
    const phases = new Map<string, number[]>();
    for (let i = 0; i < ids.length; i += 20) {
      const batch = ids.slice(i, i + 20);
      const histories = await Promise.all(batch.map(async (id) => (await client.workflow.getHandle(id).fetchHistory()).events ?? []));
      histories.forEach((h, j) => {
        childEvents += h.length;
        taskCount += tasks(h);
        trainerS += trainerSeconds(h);
        const id = batch[j]!;
        for (const [k, sec] of trialPhases(h, side.initiated.get(id), side.noticed.get(id))) phases.set(k, [...(phases.get(k) ?? []), sec]);
        if (i + j === Math.floor(ids.length / 2) && a.printTrial) {
          for (const e of h) console.log(`${((eventMs(e) - eventMs(h[0]!)) / 1000).toFixed(3)} ${eventName(e)} ${e.activityTaskScheduledEventAttributes?.activityType?.name ?? ''} ${e.markerRecordedEventAttributes ? JSON.stringify(Object.fromEntries(Object.entries(e.markerRecordedEventAttributes.details ?? {}).map(([k2, v]) => [k2, (v.payloads ?? []).map((p) => Buffer.from(p.data ?? []).toString('utf8').slice(0, 300))]))) : ''}`);
        }
      });
    }
    const carried = runs.flatMap((r) => r[r.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.input?.payloads ?? []);
    const half = started + (wallS * 1000) / 2;
    const peak = (xs: typeof samples) => Math.max(0, ...xs.map((s) => s.rssMb));
    const rssAt = (share: number) => samples.find((s) => s.finished >= share * finished)?.rssMb ?? samples[samples.length - 1]?.rssMb ?? 0;
    const n = Math.max(1, finished);
    if (stoppedEarly) console.log(`[bench:scale] stopped after ${a.stopAfterMinutes} min: ${finished} of ${a.trials} trials finished`);
    return {
      slots,
      maxParallel,
      trials: a.trials,
      finished,
      steps,
      wallS,
      trainerS,
      childEvents: ids.length > 0 ? childEvents / ids.length : NaN,
      searchEvents: runs.reduce((m, r) => m + r.length, 0) / n,
      tasks: ids.length > 0 ? taskCount / n : NaN,
      searchRuns: runs.length,
      meanRunEvents: runs.reduce((m, r) => m + r.length, 0) / runs.length,
      maxRunEvents: Math.max(...runs.map((r) => r.length)),
      maxRunKb: Math.max(...runs.map(encodedBytes)) / 1024,
      carriedKb: Math.max(0, ...carried.map((p) => (p.data?.length ?? 0) + (p.metadata ? Object.values(p.metadata).reduce((m, x) => m + x.length, 0) : 0))) / 1024,
      maxPayloadKb: Math.max(0, ...runs.flat().map((e) => largestPayload(e))) / 1024,
      storeObjects: countFiles(root) - objectsBefore,
      rssFirstMb: peak(samples.filter((s) => s.t <= half)),
      rssSecondMb: peak(samples.filter((s) => s.t > half)),
      rssAtMb: [rssAt(0.1), rssAt(0.5), rssAt(1)],
      trainersSeen: Math.max(0, ...samples.map((s) => s.trainers)),
      load: `${load.toFixed(1)} → ${loadEnd.toFixed(1)}`,
      phases,
      label,
      cpu: { worker: cpuAfter.worker - cpuBefore.worker, trainers: cpuAfter.trainers - cpuBefore.trainers, server: cpuAfter.server - cpuBefore.server },
    };
  } finally {
    await worker.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function print(rows: Row[], a: Args): void {
  const f = (n: number, d = 2) => n.toFixed(d);
  console.log(`\n${a.trials}-trial random search, one epoch of ${rows[0]?.steps ?? a.steps} step(s) a trial (8-unit MLP, synthetic), continueAsNewEvery ${a.every}, one worker process`);
  console.log(`${os.cpus().length} cores; load average (1 min) at the start → end of each search in the last column\n`);
  console.log('| tree | trainer slots | maxParallel | trainers seen | wall s | s/trial | trainer s/trial | overhead s/trial | events/trial run | search events/trial | tasks/trial | search runs | max events/search run | max search run KB | carried state KB | peak RSS MB 1st / 2nd half | load |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const perTrial = r.wallS / r.trials;
    const trainer = r.trainerS / r.trials;
    // Wall time the trainers' own work does not explain: the slots work in parallel, the rest is scheduling.
    const overhead = perTrial - trainer / r.slots;
    console.log(
      `| ${r.label} | ${r.slots} | ${r.maxParallel} | ${r.trainersSeen} | ${f(r.wallS, 1)} | ${f(perTrial, 3)} | ${f(trainer, 3)} | ${f(overhead, 3)} | ${f(r.childEvents, 1)} | ${f(r.searchEvents, 1)} | ${f(r.tasks, 1)} | ${r.searchRuns} | ${r.maxRunEvents} | ${f(r.maxRunKb, 0)} | ${f(r.carriedKb, 1)} | ${f(r.rssFirstMb, 0)} / ${f(r.rssSecondMb, 0)} | ${r.load} |`,
    );
  }
  console.log('\noverhead s/trial = s/trial − trainer s/trial ÷ slots (the trainer\'s own seconds of training, checkpointing and evaluating, from the activities\' results).');
  console.log('search events/trial counts every run of the search workflow id (continue-as-new included); tasks/trial: workflow and activity tasks scheduled (trial run + its share of the search); carried state is the largest continue-as-new input.');
  console.log('\nScale figures (floor = trials finished × trainer s/trial ÷ slots; with --no-children the trainer time is not read and the floor is not shown):\n');
  console.log('| tree | slots | steps/trial | trials finished | wall s | floor s | wall ÷ floor | fixed s/trial | search runs | events/search run mean / max | largest payload KB | store objects written | worker RSS MB at 10 / 50 / 100 % | load |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const floor = Number.isNaN(r.childEvents) ? NaN : (r.finished * (r.trainerS / r.finished)) / r.slots;
    const fixed = Number.isNaN(floor) ? NaN : (r.wallS - floor) / r.finished;
    console.log(
      `| ${r.label} | ${r.slots} | ${r.steps} | ${r.finished} of ${r.trials} | ${f(r.wallS, 1)} | ${Number.isNaN(floor) ? '–' : f(floor, 1)} | ${Number.isNaN(floor) ? '–' : f(r.wallS / floor, 2)} | ${Number.isNaN(fixed) ? '–' : f(fixed, 3)} | ${r.searchRuns} | ${f(r.meanRunEvents, 0)} / ${r.maxRunEvents} | ${f(r.maxPayloadKb, 1)} | ${r.storeObjects} | ${r.rssAtMb.map((x) => f(x, 0)).join(' / ')} | ${r.load} |`,
    );
  }
}

/** One trial's timeline: the mean and median seconds of each phase over the trials read, and its share of a trial's span. */
function printTimeline(rows: Row[]): void {
  for (const r of rows) {
    const n = Math.max(0, ...[...r.phases.values()].map((v) => v.length));
    if (n === 0) continue;
    const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / n;
    const median = (v: number[]) => {
      const all = [...v, ...new Array<number>(n - v.length).fill(0)].sort((x, y) => x - y);
      return all[Math.floor(all.length / 2)]!;
    };
    const total = [...r.phases.values()].reduce((t, v) => t + mean(v), 0);
    console.log(`\nOne trial's timeline, ${r.label}, ${r.slots} slot(s), ${n} trials (seconds; each gap between two events of the trial's run charged to the event that ends it):\n`);
    console.log('| phase | mean s | median s | share |');
    console.log('|---|---|---|---|');
    for (const [k, v] of [...r.phases].sort((x, y) => mean(y[1]) - mean(x[1]))) {
      console.log(`| ${k} | ${mean(v).toFixed(3)} | ${median(v).toFixed(3)} | ${((100 * mean(v)) / total).toFixed(0)} % |`);
    }
    console.log(`| a trial's span (search command → search took its result) | ${total.toFixed(3)} | | 100 % |`);
    const per = (x: number) => (x / Math.max(1, r.finished)).toFixed(3);
    console.log(`\nCPU seconds a trial: worker main process ${per(r.cpu.worker)} (workflow tasks, activities' store work), trainers ${per(r.cpu.trainers)}, dev server ${per(r.cpu.server)}; wall ${per(r.wallS)} s a trial on ${os.cpus().length} cores.`);
  }
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
      if (a.baseline) rows.push(await measure(client, server.address, a, slots, a.baseline, `baseline ${path.basename(a.baseline)}`));
      rows.push(await measure(client, server.address, a, slots, path.join(__dirname, '..'), 'this tree'));
    }
  } finally {
    await connection.close();
    await server.stop();
    fs.rmSync(path.dirname(server.dbFile), { recursive: true, force: true });
  }
  print(rows, a);
  printTimeline(rows);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
