/**
 * The registry of search strategies: the `strategy` input field names one, which pairs a searcher
 * (what to try) with a scheduler (when to stop or promote). Adding a strategy: its file here (a
 * SearcherFactory and/or a SchedulerFactory), one entry below, and one line in STRATEGY_OPTIONS
 * (src/config/search-config.ts) saying which input fields it takes.
 */
import type { SearchConfig, SearchStrategy } from '../../config/search-config';
import type { JsonValue, TrialParams } from '../../config/search-types';
import { ashaScheduler } from './asha';
import { fifoScheduler } from './fifo';
import { gridSearcher } from './grid';
import { halvingScheduler } from './halving';
import { pbtScheduler } from './pbt';
import { randomSearcher } from './random';
import type { Searcher, SearcherFactory, Strategy, TrialScheduler } from './types';

export type * from './types';

/** A grid if every path is a list of values, else random draws. */
const gridOrRandom = (config: SearchConfig): SearcherFactory =>
  config.space.every((s) => s.dimension.kind === 'values') ? gridSearcher : randomSearcher;

export const STRATEGIES: { readonly [S in SearchStrategy]: Strategy } = {
  grid: { searcher: () => gridSearcher, scheduler: fifoScheduler },
  random: { searcher: () => randomSearcher, scheduler: fifoScheduler },
  halving: { searcher: gridOrRandom, scheduler: halvingScheduler },
  asha: { searcher: gridOrRandom, scheduler: ashaScheduler },
  pbt: { searcher: gridOrRandom, scheduler: pbtScheduler },
};

export function searcherFactoryOf(config: SearchConfig): SearcherFactory {
  return STRATEGIES[config.strategy].searcher(config);
}

/** The search's trial budget. Throws ConfigError if the space is too large. */
export function plannedTrials(config: SearchConfig): number {
  return searcherFactoryOf(config).plannedTrials(config);
}

export interface SearchParts {
  readonly searcher: Searcher;
  readonly scheduler: TrialScheduler;
}

/** The searcher and scheduler of `config`, new or restored from their `getState()`. */
export function createSearch(
  config: SearchConfig,
  planned: number,
  saved?: { readonly searcher: JsonValue; readonly scheduler: JsonValue },
): SearchParts {
  return {
    searcher: searcherFactoryOf(config).create(config, saved?.searcher),
    scheduler: STRATEGIES[config.strategy].scheduler.create({ config, plannedTrials: planned }, saved?.scheduler),
  };
}

/**
 * The values the searcher suggests before any result is in, in trial order: every trial of a grid
 * or of random draws (what validation checks up front), the first ones of a model-based searcher;
 * at most `limit` of them.
 */
export function planTrials(config: SearchConfig, limit = Infinity): TrialParams[] {
  const planned = Math.min(plannedTrials(config), limit);
  const searcher = searcherFactoryOf(config).create(config, undefined);
  const out: TrialParams[] = [];
  for (let n = 1; n <= planned; n++) {
    const s = searcher.suggest(n);
    if (s.kind !== 'trial') break;
    out.push(s.params);
  }
  return out;
}
