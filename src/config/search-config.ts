/**
 * The `hyperparameterSearch` input: plain JSON, validated field by field before any trial starts.
 * Pure code (the workflow runs it); the strategies themselves are in workflows/search/.
 */
import { MAX_NAME_LENGTH } from './bounds';
import { autoMode, type Mode } from './train-config';
import { Checker, checkPathSegment, describe, isObject, type ConfigIssue, type JsonObject } from './validate';

/** Which of the shared input fields a strategy takes (its implementation: src/workflows/search/<name>.ts). */
export interface StrategyOptions {
  /** The space may hold distributions (else lists of values only). */
  readonly distributions: boolean;
  /** It draws at random: takes `seed`. */
  readonly seed: boolean;
  /** Runs trials in rungs: takes `eta` and `minEpochs` (required), and needs `base.maxEpochs`. */
  readonly rungs: boolean;
  /** Trains a population in rounds: takes `roundEpochs` (required) and `quantile`, and needs `base.maxEpochs`. */
  readonly rounds: boolean;
}

/** Every strategy's name and input options: one line each, beside its entry in workflows/search/index.ts. */
export const STRATEGY_OPTIONS = {
  grid: { distributions: false, seed: false, rungs: false, rounds: false },
  random: { distributions: true, seed: true, rungs: false, rounds: false },
  halving: { distributions: true, seed: true, rungs: true, rounds: false },
  asha: { distributions: true, seed: true, rungs: true, rounds: false },
  pbt: { distributions: true, seed: true, rungs: false, rounds: true },
} as const satisfies Readonly<Record<string, StrategyOptions>>;

export type SearchStrategy = keyof typeof STRATEGY_OPTIONS;
/** The strategy names a search config accepts (the searcher/scheduler pairs are workflows/search STRATEGIES). */
export const STRATEGY_NAMES = Object.keys(STRATEGY_OPTIONS) as readonly SearchStrategy[];

const named = (names: readonly string[], and: string): string =>
  names.map((n) => `\`${n}\``).reduce((text, n, i) => (i === 0 ? n : i === names.length - 1 ? `${text} ${and} ${n}` : `${text}, ${n}`), '');
const strategiesWith = (option: keyof StrategyOptions): SearchStrategy[] => STRATEGY_NAMES.filter((s) => STRATEGY_OPTIONS[s][option]);

/** How one dotted path is searched: a list of values (grid), or a distribution (random). */
export type Dimension =
  | { readonly kind: 'values'; readonly values: readonly unknown[] }
  | { readonly kind: 'uniform'; readonly lo: number; readonly hi: number }
  | { readonly kind: 'loguniform'; readonly lo: number; readonly hi: number }
  | { readonly kind: 'int'; readonly lo: number; readonly hi: number }
  | { readonly kind: 'choice'; readonly values: readonly unknown[] };

export interface SpaceEntry {
  /** Dotted path into the trainModel input, e.g. `hyperparameters.learningRate`. */
  readonly path: string;
  readonly dimension: Dimension;
}

/** The validated input with every default filled in. */
export interface SearchConfig {
  /** Folder of the search under the checkpoint root. Default: the workflow id. */
  readonly runId?: string;
  /** A trainModel input every trial starts from (validated again per trial). */
  readonly base: JsonObject;
  /** In input order: grid trials vary the last path fastest. */
  readonly space: readonly SpaceEntry[];
  readonly strategy: SearchStrategy;
  readonly seed: number;
  /** At most this many trials (a grid: its first ones in grid order; random draws: default 10). */
  readonly maxTrials: number | undefined;
  readonly maxParallel: number;
  readonly metric: string;
  readonly mode: Mode;
  /** Failed trials tolerated; one more fails the search. Undefined: any number (the search fails only if no trial succeeds). */
  readonly failureBudget: number | undefined;
  /** Strategies with rungs: keep the best 1/eta of each rung, give survivors eta× the epochs. */
  readonly eta: number;
  /** Strategies with rungs: epochs of the first rung. */
  readonly minEpochs: number | undefined;
  /** Continue as new after this many trial runs were started (0: only when the server suggests it). */
  readonly continueAsNewEvery: number;
  /** Strategies with rounds (PBT): epochs of one round; the population exploits and explores after each. */
  readonly roundEpochs: number | undefined;
  /** Strategies with rounds: the bottom fraction that copies a trial of the top fraction. */
  readonly quantile: number;
}

