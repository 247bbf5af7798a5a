/**
 * Drives the real search controller (src/workflows/search/controller.ts) with simulated children:
 * the same SearchController the hyperparameterSearch workflow runs, fed each run's end in a seeded
 * order instead of a real trainModel's. Pure: no server, no trainer.
 */
import type { SearchConfig } from '../src/config/search-config';
import type { TrialRow } from '../src/config/search-types';
import { createSearch, planTrials, plannedTrials, type SearchLogRow } from '../src/workflows/search';
import { SearchController, type ControllerOptions, type SearchCommand, type Upsert } from '../src/workflows/search/controller';
import { unitDraw } from '../src/workflows/search/random';
import { childWorkflowId, initialState, newStoreRowsState, resumedState, type SearchState } from '../src/workflows/search/state';
import type { ValidatedSearch } from '../src/workflows/search/validate';

const roundTrip = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** A trial's run: its metric, or a failure, or an early stop, as a pure function of (seed, trial, epochs). */
export interface Run {
  readonly failed: boolean;
  readonly value: number;
  readonly epochs: number;
  readonly runStatus: 'completed' | 'early-stopped';
}
export function runOf(seed: number, trial: number, fromEpochs: number, toEpochs: number): Run {
  const u = (what: string) => unitDraw(seed, trial, `${what}@${toEpochs}`);
  const early = u('early') < 0.15 && toEpochs - fromEpochs > 1;
  // Two decimals: ties happen, and are broken by the lower trial number.
  return { failed: u('fail') < 0.08, value: Math.round(u('value') * 20) / 100, epochs: early ? toEpochs - 1 : toEpochs, runStatus: early ? 'early-stopped' : 'completed' };
}

export type Row = { status: string; rung: number; value: number | null; epochs: number; runStatus: string | null };
export interface Outcome {
  /** `<trial>/<rung>` of every run started, in start order. */
  readonly launches: string[];
  readonly rows: Record<number, Row>;
  /** Most runs in flight at once. */
  readonly maxRunning: number;
}

/** What validateSearchOrFail returns for an input that parses to `config` (without the trainModel inputs). */
export function validatedOf(config: SearchConfig): ValidatedSearch {
  const planned = plannedTrials(config);
  return { config, planned, trials: planTrials(config), parsed: [], rungs: createSearch(config, planned).scheduler.progress().rungs };
}

export const SIM_WORKFLOW_ID = 'sim';

export function newController(config: SearchConfig, options?: ControllerOptions, onUpserts?: (u: readonly Upsert[]) => void, storeRows = false): SearchController {
  const validated = validatedOf(config);
  const state = initialState({ searchRunId: 'sim', searchUri: 'file:///sim', planned: validated.planned, maxParallel: config.maxParallel, mlflowWanted: false });
  // What hyperparameterSearch does for a new search when patched(SEARCH_STORE_ROWS_PATCH).
  if (storeRows) state.store = newStoreRowsState();
  const ctl = new SearchController(validated, state, SIM_WORKFLOW_ID, false, options);
  onUpserts?.(ctl.begin());
  return ctl;
}

/** The controller a continue-as-new would start with `state` (a JSON round trip, as Temporal's payload). */
export function continued(config: SearchConfig, state: SearchState, options?: ControllerOptions): SearchController {
  const validated = validatedOf(config);
  return new SearchController(validated, resumedState(roundTrip(state), validated), SIM_WORKFLOW_ID, true, options);
}

export interface SimOptions {
  /** Rebuild the controller from its JSON state after every this many results (0: never). */
  readonly roundTripEvery?: number;
  /** Called with every command, before it is executed. */
  readonly onCommand?: (cmd: SearchCommand, ctl: SearchController) => void;
  /** Every publish's upserts (commands and events), in the order the workflow would make them. */
  readonly onUpserts?: (upserts: readonly Upsert[]) => void;
  readonly controller?: ControllerOptions;
  /** A search that writes its rows to its log (`append` commands), as new searches do. */
  readonly storeRows?: boolean;
  /**
   * noDrain only: the share of a run's own children whose `trialEnded` signal is followed at once by
   * a continue-as-new (Temporal's suggestion) before their executeChild promise is applied, so the
   * next run must fetch them. @default 0
   */
  readonly raceShare?: number;
  /** Workflow time between two runs' ends (StepContext.now); undefined: no time (rows are appended before every wait). */
  readonly msPerResult?: number;
}

