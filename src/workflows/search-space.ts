/**
 * Pure decision logic of hyperparameterSearch: which trials a space yields, how a trial's input
 * is built from the base, how trials rank, and the rungs of successive halving. No I/O, no clocks:
 * the same config always yields the same trials, in the same order.
 */
import { fnv1a } from '../config/fnv1a';
import { MAX_TRIALS, SEARCH_DEFAULTS, type Dimension, type SearchConfig, type SpaceEntry } from '../config/search-config';
import type { Mode } from '../config/train-config';
import { ConfigError, isObject, type JsonObject } from '../config/validate';

/** One trial's values, keyed by dotted path (JSON-safe: it is workflow state and appears in results). */
export type TrialParams = Readonly<Record<string, unknown>>;

/** Every combination of a grid, the last path varying fastest (like nested loops written in input order). */
export function gridTrials(space: readonly SpaceEntry[]): TrialParams[] {
  let trials: Array<Record<string, unknown>> = [{}];
  for (const { path, dimension } of space) {
    const values = dimension.kind === 'values' || dimension.kind === 'choice' ? dimension.values : undefined;
    if (!values) throw new Error(`grid dimension \`${path}\` has no list of values`);
    trials = trials.flatMap((t) => values.map((v) => ({ ...t, [path]: v })));
  }
  return trials;
}

/** Number of grid combinations, without building them. */
export function gridSize(space: readonly SpaceEntry[]): number {
  return space.reduce((n, s) => n * (s.dimension.kind === 'values' || s.dimension.kind === 'choice' ? s.dimension.values.length : Infinity), 1);
}

