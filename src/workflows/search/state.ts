/**
 * hyperparameterSearch's state and result types, and the pure helpers that build them: the trial
 * rows, child workflow ids, and the migration of a state carried from before the searcher/scheduler split.
 */
import type { TrackingState } from '../run-tracking';
import { TemporalFailure } from '@temporalio/workflow';
import { joinUri, trialId } from '../../checkpoints/layout';
import type { SearchStrategy } from '../../config/search-config';
import type { JsonValue, Rung, TrialParams, TrialRow } from '../../config/search-types';
import type { Mode } from '../../config/train-config';
import type { TrainModelResult } from '../train-model';
import { migrateLegacyState, type LegacySearchState } from './legacy';
import type { EditRecord, LineageRecord } from './types';
import type { ValidatedSearch } from './validate';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
export type TrialRecord = Mutable<TrialRow>;

export type SearchStatus = 'starting' | 'searching' | 'finalizing' | 'completed';

/** A run waiting for a slot: a new trial (rung 1) or a promoted one. */
export interface QueuedRun {
  readonly trial: number;
  readonly rung: number;
}

/** Everything the search needs to go on; carried whole through continue-as-new. */
export interface SearchState extends TrackingState {
  /** 2 since the searcher/scheduler split; a state without it is migrated (search/legacy.ts). */
  readonly version: 2;
  readonly searchRunId: string;
  /** `<checkpoint root>/<search runId>`: trials write under it, results.* go in it. */
  readonly searchUri: string;
  /** Every trial suggested so far, in trial order. */
  trials: TrialRecord[];
  queue: QueuedRun[];
  /** The most trials this search runs (the searcher's plan and `maxTrials`). */
  trialLimit: number;
  /** The searcher said it has no more trials. */
  searcherFinished: boolean;
  /** The searcher's and the scheduler's `getState()`, as of the last continue-as-new. */
  searcher: JsonValue;
  scheduler: JsonValue;
  failures: number;
  status: SearchStatus;
  /** Runs of this workflow before the current one (continue-as-new count). */
  continuedRuns: number;
  /** Trial runs (children) started by the current run of the workflow. */
  startedThisRun: number;
  /** Runs at once: `maxParallel`, or its last edit. The fields from here on belong to live edits
   *  (search/edits.ts); a state carried from before them gets them on resume. */
  maxParallel: number;
  /** Epochs of trials started from now on, when an edit extended the base input's. */
  maxEpochs?: number;
  /** Trials the searcher was asked for (trials added by an edit are not the searcher's). */
  suggested: number;
  /** Trials paused by an edit: a waiting one does not start until resumed. */
  held: number[];
  /** Trials stopped by an edit: pruned when their run ends, never promoted. */
  stopped: number[];
  edits: EditRecord[];
  /** PBT: every checkpoint copy between trials, in the order made. */
  lineage: LineageRecord[];
  /**
   * noDrain: workflow ids of running children that signalled their end (`trialEnded`) and whose
   * outcome is not applied yet; a continue-as-new hands them over and the next run fetches them.
   */
  endReported?: string[];
  /**
   * Searches started with `search-store-rows` (src/workflows/patches.ts) write their trial rows,
   * edits and lineage to the search log (docs/search-log.md); absent for older searches.
   */
  store?: StoreRowsState;
}

/**
 * What a search that keeps its rows in the store carries instead of its whole table: `trials` then
 * holds only the trials the search may still act on (pending, running, paused, queued; PBT's whole
 * population), and these counters, the best few and the last failures stand for the rest.
 */
export interface StoreRowsState {
  /** The log's next segment number (the next `append` command's `seq`). */
  nextSeq: number;
  /**
   * The segment this search's rows begin at: 0, or the end of the log a search started again on the
   * same folder found there (it appends after the earlier search's rows, and its results read from here).
   */
  firstSeq?: number;
  /** Trials numbered so far (the next one is trialCount + 1). */
  trialCount: number;
  /** Trials neither pending nor running (the `trials finished` search attribute). */
  finished: number;
  /** Edits accepted and PBT exploits made (their records are in the log). */
  edits: number;
  lineage: number;
  /** The best TOP_TRIALS trials with a metric that left `trials`, best first (later rungs first, then the metric, then the trial number). */
  top: TrialRecord[];
  /** The best completed trial that left `trials` (it may rank below `top`: pruned trials rank too). */
  best: TrialRecord | null;
  /** The last RECENT_FAILURES failures, `trial-<n> (<error>)`, oldest first. */
  recentFailures: string[];
  /** A search whose log was started before rows could wait LOG_FLUSH_MS: it appends before every wait, as its history did. */
  appendBeforeEveryWait?: true;
}

