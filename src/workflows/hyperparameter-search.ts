/**
 * hyperparameterSearch: a grid, random or successive-halving search where every trial is a child
 * trainModel run with a deterministic workflow id and its own checkpoint folder. The trial table
 * lives in workflow state and is carried whole through continue-as-new.
 */
import {
  ApplicationFailure,
  condition,
  continueAsNew,
  defineQuery,
  executeChild,
  proxyActivities,
  setHandler,
  TemporalFailure,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { SearchResultActivities } from '../activities/search-results';
import { parseSearchConfig, type SearchConfig, type SearchInput, type SearchStrategy } from '../config/search-config';
import { parseTrainConfig, type Mode, type TrainConfig } from '../config/train-config';
import { Checker, ConfigError, checkPathSegment, type ConfigIssue } from '../config/validate';
import {
  halvingSchedule,
  planTrials,
  rankTrials,
  selectSurvivors,
  trialInput,
  type Rung,
  type TrialParams,
  type TrialRow,
} from './search-space';
import { FAULT_RETRY, checkRegistryNames, describeWorker } from './activity-proxies';
import { invalidConfig } from './invalid-config';
import { SEARCH_ATTRIBUTES } from './search-attributes';
import type { trainModel, TrainResult } from './train-model';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
export type TrialRecord = Mutable<TrialRow>;

export type SearchStatus = 'starting' | 'searching' | 'finalizing' | 'completed';

/** Everything the search needs to go on; carried whole through continue-as-new. */
export interface SearchState {
  readonly searchRunId: string;
  /** `<checkpoint root>/<search runId>`: trials write under it, results.* go in it. */
  readonly searchUri: string;
  readonly rungs: readonly Rung[];
  trials: TrialRecord[];
  /** 1-based rung being run (always 1 for grid and random). */
  rung: number;
  failures: number;
  status: SearchStatus;
  /** Runs of this workflow before the current one (continue-as-new count). */
  continuedRuns: number;
  /** Trial runs (children) started by the current run of the workflow. */
  startedThisRun: number;
}

export interface Leaderboard {
  readonly searchRunId: string;
  readonly searchUri: string;
  readonly strategy: SearchStrategy;
  readonly status: SearchStatus;
  readonly metric: string;
  readonly mode: Mode;
  readonly rung: number;
  readonly rungs: readonly Rung[];
  readonly maxParallel: number;
  readonly running: number;
  readonly failed: number;
  readonly continuedRuns: number;
  /** Best first (halving: later rungs first; then by metric, then trial number); trials without a metric after them, in trial order. */
  readonly trials: readonly TrialRow[];
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
  /** Every trial, in trial order. */
  readonly trials: readonly TrialRow[];
  readonly failed: number;
  readonly rungs: readonly Rung[];
  readonly resultsUri: string;
  readonly csvUri: string;
  readonly plotUri: string;
}

export const leaderboardQuery = defineQuery<Leaderboard>('leaderboard');

const { writeSearchResults, archiveTrialModel } = proxyActivities<SearchResultActivities>({
  startToCloseTimeout: '10 minutes',
  retry: FAULT_RETRY,
});

function invalid(issues: readonly ConfigIssue[]): ApplicationFailure {
  return invalidConfig(new ConfigError(issues, 'Invalid hyperparameterSearch input'));
}

/** Only for validation: the real folder is known once the worker's default root is. */
const PLACEHOLDER_ROOT = 'file:///validating-search';

function baseCheckpointRoot(config: SearchConfig): string | undefined {
  const checkpoint = config.base.checkpoint;
  const uri = typeof checkpoint === 'object' && checkpoint !== null ? (checkpoint as { uri?: unknown }).uri : undefined;
  return typeof uri === 'string' ? uri.replace(/\/+$/, '') : undefined;
}

export interface ValidatedSearch {
  readonly config: SearchConfig;
  readonly trials: readonly TrialParams[];
  /** Each trial's first trainModel input, parsed (for the registry check and halving's keepLast). */
  readonly parsed: readonly TrainConfig[];
  readonly rungs: readonly Rung[];
}

/**
 * Validates the search input and every trial's trainModel input (pure). A bad one fails the
 * workflow at once, before any child starts; every issue is named, trial issues as `trial-<n>: field`.
 */
export function validateSearchOrFail(input: unknown): ValidatedSearch {
  let config: SearchConfig;
  let trials: TrialParams[];
  try {
    config = parseSearchConfig(input);
    trials = planTrials(config);
  } catch (err) {
    if (err instanceof ConfigError) throw invalid(err.issues);
    throw err;
  }
  const rungs =
    config.strategy === 'halving'
      ? halvingSchedule(trials.length, config.eta, config.minEpochs!, config.base.maxEpochs as number)
      : [{ rung: 1, trials: trials.length, epochs: typeof config.base.maxEpochs === 'number' ? config.base.maxEpochs : 0 }];
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  const parsed: TrainConfig[] = [];
  // A bad base `checkpoint.uri` must still be reported: the trials' folders are inside it.
  const baseRoot = baseCheckpointRoot(config);
  const searchUri = `${baseRoot ?? PLACEHOLDER_ROOT}/${config.runId ?? 'search'}`;
  trials.forEach((params, i) => {
    const id = `trial-${i + 1}`;
    const opts = { runId: id, searchUri, ...(config.strategy === 'halving' && { maxEpochs: rungs[0]!.epochs }) };
    try {
      parsed.push(parseTrainConfig(trialInput(config.base, params, opts)));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const issue of err.issues) {
        // The same bad base field or value fails many trials: name it once, with the first trial.
        const key = `${issue.field}\n${issue.expected}\n${issue.received}`;
        if (seen.has(key)) continue;
        seen.add(key);
        issues.push({ ...issue, field: `${id}: ${issue.field}` });
      }
    }
  });
  if (issues.length > 0) throw invalid(issues);
  return { config, trials, parsed, rungs };
}

