/**
 * The two small interfaces a search strategy implements, after Ray Tune's split: a Searcher says
 * what to try next, a TrialScheduler says when a trial stops, pauses or is promoted to a longer run.
 *
 * Both run inside the hyperparameterSearch workflow, so both are pure: no I/O, no clocks, no
 * randomness other than pure functions of (seed, trial number, path). Their state is plain JSON
 * (`getState()`), kept in the workflow's state and handed back to `create` after continue-as-new
 * (Ray's `set_state`): a search resumed at any moment suggests and decides exactly as it would have.
 */
import type { SearchConfig } from '../../config/search-config';
import type { JsonValue, Rung, TrialParams } from '../../config/search-types';

export type Suggestion =
  /** Trial `trial` runs these values. */
  | { readonly kind: 'trial'; readonly params: TrialParams }
  /** Nothing yet: ask again when a trial reports (a model-based searcher waiting for results). */
  | { readonly kind: 'wait' }
  /** No more trials, ever. */
  | { readonly kind: 'finished' };

/** How a trial ended, for the searcher to learn from (null value: failed, or no metric). */
export interface TrialOutcome {
  readonly value: number | null;
  readonly status: 'completed' | 'pruned' | 'failed';
}

export interface Searcher {
  /**
   * The values of trial `trial`. Trial numbers start at 1 and are asked for in order, each once
   * (a trial the workflow started is never asked for again, also not after continue-as-new).
   */
  suggest(trial: number): Suggestion;
  /** A trial will not run again. */
  onTrialComplete(trial: number, outcome: TrialOutcome): void;
  /** Plain JSON: `create(config, getState())` continues exactly where this one is. */
  getState(): JsonValue;
}

export interface SearcherFactory {
  /**
   * How many trials a search of `config` runs at most (its own size and `maxTrials`). Throws a
   * ConfigError if that is more than one search may hold.
   */
  plannedTrials(config: SearchConfig): number;
  /** `saved`: a `getState()` of an earlier run of the workflow; undefined for a new search. */
  create(config: SearchConfig, saved: JsonValue | undefined): Searcher;
}

/** The end of one run of a trial (one child trainModel), as the scheduler sees it. */
export interface RunResult {
  /** The rung this run trained to. */
  readonly rung: number;
  /** The search metric of the run's final model, or null. */
  readonly value: number | null;
  readonly epochs: number;
  /** How trainModel ended: only a `completed` run can be continued by a later rung. */
  readonly runStatus: string;
  /** The values the run trained with (PBT perturbs them). */
  readonly params?: TrialParams;
}

/**
 * What happens to a trial (Ray's CONTINUE / PAUSE / STOP, and PROMOTE to a longer run).
 * - `continue`: no intervention; a trial whose run is over is then completed.
 * - `pause`: its run is over and it waits at its rung; a later decision promotes or stops it
 *   (still paused when the search runs out of work: pruned).
 * - `stop`: pruned: it will not run again.
 * - `promote`: it goes on to `rung`, continuing its own run from its checkpoint when a slot frees
 *   (later rungs first). A run that cannot go on (early-stopped, or already at the rung's epochs)
 *   is reported again at `rung` as it is, at once.
 */
export type TrialDecision =
  | { readonly trial: number; readonly action: 'continue' | 'pause' | 'stop' }
  | { readonly trial: number; readonly action: 'promote'; readonly rung: number }
  /**
   * PBT: the trial's newest checkpoint is replaced by a copy of trial `from`'s at the same step
   * (weights and optimizer state), and it goes on to `rung` with `params`.
   */
  | { readonly trial: number; readonly action: 'exploit'; readonly rung: number; readonly from: number; readonly params: TrialParams };

export interface TrialScheduler {
  /** Epochs of a run at `rung` (absolute, trainModel's `maxEpochs`); undefined: the base input's own. */
  maxEpochsAt(rung: number): number | undefined;
  /**
   * A run of `trial` ended. Returns a decision for it and for any paused trial this unblocks, in the
   * order to apply them; the trial itself must get one.
   */
  onTrialResult(trial: number, result: RunResult): TrialDecision[];
  /** A run of `trial` failed (the trial is over); decisions for paused trials this unblocks. */
  onTrialError(trial: number, rung: number): TrialDecision[];
  /**
   * Nothing runs, nothing is queued and the searcher has no more: the last word on paused trials
   * (a promotion starts more runs). Called again whenever the search runs out of work; [] ends it,
   * and trials still paused then are pruned.
   */
  onSearchEnd(): TrialDecision[];
  /** For the leaderboard and the result: the rungs, and the highest rung that has started. */
  progress(): { readonly rung: number; readonly rungs: readonly Rung[] };
  getState(): JsonValue;
}

export interface SchedulerContext {
  readonly config: SearchConfig;
  /** The searcher's `plannedTrials`: how many trials the first rung will see. */
  readonly plannedTrials: number;
}

export interface SchedulerFactory {
  create(context: SchedulerContext, saved: JsonValue | undefined): TrialScheduler;
}

/** A strategy of the `strategy` input field: which searcher and scheduler it runs. */
export interface Strategy {
  readonly searcher: (config: SearchConfig) => SearcherFactory;
  readonly scheduler: SchedulerFactory;
}