/** Trials with a metric kept in the state of a search that stores its rows: the leaderboard's and the result's. */
export const TOP_TRIALS = 10;
/** Failure messages kept (for the failure-budget error; every failure is in the log). */
export const RECENT_FAILURES = 5;

export function newStoreRowsState(firstSeq = 0): StoreRowsState {
  return { nextSeq: firstSeq, ...(firstSeq > 0 && { firstSeq }), trialCount: 0, finished: 0, edits: 0, lineage: 0, top: [], best: null, recentFailures: [] };
}

/**
 * The store state of a search that started writing its log before the state became constant
 * (`store` held only `nextSeq` and `trials` the whole table): its counters, from that table.
 */
function completeStore(saved: SearchState): StoreRowsState {
  const store = saved.store!;
  if (store.trialCount !== undefined) return store;
  return {
    ...newStoreRowsState(), nextSeq: store.nextSeq, trialCount: saved.trials.length,
    finished: saved.trials.filter((t) => t.status !== 'pending' && t.status !== 'running').length,
    edits: saved.edits?.length ?? 0, lineage: saved.lineage?.length ?? 0, appendBeforeEveryWait: true,
  };
}

/** Trials numbered so far: the table's length, or the counter of a search that stores its rows. */
export const trialCount = (s: SearchState): number => s.store?.trialCount ?? s.trials.length;
/** Edits accepted so far. */
export const editCount = (s: SearchState): number => s.store?.edits ?? s.edits.length;

/** The trials a search can look up by number: its whole table, or the ones in memory of a search that stores its rows. */
export interface TrialTable {
  /** Trial `n`, or undefined when it left memory (finished; its rows are in the log). */
  get(n: number): TrialRecord | undefined;
  /** A new pending trial, numbered trialCount + 1. */
  add(params: TrialParams): TrialRecord;
}

export interface Leaderboard {
  readonly searchRunId: string;
  readonly searchUri: string;
  readonly strategy: SearchStrategy;
  readonly status: SearchStatus;
  readonly metric: string;
  readonly mode: Mode;
  /** The highest rung started (always 1 for grid and random). */
  readonly rung: number;
  readonly rungs: readonly Rung[];
  readonly maxParallel: number;
  readonly running: number;
  readonly failed: number;
  readonly continuedRuns: number;
  /**
   * Best first (later rungs first; then by metric, then trial number); trials without a metric after
   * them, in trial order. A search that stores its rows (`logUri`): the best TOP_TRIALS and every
   * trial it may still act on (pending, running, paused).
   */
  readonly trials: readonly TrialRow[];
  /** Trials numbered so far. */
  readonly trialCount?: number;
  /** Trials neither pending nor running. */
  readonly finished?: number;
  /** Where every row is (the search log's folder, docs/search-log.md), for a search that stores its rows. */
  readonly logUri?: string;
}

export interface BestTrial {
  readonly trial: number;
  readonly id: string;
  readonly params: TrialParams;
  readonly metric: string;
  readonly value: number;
  readonly epochs: number;
  readonly step: number;
  readonly workflowId: string;
  readonly runUri: string;
  readonly modelUri: string;
}