function childWorkflowId(searchWorkflowId: string, trial: TrialRecord, rung: number): string {
  return rung === 1 ? `${searchWorkflowId}/${trial.id}` : `${searchWorkflowId}/${trial.id}/rung-${rung}`;
}

function failureMessage(err: unknown): string {
  let e: unknown = err;
  // The innermost cause says what went wrong; the wrappers only say that a child or an activity failed.
  while (e instanceof TemporalFailure && e.cause) e = e.cause;
  if (e instanceof Error) return `${e.name}: ${e.message}`.slice(0, 2000);
  return String(e);
}

async function startState(v: ValidatedSearch): Promise<SearchState> {
  const { config, trials, parsed } = v;
  const info = workflowInfo();
  const c = new Checker();
  const searchRunId = config.runId ?? checkPathSegment(c, 'runId (defaults to the workflow id)', info.workflowId);
  // Registry names can only be checked on the worker: one local activity, before any child starts.
  const worker = await describeWorker();
  const seen = new Set<string>();
  parsed.forEach((cfg, i) => {
    const id = `trial-${i + 1}`;
    const trial = new Checker();
    checkRegistryNames(trial, worker, cfg);
    // One line per distinct bad name, under the first trial that has it.
    for (const issue of trial.issues) {
      if (seen.has(`${issue.field}=${issue.received}`)) continue;
      seen.add(`${issue.field}=${issue.received}`);
      c.issues.push({ ...issue, field: `${id}: ${issue.field}` });
    }
  });
  if (c.issues.length > 0) throw invalid(c.issues);
  const root = baseCheckpointRoot(config) ?? worker.checkpointRoot.replace(/\/+$/, '');
  const searchUri = `${root}/${searchRunId}`;
  return {
    searchRunId: searchRunId!,
    searchUri,
    rungs: v.rungs,
    trials: trials.map((params, i) => ({
      trial: i + 1,
      id: `trial-${i + 1}`,
      params,
      status: 'pending',
      rung: 1,
      workflowId: null,
      value: null,
      epochs: 0,
      step: 0,
      runStatus: null,
      runUri: `${searchUri}/trial-${i + 1}`,
      modelUri: null,
      error: null,
    })),
    rung: 1,
    failures: 0,
    status: 'starting',
    continuedRuns: 0,
    startedThisRun: 0,
  };
}