/** murmur3's finalizer over a few words: a well-mixed 32-bit hash. */
function mix(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    h = Math.imul(h ^ (w >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/**
 * A uniform draw in [0, 1) with 53 bits, a pure function of (seed, trial, path): trial n draws the
 * same values whatever maxTrials is and whichever other paths the space has.
 */
export function unitDraw(seed: number, trial: number, path: string): number {
  const p = fnv1a(path);
  const hi = mix(seed, trial, p, 1) >>> 5; // 27 bits
  const lo = mix(seed, trial, p, 2) >>> 6; // 26 bits
  return (hi * 67108864 + lo) / 9007199254740992;
}

function draw(dimension: Dimension, u: number): unknown {
  switch (dimension.kind) {
    case 'uniform':
      return dimension.lo + u * (dimension.hi - dimension.lo);
    case 'loguniform':
      return Math.exp(Math.log(dimension.lo) + u * (Math.log(dimension.hi) - Math.log(dimension.lo)));
    case 'int':
      return dimension.lo + Math.floor(u * (dimension.hi - dimension.lo + 1));
    case 'values':
    case 'choice':
      return dimension.values[Math.floor(u * dimension.values.length)];
  }
}

/** `count` random trials (1-based trial numbers feed the draws); a list of values is a uniform choice. */
export function randomTrials(space: readonly SpaceEntry[], seed: number, count: number): TrialParams[] {
  return Array.from({ length: count }, (_, i) =>
    Object.fromEntries(space.map(({ path, dimension }) => [path, draw(dimension, unitDraw(seed, i + 1, path))])),
  );
}

/** The trials a search runs, in trial order (trial-1 first). Throws ConfigError if the space is too large. */
export function planTrials(config: SearchConfig): TrialParams[] {
  const asGrid = config.strategy === 'grid' || (config.strategy === 'halving' && config.space.every((s) => s.dimension.kind === 'values'));
  if (asGrid) {
    const size = gridSize(config.space);
    const count = Math.min(size, config.maxTrials ?? size);
    if (count > MAX_TRIALS) {
      throw new ConfigError([{ field: 'space', expected: `a grid of at most ${MAX_TRIALS} trials (or set \`maxTrials\`)`, received: `${size} combinations` }], 'Invalid hyperparameterSearch input');
    }
    // Building the whole grid to cut it would be wasteful for huge grids with a small maxTrials.
    if (size <= MAX_TRIALS) return gridTrials(config.space).slice(0, count);
    return Array.from({ length: count }, (_, i) => gridTrialAt(config.space, i));
  }
  return randomTrials(config.space, config.seed, config.maxTrials ?? SEARCH_DEFAULTS.randomTrials);
}

/** The i-th (0-based) combination of a grid in gridTrials order. */
export function gridTrialAt(space: readonly SpaceEntry[], index: number): TrialParams {
  const out: Record<string, unknown> = {};
  let rest = index;
  for (let k = space.length - 1; k >= 0; k--) {
    const { path, dimension } = space[k]!;
    const values = dimension.kind === 'values' || dimension.kind === 'choice' ? dimension.values : [];
    out[path] = values[rest % values.length];
    rest = Math.floor(rest / values.length);
  }
  return Object.fromEntries(space.map((s) => [s.path, out[s.path]]));
}

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** A deep copy of `base` with each dotted path set (objects on the way are created as needed). */
export function applyParams(base: JsonObject, params: TrialParams): Record<string, unknown> {
  const out = clone(base) as Record<string, unknown>;
  for (const [path, value] of Object.entries(params)) {
    const segments = path.split('.');
    let node = out;
    for (const segment of segments.slice(0, -1)) {
      const next = node[segment];
      if (!isObject(next)) node[segment] = {};
      node = node[segment] as Record<string, unknown>;
    }
    node[segments[segments.length - 1]!] = clone(value);
  }
  return out;
}

export interface TrialRunOptions {
  /** `trial-<n>`: the trial's folder under the search's folder. */
  readonly runId: string;
  /** The search's folder, `<root>/<search runId>`: each trial writes under `<it>/<trial runId>/`. */
  readonly searchUri: string;
  /** Successive halving: the rung's epoch budget. */
  readonly maxEpochs?: number;
  /** Successive halving, later rungs: continue the trial's own run (trainModel's `resume`). */
  readonly resume?: boolean;
}

/** The trainModel input of one trial (one rung of it, for halving). */
export function trialInput(base: JsonObject, params: TrialParams, opts: TrialRunOptions): Record<string, unknown> {
  const input = applyParams(base, params);
  const checkpoint = isObject(input.checkpoint) ? { ...input.checkpoint } : {};
  checkpoint.uri = opts.searchUri;
  return {
    ...input,
    runId: opts.runId,
    checkpoint,
    ...(opts.maxEpochs !== undefined && { maxEpochs: opts.maxEpochs }),
    ...(opts.resume && { resume: true }),
  };
}

export interface Ranked {
  /** The trial number (1-based): ties are broken by it, lowest first. */
  readonly trial: number;
  /** The metric; null (not reported, or the trial failed) ranks last. */
  readonly value: number | null;
}

/** Orders trials best first: by metric in `mode`, missing or NaN metrics last, ties by trial number. */
export function compareRanked(mode: Mode): (a: Ranked, b: Ranked) => number {
  return (a, b) => {
    const av = a.value !== null && Number.isFinite(a.value) ? a.value : null;
    const bv = b.value !== null && Number.isFinite(b.value) ? b.value : null;
    if (av === null || bv === null) {
      if (av !== bv) return av === null ? 1 : -1;
    } else if (av !== bv) {
      return mode === 'min' ? av - bv : bv - av;
    }
    return a.trial - b.trial;
  };
}

export function rankTrials<T extends Ranked>(trials: readonly T[], mode: Mode): T[] {
  return [...trials].sort(compareRanked(mode));
}

/** The best `keep` trials that have a metric (a trial without one never survives). */
export function selectSurvivors<T extends Ranked>(trials: readonly T[], keep: number, mode: Mode): T[] {
  return rankTrials(trials, mode)
    .filter((t) => t.value !== null && Number.isFinite(t.value))
    .slice(0, Math.max(0, keep));
}

export interface Rung {
  /** 1-based rung number. */
  readonly rung: number;
  /** Trials that run in this rung. */
  readonly trials: number;
  /** Each trial's total epochs at the end of this rung (absolute, not additional). */
  readonly epochs: number;
}

/**
 * Successive halving's rungs: all `trials` run `minEpochs`, then the best floor(n/eta) go on with
 * eta× the epochs (capped at `maxEpochs`), until one trial is left or the budget reaches `maxEpochs`.
 */
export function halvingSchedule(trials: number, eta: number, minEpochs: number, maxEpochs: number): Rung[] {
  const rungs: Rung[] = [{ rung: 1, trials, epochs: Math.min(minEpochs, maxEpochs) }];
  for (;;) {
    const last = rungs[rungs.length - 1]!;
    const next = Math.floor(last.trials / eta);
    if (next < 1 || last.trials <= 1 || last.epochs >= maxEpochs) return rungs;
    rungs.push({ rung: last.rung + 1, trials: next, epochs: Math.min(last.epochs * eta, maxEpochs) });
  }
}

/** Short text for a trial's params, for titles and logs: `learningRate=0.01 hiddenUnits=[32]`. */
export function describeParams(params: TrialParams): string {
  return Object.entries(params)
    .map(([path, v]) => `${path.split('.').pop()}=${typeof v === 'number' ? Number(v.toPrecision(4)) : JSON.stringify(v)}`)
    .join(' ');
}

export type TrialStatus = 'pending' | 'running' | 'completed' | 'failed' | 'pruned';

/** One row of the leaderboard (and of results.json / results.csv). */
export interface TrialRow {
  /** 1-based trial number. */
  readonly trial: number;
  /** `trial-<n>`: the trial's run id and folder. */
  readonly id: string;
  readonly params: TrialParams;
  /** `pruned`: completed, but successive halving did not promote it. */
  readonly status: TrialStatus;
  /** Rung of the trial's latest run (1 for grid and random). */
  readonly rung: number;
  /** Workflow id of the trial's latest trainModel run. */
  readonly workflowId: string | null;
  /** The search metric of the trial's final model (its latest completed run), or null. */
  readonly value: number | null;
  readonly epochs: number;
  readonly step: number;
  /** How the latest trainModel run ended: completed, early-stopped, stopped. */
  readonly runStatus: string | null;
  /** `<search folder>/trial-<n>`: the trial's checkpoints, metrics and model. */
  readonly runUri: string;
  readonly modelUri: string | null;
  readonly error: string | null;
}
