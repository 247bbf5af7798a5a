/**
 * Pure parts of hyperparameterSearch that every strategy shares: how a trial's trainModel input is
 * built from the base and its values, and how trials rank. What to try and when to stop are the
 * strategies' business (search/).
 */
import type { TrialParams } from '../config/search-types';
import type { Mode } from '../config/train-config';
import { isObject, type JsonObject } from '../config/validate';

function clone<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/**
 * `base` with each dotted path set (objects on the way are created as needed). Only the objects on
 * the paths are copied; everything else is shared with `base`, which nobody mutates: a search
 * validates thousands of trials of a base that may hold a 1 MB topology, and a deep copy per trial
 * cost a copy of it each (2,000 trials: 2 GB and minutes of a workflow task).
 */
export function applyParams(base: JsonObject, params: TrialParams): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  const copied = new Set<object>([out]);
  for (const [path, value] of Object.entries(params)) {
    const segments = path.split('.');
    let node = out;
    for (const segment of segments.slice(0, -1)) {
      const next = node[segment];
      if (!isObject(next)) node[segment] = {};
      else if (!copied.has(next)) node[segment] = { ...next };
      node = node[segment] as Record<string, unknown>;
      copied.add(node);
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
  /** A scheduler's epoch budget for this run (undefined: the base's own). */
  readonly maxEpochs?: number;
  /** Later rungs: continue the trial's own run (trainModel's `resume`). */
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

/** Short text for a trial's params, for titles and logs: `learningRate=0.01 hiddenUnits=[32]`. */
export function describeParams(params: TrialParams): string {
  return Object.entries(params)
    .map(([path, v]) => `${path.split('.').pop()}=${typeof v === 'number' ? Number(v.toPrecision(4)) : JSON.stringify(v)}`)
    .join(' ');
}
