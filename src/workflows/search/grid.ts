/**
 * The grid searcher: every combination of the space's lists, in input order with the last path
 * varying fastest (like nested loops written in input order). Trial n is the n-th combination, a
 * pure function of n, so it keeps no state.
 */
import { MAX_TRIALS, type SearchConfig, type SpaceEntry } from '../../config/search-config';
import type { TrialParams } from '../../config/search-types';
import { ConfigError } from '../../config/validate';
import type { Searcher, SearcherFactory } from './types';

function valuesOf({ path, dimension }: SpaceEntry): readonly unknown[] {
  if (dimension.kind === 'values' || dimension.kind === 'choice') return dimension.values;
  throw new Error(`grid dimension \`${path}\` has no list of values`);
}

/** Every combination of a grid, the last path varying fastest. */
export function gridTrials(space: readonly SpaceEntry[]): TrialParams[] {
  let trials: Array<Record<string, unknown>> = [{}];
  for (const entry of space) {
    const values = valuesOf(entry);
    trials = trials.flatMap((t) => values.map((v) => ({ ...t, [entry.path]: v })));
  }
  return trials;
}

/** Number of grid combinations, without building them. */
export function gridSize(space: readonly SpaceEntry[]): number {
  return space.reduce((n, s) => n * (s.dimension.kind === 'values' || s.dimension.kind === 'choice' ? s.dimension.values.length : Infinity), 1);
}

/** The i-th (0-based) combination of a grid in gridTrials order. */
export function gridTrialAt(space: readonly SpaceEntry[], index: number): TrialParams {
  const out: Record<string, unknown> = {};
  let rest = index;
  for (let k = space.length - 1; k >= 0; k--) {
    const entry = space[k]!;
    const values = valuesOf(entry);
    out[entry.path] = values[rest % values.length];
    rest = Math.floor(rest / values.length);
  }
  return Object.fromEntries(space.map((s) => [s.path, out[s.path]]));
}

export const gridSearcher: SearcherFactory = {
  plannedTrials(config: SearchConfig): number {
    const size = gridSize(config.space);
    const count = Math.min(size, config.maxTrials ?? size);
    if (count > MAX_TRIALS) {
      throw new ConfigError(
        [{ field: 'space', expected: `a grid of at most ${MAX_TRIALS} trials (or set \`maxTrials\`)`, received: `${size} combinations` }],
        'Invalid hyperparameterSearch input',
      );
    }
    return count;
  },

  create(config: SearchConfig): Searcher {
    const size = gridSize(config.space);
    return {
      suggest: (trial) => (trial >= 1 && trial <= size ? { kind: 'trial', params: gridTrialAt(config.space, trial - 1) } : { kind: 'finished' }),
      onTrialComplete: () => {},
      getState: () => null,
    };
  },
};