export type SearchInput = { readonly [key: string]: unknown };

export const SEARCH_DEFAULTS = {
  strategy: 'grid' as SearchStrategy,
  seed: 1,
  maxParallel: 1,
  metric: 'val_loss',
  eta: 3,
  randomTrials: 10,
  continueAsNewEvery: 0,
  quantile: 0.25,
} as const;

/**
 * Largest number of trials one search may run. A search keeps its trial rows in its log
 * (docs/search-log.md) and carries only live trials and counters through continue-as-new, so grid
 * and random searches have constant state; strategies whose state grows with the trials (ASHA,
 * halving, PBT) have their own, lower bound, checked at a search's start (workflows/search/start.ts).
 */
export const MAX_TRIALS = 1_000_000;

const FIELDS = [
  'runId', 'base', 'space', 'strategy', 'seed', 'maxTrials', 'maxParallel', 'metric', 'mode', 'failureBudget', 'eta', 'minEpochs',
  'continueAsNewEvery', 'roundEpochs', 'quantile',
] as const;

/** Fields of a trial's input that the search itself sets: searching over them makes no sense. */
const RESERVED_PATHS = ['runId', 'checkpoint.uri'];
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'prototype', 'constructor']);

function checkRange(c: Checker, field: string, value: unknown, opts: { integer?: boolean; positive?: boolean }): [number, number] | undefined {
  const expected = `[lo, hi] with ${opts.integer ? 'whole numbers' : 'finite numbers'}${opts.positive ? ' greater than 0' : ''} and lo ${opts.integer ? '<=' : '<'} hi`;
  if (!Array.isArray(value) || value.length !== 2) return c.fail(field, expected, value);
  const [lo, hi] = value as unknown[];
  const ok =
    typeof lo === 'number' && typeof hi === 'number' && Number.isFinite(lo) && Number.isFinite(hi) &&
    (opts.integer ? Number.isInteger(lo) && Number.isInteger(hi) && lo <= hi : lo < hi) &&
    (!opts.positive || lo > 0);
  if (!ok) return c.fail(field, expected, value);
  return [lo as number, hi as number];
}

function checkDimension(c: Checker, field: string, value: unknown): Dimension | undefined {
  if (Array.isArray(value)) {
    if (value.length === 0) return c.fail(field, 'a non-empty list of values or a distribution', value);
    return { kind: 'values', values: value };
  }
  const kinds = ['uniform', 'loguniform', 'int', 'choice'] as const;
  const expected = 'a list of values, or one of { "uniform": [lo, hi] }, { "loguniform": [lo, hi] }, { "int": [lo, hi] }, { "choice": [...] }';
  if (!isObject(value) || Object.keys(value).length !== 1 || !(kinds as readonly string[]).includes(Object.keys(value)[0]!)) {
    return c.fail(field, expected, value);
  }
  const kind = Object.keys(value)[0] as (typeof kinds)[number];
  const arg = value[kind];
  if (kind === 'choice') {
    if (!Array.isArray(arg) || arg.length === 0) return c.fail(`${field}.choice`, 'a non-empty list of values', arg);
    return { kind, values: arg };
  }
  const range = checkRange(c, `${field}.${kind}`, arg, { integer: kind === 'int', positive: kind === 'loguniform' });
  return range && { kind, lo: range[0], hi: range[1] };
}

/** Checks a dotted path's syntax and that it walks through objects of `base` (missing objects are fine). */
function checkPath(c: Checker, field: string, path: string, base: JsonObject): boolean {
  const segments = path.split('.');
  if (segments.some((s) => s.length === 0 || FORBIDDEN_SEGMENTS.has(s))) {
    c.fail(field, 'a dotted path of field names, e.g. `hyperparameters.learningRate`', path);
    return false;
  }
  if (RESERVED_PATHS.some((r) => path === r || path.startsWith(`${r}.`))) {
    c.fail(field, `a path other than ${RESERVED_PATHS.map((r) => `\`${r}\``).join(', ')} (the search sets them per trial)`, path);
    return false;
  }
  let node: unknown = base;
  for (const [i, segment] of segments.slice(0, -1).entries()) {
    if (!isObject(node)) {
      c.fail(field, `a path through objects (\`${segments.slice(0, i).join('.')}\` is not an object in \`base\`)`, path);
      return false;
    }
    node = node[segment];
    if (node === undefined) return true;
  }
  if (!isObject(node)) {
    c.fail(field, `a path through objects (\`${segments.slice(0, -1).join('.')}\` is not an object in \`base\`)`, path);
    return false;
  }
  return true;
}