export interface SearchResult {
  readonly searchRunId: string;
  readonly searchUri: string;
  readonly strategy: SearchStrategy;
  readonly metric: string;
  readonly mode: Mode;
  readonly best: BestTrial;
  /**
   * Every trial, in trial order. A search that stores its rows (`logUri` set) of more than
   * RESULT_TRIALS (200) trials: only its best TOP_TRIALS, best first (as `top`); every row is in its log.
   */
  readonly trials: readonly TrialRow[];
  /** The search log's folder (`<searchUri>/log/`): every trial row, edit and lineage record (searches started with search-store-rows). */
  readonly logUri?: string;
  /** Trials the search numbered (searches that store their rows; else `trials.length`). */
  readonly trialCount?: number;
  /** The best TOP_TRIALS trials with a metric, best first (searches that store their rows). */
  readonly top?: readonly TrialRow[];
  readonly failed: number;
  readonly rungs: readonly Rung[];
  readonly resultsUri: string;
  readonly csvUri: string;
  readonly plotUri: string;
  /** Every live edit, in the order applied (a search that stores its rows: read back from its log, [] past 64 Ki characters). */
  readonly edits: readonly EditRecord[];
  /** PBT: who copied whom, when, with which values ([] for other strategies; a search that stores its rows: read back from its log, [] past 64 Ki characters). */
  readonly lineage: readonly LineageRecord[];
}

/** The result's `best`, from its row (the caller narrows the fields a winner must have). */
export function bestTrial(t: TrialRecord): Pick<BestTrial, 'trial' | 'id' | 'params' | 'epochs' | 'step' | 'runUri'> {
  return { trial: t.trial, id: t.id, params: t.params, epochs: t.epochs, step: t.step, runUri: t.runUri };
}

/** `<search id>/trial-<n>`, and `<search id>/trial-<n>/rung-<r>` for a trial's later rungs. */
export function childWorkflowId(searchWorkflowId: string, trial: number, rung: number): string {
  return rung === 1 ? `${searchWorkflowId}/${trialId(trial)}` : `${searchWorkflowId}/${trialId(trial)}/rung-${rung}`;
}

export function failureMessage(err: unknown): string {
  let e: unknown = err;
  // The innermost cause says what went wrong; the wrappers only say that a child or an activity failed.
  while (e instanceof TemporalFailure && e.cause) e = e.cause;
  if (e instanceof Error) return `${e.name}: ${e.message}`.slice(0, 2000);
  return String(e);
}

export function newTrial(searchUri: string, trial: number, params: TrialParams): TrialRecord {
  const id = trialId(trial);
  return {
    trial, id, params, status: 'pending', rung: 1, workflowId: null, value: null, epochs: 0, step: 0, runStatus: null,
    runUri: joinUri(searchUri, id), modelUri: null, error: null,
  };
}

/** The state of a new search, before its first trial. */
export function initialState(o: { searchRunId: string; searchUri: string; planned: number; maxParallel: number; mlflowWanted: boolean }): SearchState {
  return {
    version: 2, searchRunId: o.searchRunId, searchUri: o.searchUri, trials: [], queue: [], trialLimit: o.planned,
    searcherFinished: false, searcher: null, scheduler: null, failures: 0, status: 'starting', continuedRuns: 0, startedThisRun: 0,
    mlflowWanted: o.mlflowWanted, tracking: null,
    maxParallel: o.maxParallel, suggested: 0, held: [], stopped: [], edits: [], lineage: [],
  };
}

/** What a state carried from before live edits lacks: no edit, the input's maxParallel, every trial suggested. */
function editDefaults(trials: number, v: ValidatedSearch) {
  return { maxParallel: v.config.maxParallel, suggested: trials, held: [], stopped: [], edits: [], lineage: [] };
}

export function resumedState(saved: SearchState | LegacySearchState, v: ValidatedSearch): SearchState {
  const next = { continuedRuns: saved.continuedRuns + 1, startedThisRun: 0 };
  if ('version' in saved) return { ...editDefaults(saved.trials.length, v), ...saved, ...(saved.store && { store: completeStore(saved) }), ...next };
  const legacy = saved;
  return {
    ...editDefaults(legacy.trials.length, v),
    version: 2, searchRunId: legacy.searchRunId, searchUri: legacy.searchUri, trials: legacy.trials.map((t) => ({ ...t })),
    ...migrateLegacyState(legacy, v.config), searcherFinished: false, failures: legacy.failures, status: legacy.status as SearchStatus, ...next,
  };
}

/** The metric of the run's final model (the epoch it exported), else null. */
export function metricOf(result: TrainModelResult, metric: string): number | null {
  const value = result.finalMetrics?.[metric];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