/** What the simulation saw of the no-drain hand-over. */
export interface HandOver {
  /** Runs in flight at each continue-as-new. */
  readonly runningAtContinue: number[];
  /** Outcomes applied through a fetch (children of an earlier run). */
  fetched: number;
  /** Outcomes delivered a second time (a duplicate fetch or promise): each must change nothing. */
  duplicates: number;
  /** Own children whose end was signalled and then continued past before their promise. */
  raced: number;
}

/**
 * Runs a search of `config` to its end: children end one at a time in a seeded order, with the
 * metrics, failures and early stops of `runOf`; continue-as-new starts a new controller from the
 * carried state, as the workflow does.
 */
export function simulate(config: SearchConfig, seed: number, options: SimOptions = {}): { ctl: SearchController; outcome: Outcome; continued: number; log: SearchLogRow[][]; handOver: HandOver } {
  const publish = (u: readonly Upsert[]) => options.onUpserts?.(u);
  let ctl = newController(config, options.controller, publish, options.storeRows);
  const log: SearchLogRow[][] = [];
  const launches: string[] = [];
  const running: Array<{ trial: number; rung: number; maxEpochs: number; run: number }> = [];
  const noDrain = options.controller?.noDrain === true;
  const handOver: HandOver = { runningAtContinue: [], fetched: 0, duplicates: 0, raced: 0 };
  /** Each ended child's outcome, by workflow id, as Temporal keeps it. */
  const ended = new Map<string, { trial: number; rung: number; failed: boolean; result: Parameters<SearchController['onChildResult']>[2] }>();
  const deliver = (workflowId: string): Upsert[] => {
    const e = ended.get(workflowId)!;
    return e.failed ? ctl.onChildError(e.trial, e.rung, new Error('simulated failure')) : ctl.onChildResult(e.trial, e.rung, e.result);
  };
  /** Delivers an outcome a second time: it must change nothing. */
  const deliverAgain = (workflowId: string): void => {
    const before = JSON.stringify(ctl.snapshot());
    const upserts = deliver(workflowId);
    if (upserts.length > 0 || JSON.stringify(ctl.snapshot()) !== before) throw new Error(`a second outcome of ${workflowId} was applied`);
    handOver.duplicates++;
  };
  let suggest = false;
  let results = 0;
  let maxRunning = 0;
  let continuedRuns = 0;
  let roundTripDue = false;
  for (;;) {
    // Simulated workflow time: each run ends `msPerResult` after the one before.
    const cmd = ctl.next({ continueAsNewSuggested: suggest, ...(options.msPerResult !== undefined && { now: results * options.msPerResult }) });
    // The rows waiting are appended first (a search that stores its rows), then it continues as new.
    if (suggest && cmd.kind !== 'continueAsNew' && cmd.kind !== 'append') throw new Error(`a suggested continue-as-new gave ${cmd.kind}`);
    if (cmd.kind !== 'append') suggest = false;
    options.onCommand?.(cmd, ctl);
    if (cmd.kind === 'publish') publish(cmd.upserts);
    if (cmd.kind === 'append') {
      // Segments numbered 0, 1, 2, … in the order appended, as the store's reader needs them.
      if (cmd.seq !== log.length) throw new Error(`append of segment ${cmd.seq} after ${log.length} segments`);
      log.push(roundTrip(cmd.rows) as SearchLogRow[]);
    }
    if (cmd.kind === 'fetch') {
      // fetchTrialOutcome: Temporal's record of the child, then (a retried activity, a late promise) again.
      publish(deliver(cmd.workflowId));
      handOver.fetched++;
      deliverAgain(cmd.workflowId);
    } else if (cmd.kind === 'start') {
      launches.push(`${cmd.trial}/${cmd.rung}`);
      running.push({ trial: cmd.trial, rung: cmd.rung, maxEpochs: cmd.input.maxEpochs as number, run: continuedRuns });
      maxRunning = Math.max(maxRunning, running.length);
    } else if (cmd.kind === 'copy') {
      ctl.onCopied({ checkpointUri: `${cmd.input.toRunUri}/copied` }, 0);
    } else if (cmd.kind === 'wait') {
      // Rebuilt where the workflow could continue as new: while it waits (no decision pending).
      if (roundTripDue) {
        roundTripDue = false;
        ctl = continued(config, ctl.snapshot(), options.controller);
        continue;
      }
      if (running.length === 0) throw new Error('the controller waits with nothing running');
      const [done] = running.splice(Math.floor(unitDraw(seed, results, 'order') * running.length), 1);
      const row = ctl.trial(done!.trial)!;
      const run = runOf(seed, done!.trial, row.epochs, done!.maxEpochs);
      const workflowId = childWorkflowId(SIM_WORKFLOW_ID, done!.trial, done!.rung);
      ended.set(workflowId, {
        trial: done!.trial, rung: done!.rung, failed: run.failed,
        result: { finalMetrics: { [config.metric]: run.value }, epochs: run.epochs, step: run.epochs * 10, status: run.runStatus, modelUri: `${row.runUri}/model` },
      });
      results++;
      if (noDrain) {
        // The child signals before it completes; a child of an earlier run has no promise here: the next command fetches it.
        ctl.onTrialEnded(workflowId);
        ctl.onTrialEnded(workflowId);
        if (done!.run !== continuedRuns) continue;
        if (unitDraw(seed, results, 'race') < (options.raceShare ?? 0)) {
          // Its promise would resolve after this run's continue-as-new: lost with the run.
          handOver.raced++;
          suggest = true;
          continue;
        }
      }
      publish(deliver(workflowId));
      if (noDrain) deliverAgain(workflowId);
      if (options.roundTripEvery && results % options.roundTripEvery === 0) roundTripDue = true;
    } else if (cmd.kind === 'continueAsNew') {
      if (!noDrain && ctl.running() > 0) throw new Error('continued as new with children running (drain)');
      handOver.runningAtContinue.push(ctl.running());
      ctl = continued(config, cmd.state, options.controller);
      continuedRuns++;
    } else if (cmd.kind === 'failBudget') {
      throw ctl.budgetFailure();
    } else if (cmd.kind === 'finish') {
      publish(cmd.upserts);
      break;
    }
  }
  const rows: Record<number, Row> = {};
  for (const t of options.storeRows ? tableOf(log) : ctl.state.trials) rows[t.trial] = { status: t.status, rung: t.rung, value: t.value, epochs: t.epochs, runStatus: t.runStatus };
  return { ctl, outcome: { launches, rows, maxRunning }, continued: continuedRuns, log, handOver };
}

/** The outcome of a search of `config` with `maxParallel` slots (the old driver's signature). */
export function drive(config: SearchConfig, seed: number, maxParallel: number, roundTripEvery = 0): Outcome {
  return simulate({ ...config, maxParallel }, seed, { roundTripEvery }).outcome;
}

/** The table a search's log rebuilds: each trial's last row, in trial order (docs/search-log.md). */
export function tableOf(log: readonly (readonly SearchLogRow[])[]): TrialRow[] {
  const rows = new Map<number, TrialRow>();
  for (const row of log.flat()) {
    if (row.kind !== 'trial') continue;
    const trial: Record<string, unknown> = { ...row };
    delete trial.kind;
    rows.set(row.trial, trial as unknown as TrialRow);
  }
  return [...rows.values()].sort((a, b) => a.trial - b.trial);
}
