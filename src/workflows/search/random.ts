/**
 * The random searcher: each path of trial n is drawn from its distribution by a pure function of
 * (seed, n, path), so trial n gets the same values whatever `maxTrials` is, whichever other paths
 * the space has, and however often the workflow continued as new. A list of values is a uniform choice.
 */
import { fnv1a } from '../../config/fnv1a';
import { SEARCH_DEFAULTS, type Dimension, type SearchConfig, type SpaceEntry } from '../../config/search-config';
import type { TrialParams } from '../../config/search-types';
import type { Searcher, SearcherFactory } from './types';

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

/** A uniform draw in [0, 1) with 53 bits, a pure function of (seed, trial, path). */
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

/** The values of trial `trial` (1-based). */
export function randomTrialAt(space: readonly SpaceEntry[], seed: number, trial: number): TrialParams {
  return Object.fromEntries(space.map(({ path, dimension }) => [path, draw(dimension, unitDraw(seed, trial, path))]));
}

/** Trials 1..count. */
export function randomTrials(space: readonly SpaceEntry[], seed: number, count: number): TrialParams[] {
  return Array.from({ length: count }, (_, i) => randomTrialAt(space, seed, i + 1));
}

export const randomSearcher: SearcherFactory = {
  plannedTrials: (config) => config.maxTrials ?? SEARCH_DEFAULTS.randomTrials,

  create(config: SearchConfig): Searcher {
    return {
      suggest: (trial) => ({ kind: 'trial', params: randomTrialAt(config.space, config.seed, trial) }),
      onTrialComplete: () => {},
      getState: () => null,
    };
  },
};
