/**
 * Searches that continued as new before the searcher/scheduler split carry a state without
 * searcher or scheduler state: every trial was planned up front (the ones not yet run `pending`)
 * and successive halving kept its rung in the search's state. This rebuilds the current state from
 * such a one, so those searches go on exactly where they were.
 */
import type { SearchConfig } from '../../config/search-config';
import type { JsonValue, Rung, TrialRow } from '../../config/search-types';
import type { HalvingState } from './halving';
import { searcherFactoryOf } from './index';

/** The state hyperparameterSearch carried through continue-as-new before the split. */
export interface LegacySearchState {
  readonly searchRunId: string;
  readonly searchUri: string;
  readonly rungs: readonly Rung[];
  readonly trials: readonly TrialRow[];
  readonly rung: number;
  readonly failures: number;
  readonly status: string;
  readonly continuedRuns: number;
  readonly startedThisRun: number;
}

export interface MigratedParts {
  /** Pending trials, in trial order, each to run at the legacy state's rung. */
  readonly queue: Array<{ trial: number; rung: number }>;
  readonly trialLimit: number;
  readonly searcher: JsonValue;
  readonly scheduler: JsonValue;
}

/**
 * Successive halving at `rung`: pending trials will report there (promoted ones still carry their
 * previous rung until they start); trials that ran at it, or reached it early-stopped, have reported.
 */
export function legacyHalvingState(old: LegacySearchState): HalvingState {
  const pending = old.trials.filter((t) => t.status === 'pending');
  const reported = old.trials
    .filter((t) => t.rung === old.rung && t.status !== 'pending' && t.status !== 'running')
    .map((t) => ({ trial: t.trial, value: t.status === 'failed' ? null : t.value, failed: t.status === 'failed' }));
  return { rungs: old.rungs, rung: old.rung, expected: old.rung === 1 ? old.rungs[0]!.trials : pending.length + reported.length, reported };
}

export function migrateLegacyState(old: LegacySearchState, config: SearchConfig): MigratedParts {
  // Every trial was suggested already: advance the searcher past them.
  const searcher = searcherFactoryOf(config).create(config, undefined);
  for (const t of old.trials) searcher.suggest(t.trial);
  return {
    queue: old.trials.filter((t) => t.status === 'pending').map((t) => ({ trial: t.trial, rung: old.rung })),
    trialLimit: old.trials.length,
    searcher: searcher.getState(),
    scheduler: config.strategy === 'halving' ? (JSON.parse(JSON.stringify(legacyHalvingState(old))) as JsonValue) : null,
  };
}
