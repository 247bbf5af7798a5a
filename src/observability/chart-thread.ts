/**
 * Charts rendered on a worker thread, never on the event loop that heartbeats activities and runs
 * workflow tasks: Vega's layout and resvg's rasterizing are synchronous work of 0.1–1 s a chart.
 * One thread per process, started on the first chart and unref'd (it never keeps a process
 * alive); a thread that dies or passes the deadline is ended and the next chart starts another.
 * A small hand-written client rather than a pool library (piscina): one thread, rare requests.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ChartReply, ChartRequest } from './chart-worker';
import type { TopLevelSpec } from './charts';

/** Longest one chart may take before its thread is ended and the render fails (a fault: retried). */
export const CHART_DEADLINE_MS = 120_000;

interface Pending {
  resolve(reply: Extract<ChartReply, { ok: true }>): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

let thread: Worker | undefined;
let nextId = 1;
const pending = new Map<number, Pending>();

function failAll(err: Error): void {
  for (const [id, p] of pending) {
    clearTimeout(p.timer);
    pending.delete(id);
    p.reject(err);
  }
}

function chartThread(): Worker {
  if (thread) return thread;
  const ext = path.extname(__filename);
  const entry = path.join(__dirname, `chart-worker${ext}`);
  // From the sources (tests, tsx): the thread registers tsx itself (Node 20 applies no --import to a worker's entry).
  const worker = ext === '.ts' ? new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(entry)});`, { eval: true }) : new Worker(entry);
  worker.unref();
  worker.on('message', (reply: ChartReply) => {
    const p = pending.get(reply.id);
    if (!p) return;
    pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.ok) p.resolve(reply);
    else p.reject(new Error(`Rendering a chart failed: ${reply.error}`));
  });
  const gone = (why: string) => {
    if (thread === worker) thread = undefined;
    failAll(new Error(`The chart rendering thread ${why}`));
  };
  worker.on('error', (err) => gone(`failed: ${err.message}`));
  worker.on('exit', (code) => gone(`exited (code ${code})`));
  return (thread = worker);
}

/** Renders `spec` to SVG (and PNG at `pngWidth` pixels, when given) on the chart thread. */
export async function renderChart(spec: TopLevelSpec, pngWidth?: number): Promise<{ svg: string; png?: Buffer }> {
  const worker = chartThread();
  const id = nextId++;
  // A request in flight keeps the process up until it is answered; an idle thread does not.
  worker.ref();
  try {
    const reply = await new Promise<Extract<ChartReply, { ok: true }>>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`Rendering a chart took over ${CHART_DEADLINE_MS / 1000} s: its thread was ended`));
        if (thread === worker) thread = undefined;
        void worker.terminate();
      }, CHART_DEADLINE_MS);
      pending.set(id, { resolve, reject, timer });
      const request: ChartRequest = { id, spec, ...(pngWidth !== undefined && { pngWidth }) };
      worker.postMessage(request);
    });
    return { svg: reply.svg, ...(reply.png && { png: Buffer.from(reply.png.buffer, reply.png.byteOffset, reply.png.byteLength) }) };
  } finally {
    if (pending.size === 0) worker.unref();
  }
}

/** The thread's id while it runs (tests: it is not the main thread). */
export function chartThreadId(): number | undefined {
  return thread?.threadId;
}