/** The metric of the run's final model (the epoch it exported), else null. */
function metricOf(result: TrainResult, metric: string): number | null {
  const value = result.finalMetrics?.[metric];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export async function hyperparameterSearch(input: SearchInput, resumeState?: SearchState): Promise<SearchResult> {
  const validated = validateSearchOrFail(input);
  const { config } = validated;
  const state: SearchState = resumeState
    ? { ...resumeState, continuedRuns: resumeState.continuedRuns + 1, startedThisRun: 0 }
    : await startState(validated);
  const searchWorkflowId = workflowInfo().workflowId;
  const halving = config.strategy === 'halving';

  const running = (): number => state.trials.filter((t) => t.status === 'running').length;
  const overBudget = (): boolean => config.failureBudget !== undefined && state.failures > config.failureBudget;
  const finishedCount = (): number => state.trials.filter((t) => t.status !== 'pending' && t.status !== 'running').length;
  // Halving: a trial that reached a later rung (more epochs) ranks above every trial pruned before it.
  const ranked = (): TrialRecord[] => {
    const byMetric = rankTrials(state.trials.filter((t) => t.value !== null && t.status !== 'failed'), config.mode);
    return halving ? byMetric.sort((a, b) => b.rung - a.rung) : byMetric;
  };

  setHandler(leaderboardQuery, (): Leaderboard => {
    const withMetric = ranked();
    const rest = state.trials.filter((t) => !withMetric.includes(t));
    return {
      searchRunId: state.searchRunId,
      searchUri: state.searchUri,
      strategy: config.strategy,
      status: state.status,
      metric: config.metric,
      mode: config.mode,
      rung: state.rung,
      rungs: state.rungs,
      maxParallel: config.maxParallel,
      running: running(),
      failed: state.failures,
      continuedRuns: state.continuedRuns,
      trials: [...withMetric, ...rest],
    };
  });

  const publish = (): void => {
    // Reuses trainModel's attributes (no new ones to register): status, trials finished, best metric.
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.status, value: state.status },
      { key: SEARCH_ATTRIBUTES.epoch, value: finishedCount() },
    ]);
    const best = ranked()[0];
    if (best?.value != null) upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.bestMetric, value: best.value }]);
  };

  const launch = (t: TrialRecord): void => {
    const rung = state.rungs[state.rung - 1]!;
    const workflowId = childWorkflowId(searchWorkflowId, t, state.rung);
    t.status = 'running';
    t.rung = state.rung;
    t.workflowId = workflowId;
    t.error = null;
    state.startedThisRun++;
    const childInput = trialInput(config.base, t.params, {
      runId: t.id,
      searchUri: state.searchUri,
      // Later rungs continue the trial's own run: its recorded epochs rebuild trainModel's state
      // and training resumes from its newest checkpoint.
      ...(halving && { maxEpochs: rung.epochs, resume: state.rung > 1 }),
    });
    void executeChild<typeof trainModel>('trainModel', { workflowId, args: [childInput] }).then(
      (result) => {
        t.status = 'completed';
        t.value = metricOf(result, config.metric);
        t.epochs = result.epochs;
        t.step = result.step;
        t.runStatus = result.status;
        t.modelUri = result.modelUri;
        publish();
      },
      (err: unknown) => {
        t.status = 'failed';
        t.value = null;
        t.error = failureMessage(err);
        state.failures++;
        publish();
      },
    );
  };

  const writeResults = (bestTrial: number | null) =>
    writeSearchResults({
      searchUri: state.searchUri,
      title: `${state.searchRunId}: ${config.strategy} search, ${state.trials.length} trials, ${config.metric} (${config.mode})`,
      strategy: config.strategy,
      metric: config.metric,
      mode: config.mode,
      bestTrial,
      trials: state.trials,
    });

  const failBudget = async (): Promise<never> => {
    // Results first (the failed trials' errors are in them); running children end with this run.
    await writeResults(ranked()[0]?.trial ?? null);
    throw ApplicationFailure.create({
      message: `${state.failures} trials failed, more than failureBudget ${config.failureBudget}: ${state.trials
        .filter((t) => t.status === 'failed')
        .map((t) => `${t.id} (${t.error})`)
        .join('; ')}`,
      type: 'FailureBudgetExceeded',
      nonRetryable: true,
    });
  };

  state.status = 'searching';
  publish();
  for (;;) {
    // Run the current rung's pending trials, at most maxParallel at a time.
    for (;;) {
      if (overBudget()) await failBudget();
      const pending = state.trials.filter((t) => t.status === 'pending');
      const inFlight = running();
      if (pending.length === 0 && inFlight === 0) break;
      const due = (config.continueAsNewEvery > 0 && state.startedThisRun >= config.continueAsNewEvery) || workflowInfo().continueAsNewSuggested;
      if (due && pending.length > 0) {
        // Drain, then continue as new: no child is in flight across the boundary, so none is lost or repeated.
        if (inFlight === 0) {
          await condition(allHandlersFinished);
          return continueAsNew<typeof hyperparameterSearch>(input, state);
        }
      } else if (pending.length > 0 && inFlight < config.maxParallel) {
        launch(pending[0]!);
        continue;
      }
      await condition(() => running() < inFlight || overBudget());
    }

    if (!halving || state.rung >= state.rungs.length) break;
    // Successive halving: promote the best of this rung, prune the rest.
    const next = state.rungs[state.rung]!;
    const candidates = state.trials.filter((t) => t.rung === state.rung && t.status === 'completed');
    const survivors = new Set(selectSurvivors(candidates, next.trials, config.mode).map((t) => t.trial));
    for (const t of candidates) {
      if (!survivors.has(t.trial)) {
        t.status = 'pruned';
      } else if (t.runStatus === 'completed' && t.epochs < next.epochs) {
        t.status = 'pending';
        // trainModel will not overwrite an export: keep this rung's under rungs/rung-<r>/.
        await archiveTrialModel({ runUri: t.runUri, rung: state.rung });
      } else {
        // Early-stopped (or stopped): its run is over; it competes in the next rung as it is.
        t.rung = state.rung + 1;
      }
    }
    if (survivors.size === 0) break;
    state.rung++;
    publish();
  }

  const finalists = halving ? ranked().filter((t) => t.status === 'completed') : ranked();
  const best = finalists[0];
  state.status = 'finalizing';
  publish();
  const written = await writeResults(best?.trial ?? null);
  if (!best || best.value === null || best.modelUri === null || best.workflowId === null) {
    throw ApplicationFailure.create({
      message: `No trial completed with a \`${config.metric}\` metric (${state.failures} of ${state.trials.length} failed); see ${written.resultsUri}`,
      type: 'NoSuccessfulTrial',
      nonRetryable: true,
    });
  }
  state.status = 'completed';
  publish();
  return {
    searchRunId: state.searchRunId,
    searchUri: state.searchUri,
    strategy: config.strategy,
    metric: config.metric,
    mode: config.mode,
    best: {
      trial: best.trial,
      id: best.id,
      params: best.params,
      metric: config.metric,
      value: best.value,
      epochs: best.epochs,
      step: best.step,
      workflowId: best.workflowId,
      runUri: best.runUri,
      modelUri: best.modelUri,
    },
    trials: state.trials,
    failed: state.failures,
    rungs: state.rungs,
    ...written,
  };
}
