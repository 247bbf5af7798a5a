/**
 * Training throughput, side by side, in one run: every route in bench/routes/ on the same model,
 * data (MNIST), Adam, batch size and backend. Prints one table (steps/s per route; the ratios of
 * trainModel to its limit, the bare loop, and to Keras; history events and checkpoint cost per
 * epoch of trainModel), each ratio and event count beside its goal (issue 13) marked met or NOT
 * met, and the notes behind each number.
 *
 *   npm run bench                      # MLP and CNN at batch 128 and 1024 (about 5 min on 2 cores)
 *   npm run bench -- --quick           # a fifth of the steps (about 1-2 min)
 *   npx tsx bench/run.ts --models mlp --batches 128 --routes tfjs-bare,temporal
 *
 * A route is a file in bench/routes/ exporting a BenchRoute (bench/route.ts) as `default` or
 * `route`; new files are picked up without touching this one. DT_BACKEND picks the backend as
 * for the worker; DT_PYTHON a Python with TensorFlow for the Keras route.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODEL_LABEL } from './models';
import type { BenchModel, BenchRoute, Measurement } from './route';

/** Routes the ratios are about, and the order of the columns; any other route follows, by file name. */
const BARE = 'tfjs-bare';
const TEMPORAL = 'temporal';
const KERAS = 'keras';
/** The product on the graph route: its ratio to Keras is the graph route's claim. */
const TEMPORAL_GRAPH = 'temporal-savedmodel';
/** The graph route bare (the SavedModel's train step in a loop): the limit of (5). */
const GRAPH_BARE = 'savedmodel';
const ORDER = [BARE, 'tfjs-trainer', TEMPORAL, KERAS];
/** Column labels: the issue's (1) limit, (2) product, (3) reference; the engine alone sits at 1b. */
const LABELS: Record<string, string> = { [BARE]: '1', 'tfjs-trainer': '1b', [TEMPORAL]: '2', [KERAS]: '3' };

/**
 * The ratio columns, `a`/`b` in steps/s, each with the goal of issue 13 beside it (`batch`: the
 * goal holds at that batch size only; the ratio is shown at the others without one).
 */
const RATIOS: ReadonlyArray<{ a: string; b: string; goal: number; batch?: number }> = [
  { a: TEMPORAL, b: BARE, goal: 0.97 },
  { a: TEMPORAL, b: KERAS, goal: 0.5, batch: 128 },
  { a: TEMPORAL_GRAPH, b: GRAPH_BARE, goal: 0.9 },
  { a: TEMPORAL_GRAPH, b: KERAS, goal: 1.3 },
];
/** History events one more epoch adds to a trainModel run: at most this many. */
const EVENTS_PER_EPOCH_GOAL = 12;
const verdict = (met: boolean): string => (met ? 'met' : 'NOT met');

/** Timed steps per case: each route spends roughly 5-30 s on each on a 2-core machine. */
const STEPS: Record<string, number> = { 'mlp/128': 2400, 'mlp/1024': 480, 'cnn/128': 480, 'cnn/1024': 64 };

interface Args {
  quick: boolean;
  models: BenchModel[];
  batches: number[];
  routes: string[] | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, models: ['mlp', 'cnn'], batches: [128, 1024], routes: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`Expected a value after \`${a}\``);
      return v;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--models') {
      const models = value().split(',');
      for (const m of models) if (m !== 'mlp' && m !== 'cnn') throw new Error(`Expected \`--models\` from mlp, cnn, got \`${m}\``);
      args.models = models as BenchModel[];
    } else if (a === '--batches') {
      args.batches = value().split(',').map(Number);
      if (!args.batches.every((b) => Number.isInteger(b) && b > 0)) throw new Error(`Expected \`--batches\` to be whole numbers from 1 and up`);
    } else if (a === '--routes') args.routes = value().split(',');
    else throw new Error(`Unknown argument \`${a}\` (expected --quick, --models, --batches, --routes)`);
  }
  return args;
}

async function loadRoutes(filter: string[] | undefined): Promise<Array<{ id: string; route: BenchRoute }>> {
  const dir = path.join(__dirname, 'routes');
  const ids = fs
    .readdirSync(dir)
    .filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.replace(/\.(ts|js)$/, ''))
    .filter((id) => !filter || filter.includes(id));
  const rank = (id: string): number => (ORDER.includes(id) ? ORDER.indexOf(id) : ORDER.length);
  ids.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const routes: Array<{ id: string; route: BenchRoute }> = [];
  for (const id of ids) {
    const mod = (await import(path.join(dir, id))) as { default?: BenchRoute; route?: BenchRoute };
    // tsx/CommonJS may nest the default export one level down.
    const route = mod.route ?? (mod.default as { default?: BenchRoute } | undefined)?.default ?? mod.default;
    if (!route?.measure) throw new Error(`bench/routes/${id} exports no route (expected \`export default { name, available, measure }\`)`);
    routes.push({ id, route });
  }
  return routes;
}

