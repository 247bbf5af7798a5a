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
import type { JsonValue, Rung, TrialParams, TrialRow } from '../../config/search-types';

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

/** A live edit of a running search (the `editSearch` Update; search/edits.ts validates and applies it). */
export type SearchEdit =
  /** Run at most this many trials at once from now on (lowering it stops no running trial). */
  | { readonly op: 'maxParallel'; readonly value: number }
  /** Let the searcher suggest more trials (random draws, a larger grid's further points, ASHA). */
  | { readonly op: 'maxTrials'; readonly value: number }
  /** Train trials started from now on to this many epochs (strategies without rungs). */
  | { readonly op: 'maxEpochs'; readonly value: number }
  /** Stop a trial: a running one stops at once and is pruned; a waiting one never runs again. */
  | { readonly op: 'stop'; readonly trial: number }
  /** Hold a trial: a running one pauses at its next epoch; a waiting one does not start. */
  | { readonly op: 'pause'; readonly trial: number }
  | { readonly op: 'resume'; readonly trial: number }
  /** Trials with these values, queued after the ones waiting (validated like suggested ones). */
  | { readonly op: 'addTrials'; readonly trials: readonly TrialParams[] };

/** One accepted edit, as the edits log keeps it. */
export interface EditRecord {
  /** 1-based, in the order the search applied them. */
  readonly number: number;
  readonly edit: SearchEdit;
  /** What changed, one sentence each (the Update's reply). */
  readonly changes: readonly string[];
  /** Workflow time the edit was applied (ms since the epoch). */
  readonly at: number;
}

/** PBT: one exploit: who copied whom, at which round and step, with which values and metrics. */
export interface LineageRecord {
  /** The round that just ended (the copy is the start of round + 1). */
  readonly round: number;
  readonly step: number;
  readonly epochs: number;
  readonly trial: number;
  readonly from: number;
  /** The recipient's values and metric before, the donor's metric, and the recipient's new values. */
  readonly previousParams: TrialParams;
  readonly value: number | null;
  readonly fromValue: number | null;
  readonly fromParams: TrialParams;
  readonly params: TrialParams;
  readonly checkpointUri: string;
  /** Workflow time of the decision (ms since the epoch). */
  readonly at: number;
}

/**
 * One row of the search log: `<searchUri>/log/<seq, 12 digits>.jsonl`, one JSON object a line,
 * appended by the `appendSearchLog` activity (create-only segments, in `seq` order). The rows of a
 * search, read in order, rebuild its whole table:
 * - `trial`: a trial's row as of the moment it changed (it started a run, a run ended, a decision
 *   paused, pruned or completed it, an edit added or stopped it). The last row of a trial number wins.
 * - `edit`: an accepted live edit (the edits log), in the order applied.
 * - `lineage`: a PBT exploit, in the order made.
 */
export type SearchLogRow =
  | ({ readonly kind: 'trial' } & TrialRow)
  | ({ readonly kind: 'edit' } & EditRecord)
  | ({ readonly kind: 'lineage' } & LineageRecord);
