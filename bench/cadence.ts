/**
 * Checkpoint overhead at the cadence people use (issue #22 point 3): one trainModel run of the CNN
 * (built-in `cnn`, filters [8, 16], dense 64, on 10,000 MNIST digits, batch 32) sized to train about
 * --minutes, through a real dev server and a real worker process (src/worker.ts), with
 * `checkpoint.everySeconds` 30 and 5 against checkpoints off (everySeconds 0, everySteps 0: the one
 * checkpoint a run always writes, at its end), on file:// and on the GCS emulator (fake-gcs-server);
 * overhead % = (run − off) / off. Then the 30 s cadence again with the worker's process group
 * SIGKILLed every --kill-every seconds (a new worker process started at once, as a supervisor
 * does): work lost per fault (the kill − the last checkpoint committed before it) and the restart
 * split as in bench/restart.ts.
 *
 *   npm run bench:cadence                               # 10-minute runs: for a quiet machine (about 1 h 40 min in all)
 *   npm run bench:cadence -- --minutes 2 --kill-every 60 --no-gcs
 *
 * The step count comes from a calibration run (checkpoints off, 300 steps after a warm-up run).
 * The machine's load average is printed with the table; on a shared machine the run-to-run noise
 * is larger than the 1 % the issue asks to resolve, so read it with the load.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { DevServer } from '../src/dev-server';
import { readTimeline } from '../src/training/timeline';
import { startGcsEmulator, type GcsEmulator } from '../test/helpers/gcs-emulator';
import { sleep, splitRecovery, startWorkerProcess, waitForEvent, watchAttempts, type RestartSplit, type WorkerProc } from './restart-support';

interface Args {
  minutes: number;
  killEvery: number;
  gcs: boolean;
  cadences: number[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { minutes: 10, killEvery: 120, gcs: true, cadences: [30, 5] };
  const positive = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!(n > 0)) throw new Error(`Expected \`${flag}\` to be a number above 0, got \`${v}\``);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--no-gcs') {
      args.gcs = false;
      continue;
    }
    const v = argv[++i];
    if (a === '--minutes') args.minutes = positive(a, v);
    else if (a === '--kill-every') args.killEvery = positive(a, v);
    else if (a === '--cadences') args.cadences = (v ?? '').split(',').map((s) => positive(a, s));
    else throw new Error(`Unknown argument \`${a}\` (expected --minutes, --kill-every, --cadences, --no-gcs)`);
  }
  return args;
}

const BUCKET = 'dt-cadence';

function runInput(runId: string, steps: number, everySeconds: number, uri: string): Record<string, unknown> {
  return {
    runId,
    model: { name: 'cnn', params: { filters: [8, 16], denseUnits: [64] } },
    data: { train: { name: 'mnist', split: 'train', limit: 10_000 }, eval: { name: 'mnist', split: 'test', limit: 1000 } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.001, batchSize: 32 },
    stepsPerEpoch: steps,
    maxEpochs: 1,
    seed: 42,
    checkpoint: { uri, everySteps: 0, everySeconds, keepLast: 2 },
    timeouts: { heartbeatSeconds: 5 },
  };
}

interface Fault {
  killAt: number;
  lostSeconds: number | undefined;
  split: RestartSplit;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-bench-cadence-'));
  const timeline = path.join(dir, 'timeline.jsonl');
  const load = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`bench:cadence ${a.minutes}-minute CNN runs, cadences ${a.cadences.join(', ')} s vs off, SIGKILL every ${a.killEvery} s; load ${load()}; files in ${dir}`);
  const server = await DevServer.start();
  const emu: GcsEmulator | undefined = a.gcs ? await startGcsEmulator({ buckets: [BUCKET] }) : undefined;
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const taskQueue = `cadence-${process.pid}`;
  const env = {
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_NAMESPACE: 'default',
    DT_TASK_QUEUE: taskQueue,
    DT_CHECKPOINT_URI: pathToFileURL(path.join(dir, 'runs')).href,
    DT_ALLOWED_URIS: `gs://${BUCKET}`,
    DT_TIMELINE_FILE: timeline,
    ...(emu && { STORAGE_EMULATOR_HOST: emu.endpoint }),
  };
  const workers: WorkerProc[] = [];
  let n = 0;
  const startWorker = async (): Promise<WorkerProc> => {
    const w = startWorkerProcess(env, path.join(dir, `worker-${++n}.log`));
    workers.push(w);
    await waitForEvent(timeline, 'worker-polling', w.pid, 0, 120_000);
    return w;
  };
  let worker = await startWorker();
  const stores = [{ name: 'file://', uri: pathToFileURL(path.join(dir, 'runs')).href }, ...(emu ? [{ name: 'gs:// (emulator)', uri: `gs://${BUCKET}/runs` }] : [])];
  let id = 0;
  const run = async (steps: number, everySeconds: number, uri: string, during?: (workflowId: string, started: number) => Promise<void>): Promise<number> => {
    const workflowId = `cadence-${++id}-${Date.now()}`;
    const handle = await client.workflow.start('trainModel', { taskQueue, workflowId, args: [runInput(`run-${id}`, steps, everySeconds, `${uri}/run-${id}`)] });
    const started = Date.now();
    const pending = handle.result();
    if (during) await during(workflowId, started);
    await pending;
    const d = await handle.describe();
    return (d.closeTime!.getTime() - d.startTime.getTime()) / 1000;
  };
  try {
    // Calibration: steps per second with checkpoints off, from two run lengths (a run's fixed part,
    // data loading, evaluation and export, cancels out), after a warm-up.
    await run(100, 0, stores[0]!.uri);
    const short = await run(300, 0, stores[0]!.uri);
    const long = await run(1200, 0, stores[0]!.uri);
    const rate = 900 / Math.max(0.5, long - short);
    const steps = Math.max(300, Math.round(rate * a.minutes * 60));
    console.log(`calibration: 300 steps in ${short.toFixed(1)} s, 1200 in ${long.toFixed(1)} s (${rate.toFixed(0)} steps/s); runs of ${steps} steps (load ${load()})`);

    const rows: { store: string; off: number; offSpread: number; with: { every: number; seconds: number; checkpoints: number }[]; load: string }[] = [];
    for (const store of stores) {
      const offBefore = await run(steps, 0, store.uri);
      const measured: { every: number; seconds: number; checkpoints: number }[] = [];
      for (const every of a.cadences) {
        const mark = readTimeline(timeline).length;
        const seconds = await run(steps, every, store.uri);
        const checkpoints = readTimeline(timeline).slice(mark).filter((e) => e.event === 'checkpoint').length;
        measured.push({ every, seconds, checkpoints });
        console.log(`${store.name} every ${every} s: ${seconds.toFixed(1)} s vs off ${offBefore.toFixed(1)} s before, ${checkpoints} checkpoints (load ${load()})`);
      }
      // Off again after the cadences: the two off runs show the machine's drift and noise.
      const offAfter = await run(steps, 0, store.uri);
      const off = (offBefore + offAfter) / 2;
      console.log(`${store.name} off: ${offBefore.toFixed(1)} s before, ${offAfter.toFixed(1)} s after (load ${load()})`);
      rows.push({ store: store.name, off, offSpread: Math.abs(offAfter - offBefore), with: measured, load: load() });
    }

    // SIGKILL every killEvery seconds at the first cadence.
    const faultRows: { store: string; seconds: number; reference: number; faults: Fault[] }[] = [];
    const every = a.cadences[0]!;
    for (const store of stores) {
      const reference = rows.find((r) => r.store === store.name)!.with.find((w) => w.every === every)!.seconds;
      const faults: Fault[] = [];
      const seconds = await run(steps, every, store.uri, async (workflowId, started) => {
        for (let k = 1; ; k++) {
          const at = started + k * a.killEvery * 1000;
          // Stop killing once the run is in its last 15 s (it would end before the kill lands).
          if (at > started + (reference - 15) * 1000) return;
          while (Date.now() < at) await sleep(200);
          const killAt = Date.now();
          const lastCommit = readTimeline(timeline).filter((e) => e.event === 'checkpoint' && e.t >= started && e.t <= killAt).pop();
          const watch = watchAttempts(client, workflowId, killAt);
          await worker.killGroup();
          worker = await startWorker();
          await waitForEvent(timeline, 'first-step', undefined, killAt, 180_000);
          await watch.stop();
          faults.push({ killAt, lostSeconds: lastCommit ? (killAt - lastCommit.t) / 1000 : undefined, split: splitRecovery(readTimeline(timeline), killAt, watch, new Set(workers.map((w) => w.pid))) });
        }
      });
      faultRows.push({ store: store.name, seconds, reference, faults });
      console.log(`${store.name} every ${every} s with ${faults.length} SIGKILLs: ${seconds.toFixed(1)} s vs ${reference.toFixed(1)} s without (load ${load()})`);
    }
    printTables(rows, faultRows, a, steps);
  } finally {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) await w.killGroup();
    await connection.close().catch(() => undefined);
    await server.stop();
    await emu?.dispose();
  }
  console.log(`load ${load()} at the end`);
}

function printTables(
  rows: readonly { store: string; off: number; offSpread: number; with: readonly { every: number; seconds: number; checkpoints: number }[]; load: string }[],
  faultRows: readonly { store: string; seconds: number; reference: number; faults: readonly Fault[] }[],
  a: Args,
  steps: number,
): void {
  const f = (v: number | undefined, d = 1): string => (v === undefined ? '–' : v.toFixed(d));
  console.log(`\nCNN, ${steps} steps (about ${a.minutes} min), seconds per run and overhead against checkpoints off:`);
  console.log(`| store | off s (mean of before and after ± half their gap) | ${a.cadences.map((c) => `every ${c} s: s (checkpoints) | overhead`).join(' | ')} | load after |`);
  console.log(`|---|---:|${a.cadences.map(() => '---:|---:').join('|')}|---|`);
  for (const r of rows) {
    console.log(`| ${r.store} | ${f(r.off)} ± ${f(r.offSpread / 2)} | ${r.with.map((w) => `${f(w.seconds)} (${w.checkpoints}) | ${f(((w.seconds - r.off) / r.off) * 100, 2)} %`).join(' | ')} | ${r.load} |`);
  }
  console.log(`\nEvery ${a.cadences[0]} s with the worker's process group SIGKILLed every ${a.killEvery} s (a new worker started at once):`);
  console.log('| store | faults | run s | without s | added per fault s | work lost per fault s | noticed | backoff | to worker (w.start) | trainer start | TF load | data | lease | ckpt read | first step | attempt→step |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of faultRows) {
    const k = r.faults.length;
    const mean = (pick: (x: Fault) => number | undefined): number | undefined => {
      const xs = r.faults.map(pick).filter((x): x is number => x !== undefined);
      return xs.length === 0 ? undefined : xs.reduce((s, x) => s + x, 0) / xs.length;
    };
    const toWorker = mean((x) => x.split.toWorker);
    const ws = mean((x) => x.split.workerStart);
    console.log(
      `| ${r.store} | ${k} | ${f(r.seconds)} | ${f(r.reference)} | ${k ? f((r.seconds - r.reference) / k) : '–'} | ${f(mean((x) => x.lostSeconds))} | ${f(mean((x) => x.split.noticed))} | ${f(mean((x) => x.split.backoff))} | ${f(toWorker)}${ws === undefined ? '' : ` (${f(ws)})`} | ${f(mean((x) => x.split.trainerStart))} | ${f(mean((x) => x.split.tfLoad))} | ${f(mean((x) => x.split.data))} | ${f(mean((x) => x.split.lease))} | ${f(mean((x) => x.split.checkpointRead))} | ${f(mean((x) => x.split.firstStep))} | ${f(mean((x) => x.split.attemptToStep))} |`,
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