const load = (): string => os.loadavg().map((l) => l.toFixed(2)).join(' ');
const fmt = (m: Measurement | undefined): string => (m ? `${(1000 / m.msPerStep).toFixed(1)} (${m.msPerStep.toFixed(2)} ms)` : '—');

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const routes = await loadRoutes(args.routes);
  const cpus = os.cpus();
  console.log(`durable-train bench: ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, ${os.platform()} ${os.arch()}`);
  console.log(`load average at start: ${load()}${args.quick ? ' (--quick: a fifth of the steps)' : ''}`);
  const usable: typeof routes = [];
  for (const r of routes) {
    const ok = await r.route.available();
    if (ok === true) usable.push(r);
    else console.log(`route ${r.id} (${r.route.name}): SKIPPED: ${ok}`);
  }

  const results = new Map<string, Map<string, Measurement | Error>>();
  const notes = new Map<string, Set<string>>();
  const cases: Array<{ model: BenchModel; batchSize: number; steps: number }> = [];
  for (const model of args.models) {
    for (const batchSize of args.batches) {
      const full = STEPS[`${model}/${batchSize}`] ?? Math.max(20, Math.round((model === 'mlp' ? 150_000 : 30_000) / batchSize));
      cases.push({ model, batchSize, steps: Math.max(5, Math.round(args.quick ? full / 5 : full)) });
    }
  }
  try {
    for (const c of cases) {
      const key = `${c.model}/${c.batchSize}`;
      const row = new Map<string, Measurement | Error>();
      results.set(key, row);
      for (const { id, route } of usable) {
        process.stderr.write(`[bench] ${key}, ${c.steps} steps: ${route.name} ... `);
        try {
          const m = await route.measure(c);
          row.set(id, m);
          if (m.note) (notes.get(id) ?? notes.set(id, new Set()).get(id)!).add(m.note);
          process.stderr.write(`${m.msPerStep.toFixed(2)} ms/step\n`);
        } catch (err) {
          row.set(id, err as Error);
          process.stderr.write(`FAILED: ${(err as Error).message}\n`);
        }
      }
    }
  } finally {
    for (const { route } of usable) await route.close?.().catch((err: Error) => console.error(`closing ${route.name}: ${err.message}`));
  }

  console.log(`load average at end: ${load()}`);
  console.log('');
  let extra = 4;
  const cols = usable.map((u) => {
    const n = LABELS[u.id] ?? String(extra++);
    return { ...u, n, label: `(${n}) ${u.route.name}` };
  });
  const num = (id: string): string => cols.find((c) => c.id === id)?.n ?? '?';
  const header = ['model', 'batch', 'steps', ...cols.map((c) => `${c.label}: steps/s (ms/step)`)];
  const haveRoute = (id: string): boolean => cols.some((c) => c.id === id);
  const ratios = RATIOS.filter((r) => haveRoute(r.a) && haveRoute(r.b));
  for (const r of ratios) header.push(`(${num(r.a)})/(${num(r.b)}) steps/s, goal ≥ ${r.goal}${r.batch ? ` at batch ${r.batch}` : ''}`);
  // Per trainModel route: history events per epoch and the checkpoint cost (from what its measurements carry).
  const measured = (pick: (m: Measurement) => number | undefined) =>
    cols.filter((c) =>
      [...results.values()].some((row) => {
        const v = row.get(c.id);
        return v !== undefined && !(v instanceof Error) && pick(v) !== undefined;
      }),
    );
  const eventCols = measured((m) => m.eventsPerEpoch);
  const checkpointCols = measured((m) => m.checkpointMs);
  for (const c of eventCols) header.push(`(${c.n}) history events/epoch, goal ≤ ${EVENTS_PER_EPOCH_GOAL}`);
  for (const c of checkpointCols) header.push(`(${c.n}) checkpoint ms/epoch (MB/s)`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map((_, i) => (i < 3 ? '---' : '---:')).join('|')}|`);
  for (const c of cases) {
    const row = results.get(`${c.model}/${c.batchSize}`)!;
    const get = (id: string): Measurement | undefined => {
      const v = row.get(id);
      return v && !(v instanceof Error) ? v : undefined;
    };
    const cells = [MODEL_LABEL[c.model], String(c.batchSize), String(c.steps), ...cols.map((col) => (row.get(col.id) instanceof Error ? 'failed' : fmt(get(col.id))))];
    for (const r of ratios) {
      const x = get(r.a);
      const y = get(r.b);
      if (!x || !y) {
        cells.push('—');
        continue;
      }
      const ratio = y.msPerStep / x.msPerStep;
      const applies = r.batch === undefined || r.batch === c.batchSize;
      cells.push(`${ratio.toFixed(3)}${applies ? ` ${verdict(ratio >= r.goal)}` : ''}`);
    }
    for (const col of eventCols) {
      const e = get(col.id)?.eventsPerEpoch;
      cells.push(e === undefined ? '—' : `${Number(e.toFixed(1))} ${verdict(e <= EVENTS_PER_EPOCH_GOAL)}`);
    }
    for (const col of checkpointCols) {
      const m = get(col.id);
      cells.push(m?.checkpointMs === undefined ? '—' : `${m.checkpointMs.toFixed(0)} (${(m.checkpointMBps ?? 0).toFixed(0)})`);
    }
    console.log(`| ${cells.join(' | ')} |`);
  }
  console.log('');
  for (const col of cols) {
    for (const n of notes.get(col.id) ?? []) console.log(`(${num(col.id)}) ${n}`);
    for (const [key, row] of results) {
      const v = row.get(col.id);
      if (v instanceof Error) console.log(`(${num(col.id)}) ${key} failed: ${v.message}`);
      else if (v?.breakdown) console.log(`(${num(col.id)}) ${v.breakdown}`);
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
