/**
 * Restart latency (issue #22 point 4): an 800-step MNIST run (MLP, 8 epochs of 100 steps, a
 * checkpoint per epoch, `timeouts.heartbeatSeconds` 5) through a real dev server (src/dev-server.ts)
 * and real worker processes (src/worker.ts, as a user runs them), killed once at a seeded moment,
 * for each kind of kill on a warm and a cold worker:
 *
 *   trainer     SIGKILL of the trainer process (the worker starts a new one and retries)
 *   worker      SIGKILL of the worker's process group (worker and trainer)
 *   alone       SIGKILL of the worker process alone (its trainer orphaned: it saves and exits)
 *   server      SIGKILL of the Temporal server, started again at once on its database
 *   sigterm     SIGTERM to the worker (it stops training, commits, hands the attempt back)
 *
 * warm: a second worker process runs on the queue from the start (it has taken tasks before, so the
 * retry finds a worker polling); cold: one worker, and a new worker process is started right after
 * the kill (what a supervisor does). For the trainer and server kills the worker stays.
 *
 * Each case runs the same input twice uninterrupted (the first warms the workers, the second is the
 * reference) and once with the kill; the table gives the added wall time and its split (seconds):
 * noticed (kill to Temporal closing the attempt: the heartbeat timeout), backoff (the retry policy's
 * wait), to worker (the next attempt due until a worker starts it; cold: the new worker's start,
 * of which `w.start` is its process start to polling), trainer start (fork, modules; TensorFlow's
 * load apart), TF load, data, lease, ckpt read, first step, sticky (workflow tasks waiting in the
 * dead worker's sticky queue), and attempt→step (the new attempt's start to its first step).
 *
 *   npm run bench:restart                               # every kind, warm and cold, 1 rep
 *   npm run bench:restart -- --kinds worker,alone --modes cold --reps 3 --seed 7
 *
 * Kill moments come from --seed (default: random, printed); the moment is a fraction of the
 * reference run's time after the start. The machine's load average is printed with the table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { DevServer } from '../src/dev-server';
import { readTimeline } from '../src/training/timeline';
import { mulberry32, sleep, splitRecovery, startWorkerProcess, stickyWaits, waitForEvent, watchAttempts, type RestartSplit, type WorkerProc } from './restart-support';

const KINDS = ['trainer', 'worker', 'alone', 'server', 'sigterm'] as const;
type Kind = (typeof KINDS)[number];
const MODES = ['warm', 'cold'] as const;
type Mode = (typeof MODES)[number];

interface Args {
  kinds: Kind[];
  modes: Mode[];
  reps: number;
  seed: number;
  steps: number;
  heartbeat: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { kinds: [...KINDS], modes: [...MODES], reps: 1, seed: Math.floor(Math.random() * 2 ** 31), steps: 800, heartbeat: 5 };
  const list = <T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T[] => {
    const items = (v ?? '').split(',').map((s) => s.trim());
    for (const i of items) if (!allowed.includes(i as T)) throw new Error(`Expected \`${flag}\` to be some of ${allowed.join(', ')}, got \`${i}\``);
    return items as T[];
  };
  const whole = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`Expected \`${flag}\` to be a whole number from ${min} and up, got \`${v}\``);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[++i];
    if (a === '--kinds') args.kinds = list(a, v, KINDS);
    else if (a === '--modes') args.modes = list(a, v, MODES);
    else if (a === '--reps') args.reps = whole(a, v, 1);
    else if (a === '--seed') args.seed = whole(a, v, 0);
    else if (a === '--steps') args.steps = whole(a, v, 100);
    else if (a === '--heartbeat') args.heartbeat = whole(a, v, 1);
    else throw new Error(`Unknown argument \`${a}\` (expected --kinds, --modes, --reps, --seed, --steps, --heartbeat)`);
  }
  return args;
}

function runInput(runId: string, a: Args): Record<string, unknown> {
  return {
    runId,
    model: { name: 'mlp', params: { hiddenUnits: [128] } },
    data: { train: { name: 'mnist', split: 'train', limit: 10_000 }, eval: { name: 'mnist', split: 'test', limit: 1000 } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.001, batchSize: 64 },
    stepsPerEpoch: 100,
    maxEpochs: a.steps / 100,
    seed: 42,
    checkpoint: { everySteps: 100, everySeconds: 0, keepLast: 2 },
    timeouts: { heartbeatSeconds: a.heartbeat },
  };
}

interface Row {
  kind: Kind;
  mode: Mode;
  rep: number;
  moment: string;
  reference: number;
  faulted: number;
  split: RestartSplit;
  sticky: number;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const rand = mulberry32(a.seed);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-restart-'));
  const timeline = path.join(dir, 'timeline.jsonl');
  const checkpointRoot = pathToFileURL(path.join(dir, 'runs')).href;
  console.log(`bench:restart seed ${a.seed} (--seed ${a.seed} replays the kill moments); ${a.steps}-step MNIST MLP runs, heartbeat ${a.heartbeat} s; load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; files in ${dir}`);
  const server = await DevServer.start();
  let connection = await Connection.connect({ address: server.address });
  let client = new Client({ connection });
  const rows: Row[] = [];
  const workers: WorkerProc[] = [];
  try {
    let n = 0;
    for (const kind of a.kinds) {
      for (const mode of kind === 'trainer' || kind === 'server' ? (['warm'] as Mode[]) : a.modes) {
        for (let rep = 1; rep <= a.reps; rep++) {
          const taskQueue = `restart-${kind}-${mode}-${rep}-${process.pid}`;
          const env = { TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: 'default', DT_TASK_QUEUE: taskQueue, DT_CHECKPOINT_URI: checkpointRoot, DT_TIMELINE_FILE: timeline };
          const pids = new Set<number>();
          const start = (): WorkerProc => {
            const w = startWorkerProcess(env, path.join(dir, `worker-${++n}.log`));
            workers.push(w);
            pids.add(w.pid);
            return w;
          };
          const first = start();
          const standby = mode === 'warm' && kind !== 'trainer' && kind !== 'server' ? start() : undefined;
          const t0 = Date.now();
          await waitForEvent(timeline, 'worker-polling', first.pid, t0 - 60_000, 120_000);
          if (standby) await waitForEvent(timeline, 'worker-polling', standby.pid, t0 - 60_000, 120_000);

          const run = async (runId: string): Promise<{ seconds: number; workflowId: string; started: number }> => {
            const workflowId = `${runId}-${Date.now()}`;
            const started = Date.now();
            const handle = await client.workflow.start('trainModel', { taskQueue, workflowId, args: [runInput(runId, a)] });
            void handle;
            return { seconds: 0, workflowId, started };
          };
          const finish = async (workflowId: string): Promise<number> => {
            for (;;) {
              try {
                await client.workflow.getHandle(workflowId).result();
                const d = await client.workflow.getHandle(workflowId).describe();
                return (d.closeTime!.getTime() - d.startTime.getTime()) / 1000;
              } catch (err) {
                if ((err as Error).name === 'WorkflowFailedError') throw err;
                await sleep(300);
                // The server was restarted: reconnect.
                await connection.close().catch(() => undefined);
                connection = await Connection.connect({ address: server.address });
                client = new Client({ connection });
              }
            }
          };
          // Warm-up (loads TensorFlow in the worker that takes it), then the reference.
          await finish((await run(`warm-${kind}-${mode}-${rep}`)).workflowId);
          const reference = await finish((await run(`ref-${kind}-${mode}-${rep}`)).workflowId);

          const fraction = 0.2 + 0.5 * rand();
          const faulted = await run(`kill-${kind}-${mode}-${rep}`);
          await sleep(fraction * reference * 1000);
          const entries = readTimeline(timeline);
          const lastAttempt = [...entries].reverse().find((e) => e.event === 'attempt-start' && e.t >= faulted.started);
          const lastRequest = [...entries].reverse().find((e) => e.event === 'train-request' && e.t >= faulted.started);
          const victim = workers.find((w) => w.pid === lastAttempt?.pid) ?? first;
          const killAt = Date.now();
          const moment = `${(fraction * 100).toFixed(0)} % of the reference, during target step ${String(lastAttempt?.targetStep ?? '?')}`;
          const watch = watchAttempts(client, faulted.workflowId, killAt);
          if (kind === 'trainer') {
            if (lastRequest) process.kill(lastRequest.pid, 'SIGKILL');
          } else if (kind === 'worker') await victim.killGroup();
          else if (kind === 'alone') await victim.killAlone();
          else if (kind === 'sigterm') void victim.terminate();
          else {
            await server.kill();
            await server.restart();
          }
          if (mode === 'cold' && kind !== 'trainer' && kind !== 'server') start();
          const faultedSeconds = await finish(faulted.workflowId);
          await watch.stop();
          const split = splitRecovery(readTimeline(timeline), killAt, watch, pids);
          const sticky = await stickyWaits(client, faulted.workflowId, killAt - 1000);
          const row = { kind, mode, rep, moment, reference, faulted: faultedSeconds, split, sticky };
          rows.push(row);
          console.log(`${kind} ${mode} #${rep}: killed at ${moment}; reference ${reference.toFixed(1)} s, with the kill ${faultedSeconds.toFixed(1)} s (+${(faultedSeconds - reference).toFixed(1)} s)`);
          for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) await w.terminate(15_000);
        }
      }
    }
  } finally {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) await w.killGroup();
    await connection.close().catch(() => undefined);
    await server.stop();
  }
  printTable(rows);
  console.log(`load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end; seed ${a.seed}`);
}

function printTable(rows: readonly Row[]): void {
  const f = (v: number | undefined): string => (v === undefined ? '–' : v.toFixed(1));
  console.log('\n| kill | worker | ref s | with kill s | added s | noticed | backoff | to worker (w.start) | trainer start | TF load | data | lease | ckpt read | first step | sticky | attempt→step | resumed from |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const s = r.split;
    const toWorker = s.toWorker === undefined ? '–' : `${f(s.toWorker)}${s.workerStart === undefined ? '' : ` (${f(s.workerStart)})`}`;
    console.log(
      `| ${r.kind} | ${r.mode} | ${f(r.reference)} | ${f(r.faulted)} | ${f(r.faulted - r.reference)} | ${f(s.noticed)} | ${f(s.backoff)} | ${toWorker} | ${f(s.trainerStart)} | ${f(s.tfLoad)} | ${f(s.data)} | ${f(s.lease)} | ${f(s.checkpointRead)} | ${f(s.firstStep)} | ${f(r.sticky)} | ${f(s.attemptToStep)} | ${s.resumedFrom ?? '–'} |`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