/** Validates a `hyperparameterSearch` input and fills in defaults. Throws ConfigError naming every bad field. */
export function parseSearchConfig(input: unknown): SearchConfig {
  const c = new Checker();
  const o = c.object('input', input);
  if (!o) {
    c.throwIfAny('Invalid hyperparameterSearch input');
    throw new Error('unreachable');
  }
  c.noUnknownKeys('', o, FIELDS);
  const runId = o.runId === undefined ? undefined : checkPathSegment(c, 'runId', o.runId);
  const base = c.object('base', o.base);
  if (base && base.runId !== undefined) c.fail('base.runId', 'absent (each trial runs as `trial-<n>`)', base.runId);
  const strategy = c.oneOf('strategy', o.strategy, STRATEGY_NAMES, SEARCH_DEFAULTS.strategy) ?? SEARCH_DEFAULTS.strategy;

  const space: SpaceEntry[] = [];
  const spaceObj = c.object('space', o.space);
  if (spaceObj) {
    if (Object.keys(spaceObj).length === 0) c.fail('space', 'an object with at least one dotted path', spaceObj);
    for (const [path, value] of Object.entries(spaceObj)) {
      const field = `space.${path}`;
      if (base && !checkPath(c, field, path, base)) continue;
      const dimension = checkDimension(c, field, value);
      if (!dimension) continue;
      if (!STRATEGY_OPTIONS[strategy].distributions && dimension.kind !== 'values') {
        c.fail(field, `a list of values (the \`${strategy}\` strategy takes no distributions; use ${named(strategiesWith('distributions'), 'or')})`, value);
        continue;
      }
      space.push({ path, dimension });
    }
    const paths = space.map((s) => s.path);
    for (const p of paths) {
      const ancestor = paths.find((q) => p.startsWith(`${q}.`));
      if (ancestor) c.fail(`space.${p}`, `a path that is not inside another searched path (\`${ancestor}\`)`, p);
    }
  }

  const seed = c.number('seed', o.seed, { integer: true, min: 1, max: 2 ** 31 - 1, fallback: SEARCH_DEFAULTS.seed }) ?? SEARCH_DEFAULTS.seed;
  const maxTrials = c.number('maxTrials', o.maxTrials, { integer: true, min: 1, max: MAX_TRIALS, optional: true });
  const maxParallel = c.number('maxParallel', o.maxParallel, { integer: true, min: 1, max: 1000, fallback: SEARCH_DEFAULTS.maxParallel }) ?? 1;
  let metric = c.string('metric', o.metric, { required: false }) ?? SEARCH_DEFAULTS.metric;
  if (metric.length > MAX_NAME_LENGTH) metric = c.fail('metric', `a metric name of at most ${MAX_NAME_LENGTH} characters`, metric) ?? metric;
  const modeIn = c.oneOf('mode', o.mode, ['min', 'max', 'auto'] as const, 'auto') ?? 'auto';
  const failureBudget = c.number('failureBudget', o.failureBudget, { integer: true, min: 0, max: MAX_TRIALS, optional: true });
  const eta = c.number('eta', o.eta, { integer: true, min: 2, max: 100, fallback: SEARCH_DEFAULTS.eta }) ?? SEARCH_DEFAULTS.eta;
  let minEpochs: number | undefined;
  if (STRATEGY_OPTIONS[strategy].rungs) {
    minEpochs = c.number('minEpochs', o.minEpochs, { integer: true, min: 1 });
    // The last rung's budget: required here even though trainModel would reject its absence anyway.
    const maxEpochs = base && c.number('base.maxEpochs', base.maxEpochs, { integer: true, min: 1 });
    if (minEpochs !== undefined && maxEpochs !== undefined && minEpochs > maxEpochs) {
      c.fail('minEpochs', `a whole number at most \`base.maxEpochs\` (${maxEpochs}), the budget of the last rung`, minEpochs);
    }
    if (space.some((s) => s.path === 'maxEpochs')) c.fail('space.maxEpochs', `absent with \`${strategy}\` (the rungs set each trial's epochs)`, 'maxEpochs');
  } else {
    const withRungs = strategiesWith('rungs');
    const only = `absent (only the ${named(withRungs, 'and')} ${withRungs.length === 1 ? 'strategy has' : 'strategies have'} rungs)`;
    if (o.minEpochs !== undefined) c.fail('minEpochs', only, o.minEpochs);
    if (o.eta !== undefined) c.fail('eta', only, o.eta);
  }
  let roundEpochs: number | undefined;
  let quantile: number = SEARCH_DEFAULTS.quantile;
  if (STRATEGY_OPTIONS[strategy].rounds) {
    roundEpochs = c.number('roundEpochs', o.roundEpochs, { integer: true, min: 1 });
    quantile = c.number('quantile', o.quantile, { exclusiveMin: 0, max: 0.5, fallback: SEARCH_DEFAULTS.quantile }) ?? quantile;
    const maxEpochs = base && c.number('base.maxEpochs', base.maxEpochs, { integer: true, min: 1 });
    if (roundEpochs !== undefined && maxEpochs !== undefined && roundEpochs > maxEpochs) {
      c.fail('roundEpochs', `a whole number at most \`base.maxEpochs\` (${maxEpochs}), the population's whole budget`, roundEpochs);
    }
    if (space.some((s) => s.path === 'maxEpochs')) c.fail('space.maxEpochs', `absent with \`${strategy}\` (the rounds set each trial's epochs)`, 'maxEpochs');
  } else {
    const withRounds = strategiesWith('rounds');
    const only = `absent (only the ${named(withRounds, 'and')} ${withRounds.length === 1 ? 'strategy has' : 'strategies have'} rounds)`;
    if (o.roundEpochs !== undefined) c.fail('roundEpochs', only, o.roundEpochs);
    if (o.quantile !== undefined) c.fail('quantile', only, o.quantile);
  }
  if (!STRATEGY_OPTIONS[strategy].seed && o.seed !== undefined) c.fail('seed', `absent (\`${strategy}\` draws nothing at random)`, o.seed);
  const continueAsNewEvery =
    c.number('continueAsNewEvery', o.continueAsNewEvery, { integer: true, min: 0, fallback: SEARCH_DEFAULTS.continueAsNewEvery }) ?? 0;

  c.throwIfAny('Invalid hyperparameterSearch input');
  return {
    ...(runId !== undefined && { runId }),
    base: base!,
    space,
    strategy,
    seed,
    maxTrials,
    maxParallel,
    metric,
    mode: modeIn === 'auto' ? autoMode(metric) : modeIn,
    failureBudget,
    eta,
    minEpochs,
    continueAsNewEvery,
    roundEpochs,
    quantile,
  };
}

/**
 * The paths PBT may search: the values a trial can change while it continues from a checkpoint
 * copied from another trial. The copy carries the donor's weights and optimizer state, so anything
 * that shapes them (model, optimizer, data, loss, stepsPerEpoch) must be the same for the whole
 * population: a perturbed `hiddenUnits` would not restore the donor's weights.
 */
export const PBT_PATHS = ['hyperparameters.learningRate', 'hyperparameters.batchSize', 'hyperparameters.momentum', 'seed'] as const;

/** One issue per `space` path PBT cannot change on a copied checkpoint (see PBT_PATHS). */
export function pbtSpaceIssues(config: Pick<SearchConfig, 'strategy' | 'space'>): ConfigIssue[] {
  if (config.strategy !== 'pbt') return [];
  return config.space
    .filter((entry) => !(PBT_PATHS as readonly string[]).includes(entry.path))
    .map((entry) => ({
      field: `space.${entry.path}`,
      expected: `one of the paths pbt can change on a copied checkpoint (${PBT_PATHS.join(', ')}): the model, optimizer and data stay the population's`,
      received: describe(entry.path),
    }));
}
