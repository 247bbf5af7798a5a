/**
 * hyperparameterSearch: every trial is a child trainModel run with a deterministic workflow id and its
 * own checkpoint folder. A searcher suggests the next trial as a slot frees up; a scheduler decides,
 * as each run ends, whether the trial is done, waits, is pruned or is promoted to a longer run
 * (search/: grid, random, successive halving, ASHA). The trial table, the queue of runs waiting for
 * a slot and both strategies' JSON state live in workflow state and are carried through continue-as-new.
 */
import {
  ApplicationFailure,
  condition,
  continueAsNew,
  defineQuery,
  defineUpdate,
  executeChild,
  getExternalWorkflowHandle,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { SearchResultActivities } from '../activities/search-results';
import type { SearchInput } from '../config/search-config';
import { FAULT_RETRY, WORKER_HEARTBEAT_TIMEOUT } from './activity-proxies';
import { createSearch, type TrialDecision } from './search';
import { applyEdit, epochBudget, validateEdit, type EditReply, type SearchEdit } from './search/edits';
import { exploit } from './search/exploit';
import type { LegacySearchState } from './search/legacy';
import {
  bestTrial, childWorkflowId, failureMessage, metricOf, newTrial, resumedState,
  type Leaderboard, type QueuedRun, type SearchResult, type SearchState, type TrialRecord,
} from './search/state';
import { startState } from './search/start';
import { invalidSearch, trialIssues, validateSearchOrFail } from './search/validate';
import { LIVE_EDITS_PATCH, SEARCH_OWNER_PATCH } from './patches';
import { RunTracking, baseTracking, searchParams } from './run-tracking';
import { rankTrials, trialInput } from './search-space';
import { SEARCH_ATTRIBUTES } from './search-attributes';
import type { trainModel } from './train-model';

export { validateSearchOrFail, type ValidatedSearch } from './search/validate';

export type { BestTrial, Leaderboard, QueuedRun, SearchResult, SearchState, SearchStatus, TrialRecord } from './search/state';

export const leaderboardQuery = defineQuery<Leaderboard>('leaderboard');
/** A live edit of a running search (search/edits.ts); refused by its validator before it enters history. */
export const editSearchUpdate = defineUpdate<EditReply, [SearchEdit]>('editSearch');
export type { EditRecord, EditReply, SearchEdit } from './search/edits';
export type { LineageRecord } from './search/exploit';

const { writeSearchResults, archiveTrialModel, claimSearchFolder } = proxyActivities<SearchResultActivities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: WORKER_HEARTBEAT_TIMEOUT,
  retry: FAULT_RETRY,
});

export async function hyperparameterSearch(input: SearchInput, resumeState?: SearchState | LegacySearchState): Promise<SearchResult> {
  const validated = validateSearchOrFail(input);
  const { config } = validated;
  const state: SearchState = resumeState ? resumedState(resumeState, validated) : await startState(validated);
  // The folder's owner first: a different search naming it fails here, before any trial (search-identity.ts).
  if (!resumeState && patched(SEARCH_OWNER_PATCH)) await claimSearchFolder({ searchUri: state.searchUri, config });
  const { searcher, scheduler } = createSearch(config, state.trialLimit, resumeState && { searcher: state.searcher, scheduler: state.scheduler });
  const searchWorkflowId = workflowInfo().workflowId;
  // The search's own MLflow run; trials nest under it (src/workflows/run-tracking.ts).
  const tracking = new RunTracking(state, state.searchUri, state.searchRunId, baseTracking(config), searchParams(config));
  /** Decisions of the scheduler not applied yet (they may need an activity). */
  const decisions: TrialDecision[] = [];

  const trialOf = (n: number): TrialRecord => state.trials[n - 1]!;
  const running = (): number => state.trials.filter((t) => t.status === 'running').length;
  const overBudget = (): boolean => config.failureBudget !== undefined && state.failures > config.failureBudget;
  const finishedCount = (): number => state.trials.filter((t) => t.status !== 'pending' && t.status !== 'running').length;
  // A trial that reached a later rung (more epochs) ranks above every trial pruned before it.
  const ranked = (): TrialRecord[] =>
    rankTrials(state.trials.filter((t) => t.value !== null && t.status !== 'failed'), config.mode).sort((a, b) => b.rung - a.rung);

  setHandler(leaderboardQuery, (): Leaderboard => {
    const withMetric = ranked();
    const rest = state.trials.filter((t) => !withMetric.includes(t));
    const { rung, rungs } = scheduler.progress();
    return {
      searchRunId: state.searchRunId,
      searchUri: state.searchUri,
      strategy: config.strategy,
      status: state.status,
      metric: config.metric,
      mode: config.mode,
      rung,
      rungs,
      maxParallel: state.maxParallel,
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

  setHandler(
    editSearchUpdate,
    async (edit) => {
      const waiting = 'trial' in edit && trialOf(edit.trial).status === 'pending';
      const { reply, signals } = applyEdit(edit, config, state, Date.now());
      // A stopped trial that had not reported at its rung yet is counted out, as a failure would be.
      if (edit.op === 'stop' && waiting) decisions.push(...scheduler.onTrialError(edit.trial, trialOf(edit.trial).rung));
      if (signals.length > 0 && patched(LIVE_EDITS_PATCH)) {
        for (const s of signals) await getExternalWorkflowHandle(s.workflowId).signal(s.signal);
      }
      publish();
      return reply;
    },
    { validator: (edit) => validateEdit(edit, config, state) },
  );

  /** The next run to start: a queued one (later rungs first, then trial order), else a new suggestion. */
  const nextRun = (): QueuedRun | undefined => {
    const ready = state.queue.filter((q) => !state.held.includes(q.trial));
    if (ready.length > 0) return ready.sort((a, b) => b.rung - a.rung || a.trial - b.trial)[0];
    if (state.searcherFinished || state.suggested >= state.trialLimit) return undefined;
    // Trials added by an edit take trial numbers, not the searcher's: it is asked for its own next one.
    const n = state.trials.length + 1;
    const suggestion = searcher.suggest(state.suggested + 1);
    if (suggestion.kind === 'finished') state.searcherFinished = true;
    if (suggestion.kind !== 'trial') return undefined;
    state.suggested++;
    if (n > validated.trials.length) {
      // Validation checked every trial a searcher suggests up front; this one came from results.
      const { issues } = trialIssues(config, n, suggestion.params, { searchUri: state.searchUri, maxEpochs: scheduler.maxEpochsAt(1) ?? epochBudget(config, state) }, new Set());
      if (issues.length > 0) throw invalidSearch(issues);
    }
    state.trials.push(newTrial(state.searchUri, n, suggestion.params));
    const run = { trial: n, rung: 1 };
    state.queue.push(run);
    return run;
  };

  const complete = (t: TrialRecord, status: 'completed' | 'pruned'): void => {
    t.status = status;
    searcher.onTrialComplete(t.trial, { value: t.value, status });
  };

  /** A run stopped by an edit ended: pruned; the scheduler counts it out as it would a failure. */
  const stopByEdit = (t: TrialRecord): void => {
    complete(t, 'pruned');
    publish();
    decisions.push(...scheduler.onTrialError(t.trial, t.rung));
  };

  const launch = (run: QueuedRun): void => {
    state.queue = state.queue.filter((q) => q.trial !== run.trial);
    const t = trialOf(run.trial);
    const workflowId = childWorkflowId(searchWorkflowId, t.trial, run.rung);
    t.status = 'running';
    t.rung = run.rung;
    t.workflowId = workflowId;
    t.error = null;
    state.startedThisRun++;
    const maxEpochs = scheduler.maxEpochsAt(run.rung) ?? state.maxEpochs;
    const childInput = trialInput(config.base, t.params, {
      runId: t.id,
      searchUri: state.searchUri,
      ...(maxEpochs !== undefined && { maxEpochs }),
      // Later rungs continue the trial's own run: its recorded epochs rebuild trainModel's state
      // and training resumes from its newest checkpoint.
      resume: run.rung > 1,
    });
    if (tracking.runId) Object.assign(childInput, { tracking: { mlflow: { ...baseTracking(config)?.mlflow, parentRunId: tracking.runId } } });
    void executeChild<typeof trainModel>('trainModel', { workflowId, args: [childInput] }).then(
      (result) => {
        t.status = 'completed';
        t.value = metricOf(result, config.metric);
        t.epochs = result.epochs;
        t.step = result.step;
        t.runStatus = result.status;
        t.modelUri = result.modelUri;
        publish();
        if (state.stopped.includes(t.trial)) return stopByEdit(t);
        decisions.push(...scheduler.onTrialResult(t.trial, { rung: run.rung, value: t.value, epochs: t.epochs, runStatus: result.status, params: t.params }));
      },
      (err: unknown) => {
        // Stopped by an edit before its first checkpoint: not a failure of the trial.
        if (state.stopped.includes(t.trial)) return stopByEdit(t);
        t.status = 'failed';
        t.value = null;
        t.error = failureMessage(err);
        state.failures++;
        publish();
        searcher.onTrialComplete(t.trial, { value: null, status: 'failed' });
        decisions.push(...scheduler.onTrialError(t.trial, run.rung));
      },
    );
  };

  /** Applies the scheduler's decisions in order; promotions archive the rung's export first. */
  const applyDecisions = async (): Promise<void> => {
    while (decisions.length > 0) {
      const batch = decisions.splice(0);
      const reached: TrialRecord[] = [];
      let promoted = false;
      for (const d of batch) {
        const t = trialOf(d.trial);
        if (state.stopped.includes(t.trial)) continue;
        if (d.action === 'promote') {
          promoted = true;
          const target = scheduler.maxEpochsAt(d.rung);
          if (t.runStatus === 'completed' && (target === undefined || t.epochs < target)) {
            t.status = 'pending';
            state.queue.push({ trial: t.trial, rung: d.rung });
            // trainModel will not overwrite an export: keep this rung's under rungs/rung-<r>/.
            await archiveTrialModel({ runUri: t.runUri, rung: t.rung });
          } else {
            // Early-stopped (or already there): its run is over; it competes at the next rung as it is.
            t.rung = d.rung;
            t.status = 'paused';
            reached.push(t);
          }
        } else if (d.action === 'exploit') {
          promoted = true;
          const maxEpochs = scheduler.maxEpochsAt(d.rung);
          const next = trialInput(config.base, d.params, { runId: t.id, searchUri: state.searchUri, resume: true, ...(maxEpochs !== undefined && { maxEpochs }) });
          await exploit(state, t, trialOf(d.from), d.rung, d.params, next);
        } else if (d.action === 'pause') {
          t.status = 'paused';
        } else if (d.action === 'stop') {
          complete(t, 'pruned');
        } else if (t.status !== 'running') {
          complete(t, 'completed');
        }
      }
      for (const t of reached) {
        decisions.push(...scheduler.onTrialResult(t.trial, { rung: t.rung, value: t.value, epochs: t.epochs, runStatus: t.runStatus ?? 'completed', params: t.params }));
      }
      if (promoted) publish();
    }
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
      edits: state.edits,
      lineage: state.lineage,
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

  const waitForChange = (inFlight: number) => {
    const edits = state.edits.length;
    return condition(() => running() < inFlight || overBudget() || decisions.length > 0 || state.edits.length > edits);
  };

  state.status = 'searching';
  publish();
  await tracking.begin('30 seconds');
  for (;;) {
    if (overBudget()) await failBudget();
    await applyDecisions();
    if (overBudget()) await failBudget();
    const inFlight = running();
    const due = (config.continueAsNewEvery > 0 && state.startedThisRun >= config.continueAsNewEvery) || workflowInfo().continueAsNewSuggested;
    // Due: drain, then continue as new: no child is in flight across the boundary, so none is lost or repeated.
    if (due ? inFlight > 0 : inFlight >= state.maxParallel) {
      await waitForChange(inFlight);
      continue;
    }
    const next = nextRun();
    if (!next) {
      // A trial held by an edit keeps the search open until it is resumed or stopped.
      if (inFlight > 0 || state.queue.length > 0) {
        await waitForChange(inFlight);
      } else {
        const last = scheduler.onSearchEnd();
        if (last.length === 0) break;
        decisions.push(...last);
      }
      continue;
    }
    if (due) {
      state.searcher = searcher.getState();
      state.scheduler = scheduler.getState();
      await condition(allHandlersFinished);
      return continueAsNew<typeof hyperparameterSearch>(input, state);
    }
    launch(next);
  }

  // Nothing runs and nothing will: a trial still waiting for a promotion will not get one.
  for (const t of state.trials) if (t.status === 'paused') complete(t, 'pruned');
  const best = ranked().filter((t) => t.status === 'completed')[0];
  state.status = 'finalizing';
  publish();
  const written = await writeResults(best?.trial ?? null);
  await tracking.finish(best ? 'FINISHED' : 'FAILED');
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
    best: { ...bestTrial(best), metric: config.metric, value: best.value, workflowId: best.workflowId, modelUri: best.modelUri },
    trials: state.trials,
    failed: state.failures,
    rungs: scheduler.progress().rungs,
    edits: state.edits,
    lineage: state.lineage,
    ...written,
  };
}
