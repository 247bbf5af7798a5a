/**
 * The rows a hyperparameter search reports (leaderboard, result, results.json/csv): types only, so
 * the workflow that fills them and the activity that writes them share one definition without the
 * activity importing workflow code.
 */

/** One trial's values, keyed by dotted path (JSON-safe: it is workflow state and appears in results). */
export type TrialParams = Readonly<Record<string, unknown>>;

/**
 * `pending`: waiting for a slot (a new trial, or one promoted to a later rung); `paused`: its run is
 * over and its scheduler may still promote or prune it; `pruned`: completed, but not promoted.
 */
export type TrialStatus = 'pending' | 'running' | 'paused' | 'completed' | 'failed' | 'pruned';

/** One row of the leaderboard (and of results.json / results.csv). */
export interface TrialRow {
  /** 1-based trial number. */
  readonly trial: number;
  /** `trial-<n>`: the trial's run id and folder. */
  readonly id: string;
  readonly params: TrialParams;
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

export interface Rung {
  /** 1-based rung number. */
  readonly rung: number;
  /** Trials that run in this rung. */
  readonly trials: number;
  /** Each trial's total epochs at the end of this rung (absolute, not additional). */
  readonly epochs: number;
}

/** A plain JSON value: what searchers and schedulers keep as state (carried through continue-as-new). */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };
