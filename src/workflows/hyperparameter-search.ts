/**
 * hyperparameterSearch: every trial is a child trainModel run with a deterministic workflow id and its
 * own checkpoint folder. A searcher suggests the next trial as a slot frees up; a scheduler decides,
 * as each run ends, whether the trial is done, waits, is pruned or is promoted to a longer run
 * (search/: grid, random, successive halving, ASHA, PBT). Every decision is made by the search
 * controller (search/controller.ts), a pure state machine: this workflow checks the input, claims
 * the folder, then runs the controller's commands (start a child, archive, copy a checkpoint, wait,
 * continue as new, finish) and feeds back children's ends and live edits. The trial table, the queue
 * of runs waiting for a slot and both strategies' JSON state are carried through continue-as-new.
 */
import {
  condition,
  continueAsNew,
  defineQuery,
  defineUpdate,
  executeChild,
  startChild as startChildWorkflow,
  getExternalWorkflowHandle,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { SearchLogActivities } from '../activities/search-log';
import type { SearchResultActivities } from '../activities/search-results';
import type { RunViewActivities } from '../activities/run-views';
import { runUriOf, trialId } from '../checkpoints/layout';
import type { SearchInput } from '../config/search-config';
import { FAULT_RETRY, WORKER_HEARTBEAT_TIMEOUT } from './activity-proxies';
import type { CheckpointCopyActivities } from '../activities/checkpoint-copy';
import type { TrialOutcomeActivities } from '../activities/trial-outcome';
import { SearchController, type SearchCommand, type Upsert } from './search/controller';
import type { EditReply, SearchEdit } from './search/edits';
import type { LegacySearchState } from './search/legacy';
import { newStoreRowsState, resumedState, type Leaderboard, type SearchResult, type SearchState } from './search/state';
import { startState } from './search/start';
import { validateSearchOrFail } from './search/validate';
import { LIVE_EDITS_PATCH, SEARCH_NO_DRAIN_PATCH, SEARCH_OWNER_PATCH, SEARCH_SINGLE_UPSERT_PATCH, SEARCH_STORE_ROWS_PATCH, SEARCH_BEST_CURVE_PATCH } from './patches';
import { trialEndedSignal } from './search/trial-ended';
import { RunTracking, baseTracking, searchParams } from './run-tracking';
import type { trainModel } from './train-model';
import { checkedBySearchStart, startChecks } from './search-trial-checks';

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
const { appendSearchLog } = proxyActivities<SearchLogActivities>({ startToCloseTimeout: '2 minutes', heartbeatTimeout: WORKER_HEARTBEAT_TIMEOUT, retry: FAULT_RETRY });
const { renderLearningCurve } = proxyActivities<RunViewActivities>({ startToCloseTimeout: '10 minutes', heartbeatTimeout: WORKER_HEARTBEAT_TIMEOUT, retry: FAULT_RETRY });
const { copyTrialCheckpoint } = proxyActivities<CheckpointCopyActivities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: WORKER_HEARTBEAT_TIMEOUT, retry: FAULT_RETRY });
// Each attempt waits at most 60 s for a child that signalled its end; a child still running is
// asked again, without a cap on attempts: it has ended or is about to (activities/trial-outcome.ts).
const { fetchTrialOutcome } = proxyActivities<TrialOutcomeActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: WORKER_HEARTBEAT_TIMEOUT,
  retry: { ...FAULT_RETRY, maximumAttempts: Number.POSITIVE_INFINITY },
});

export async function hyperparameterSearch(input: SearchInput, resumeState?: SearchState | LegacySearchState): Promise<SearchResult> {
  const validated = validateSearchOrFail(input);
  const { config } = validated;
  const state: SearchState = resumeState ? resumedState(resumeState, validated) : await startState(validated);
  // The folder's owner first: a different search naming it fails here, before any trial (search-identity.ts).
  const claimed = !resumeState && patched(SEARCH_OWNER_PATCH) ? await claimSearchFolder({ searchUri: state.searchUri, config }) : undefined;
  // A new search keeps its trial rows in its log (an owner of the folder only: claimed just above); a
  // continued one keeps what its first run chose, carried in `state.store`.
  if (!resumeState && patched(SEARCH_STORE_ROWS_PATCH)) state.store = newStoreRowsState(claimed?.logEnd ?? 0);
  // Every decision is the controller's (search/controller.ts); this function only runs its commands.
  // No drain: asked once, at the run's start, so a run keeps one way throughout (a search in flight
  // before it replays draining; its next run no longer drains).
  const noDrain = patched(SEARCH_NO_DRAIN_PATCH);
  const ctl = new SearchController(validated, state, workflowInfo().workflowId, resumeState !== undefined, { singleUpsert: patched(SEARCH_SINGLE_UPSERT_PATCH), noDrain });
  // The search's own MLflow run; trials nest under it (src/workflows/run-tracking.ts).
  const tracking = new RunTracking(state, state.searchUri, state.searchRunId, baseTracking(config), searchParams(config));
  const publish = (upserts: readonly Upsert[]): void => {
    // Reuses trainModel's attributes (no new ones to register): status, trials finished, best metric.
    for (const u of upserts) upsertSearchAttributes([...u]);
  };

  setHandler(leaderboardQuery, () => ctl.leaderboard());
  // A child ended (search/trial-ended.ts): only its workflow id is read; the controller ignores
  // ids it has no running trial under, and repeats.
  setHandler(trialEndedSignal, (workflowId) => {
    if (typeof workflowId === 'string') ctl.onTrialEnded(workflowId);
  });
  setHandler(
    editSearchUpdate,
    async (edit) => {
      const { reply, signals } = ctl.onEdit(edit, Date.now());
      if (signals.length > 0 && patched(LIVE_EDITS_PATCH)) {
        for (const s of signals) await getExternalWorkflowHandle(s.workflowId).signal(s.signal);
      }
      publish(ctl.publish());
      return reply;
    },
    { validator: (edit) => ctl.validateEdit(edit) },
  );

  // What this search's start checked on the worker (every run of the chain has the same input): a
  // trial naming nothing else skips its own describeWorker and checkUris (search-trial-checks.ts).
  const checked = startChecks(validated.parsed);
  const startChild = (cmd: Extract<SearchCommand, { kind: 'start' }>): void => {
    const childInput = cmd.input;
    if (tracking.runId) Object.assign(childInput, { tracking: { mlflow: { ...baseTracking(config)?.mlflow, parentRunId: tracking.runId } } });
    if (checkedBySearchStart(checked, state.searchUri, childInput)) Object.assign(childInput, { searchTrial: { mlflow: state.mlflowWanted } });
    const options = { workflowId: cmd.workflowId, args: [childInput] as [typeof childInput] };
    const ended = noDrain ? startAbandoned(options) : executeChild<typeof trainModel>('trainModel', options);
    void ended.then(
      (result) => publish(ctl.onChildResult(cmd.trial, cmd.rung, result)),
      (err: unknown) => publish(ctl.onChildError(cmd.trial, cmd.rung, err)),
    );
  };

  /** Children asked for and not started yet: a continue-as-new now would drop them (only the start was initiated). */
  let starting = 0;
  // ABANDON: the search's continue-as-new (noDrain) does not end its running children.
  const startAbandoned = async (options: { workflowId: string; args: [Record<string, unknown>] }) => {
    starting++;
    let child;
    try {
      child = await startChildWorkflow<typeof trainModel>('trainModel', { ...options, parentClosePolicy: ParentClosePolicy.ABANDON });
    } finally {
      starting--;
    }
    return child.result();
  };

  /** A child an earlier run started: its outcome, from Temporal (the controller drops a repeat). */
  const fetchChild = (cmd: Extract<SearchCommand, { kind: 'fetch' }>): void => {
    void fetchTrialOutcome({ workflowId: cmd.workflowId }).then(
      (outcome) =>
        publish(outcome.ok ? ctl.onChildResult(cmd.trial, cmd.rung, outcome.result) : ctl.onChildError(cmd.trial, cmd.rung, Object.assign(new Error(outcome.error.message), { name: outcome.error.name }))),
      (err: unknown) => publish(ctl.onChildError(cmd.trial, cmd.rung, err)),
    );
  };

  publish(ctl.begin());
  await tracking.begin('30 seconds');
  for (;;) {
    const cmd = ctl.next({ continueAsNewSuggested: workflowInfo().continueAsNewSuggested, now: Date.now() });
    switch (cmd.kind) {
      case 'publish':
        publish(cmd.upserts);
        break;
      case 'append':
        // Create-only under `seq`: a retried or replayed append writes the same rows under the same number.
        await appendSearchLog({ searchUri: state.searchUri, seq: cmd.seq, rows: cmd.rows });
        break;
      case 'start':
        startChild(cmd);
        break;
      case 'fetch':
        fetchChild(cmd);
        break;
      case 'archive':
        await archiveTrialModel({ runUri: cmd.runUri, rung: cmd.rung });
        break;
      case 'copy':
        ctl.onCopied(await copyTrialCheckpoint(cmd.input), Date.now());
        break;
      case 'wait':
        await condition(() => ctl.changedSince(cmd));
        break;
      case 'continueAsNew':
        if (noDrain && (!allHandlersFinished() || starting > 0)) {
          // Children run on meanwhile: ask again once the handlers are done and every child asked
          // for has started, and continue as new with no await between the controller's state and
          // the call that serializes it.
          await condition(() => allHandlersFinished() && starting === 0);
          break;
        }
        if (!allHandlersFinished()) {
          // An edit is being handled: ask again after it (it may change what comes next).
          await condition(allHandlersFinished);
          break;
        }
        // No await between the controller's state and the call that serializes it: a child's end
        // applied in between would change the state after its rows were flushed, and its row would
        // never reach the log (a worker SIGKILL during a log write found this: search-log-kill).
        return continueAsNew<typeof hyperparameterSearch>(input, cmd.state);
      case 'failBudget':
        // Results first (the failed trials' errors are in them); running children end with this run
        // (drain: their parent close policy; noDrain: a cancellation request each).
        await writeSearchResults(cmd.results);
        for (const id of cmd.cancel) await getExternalWorkflowHandle(id).cancel().catch(() => undefined);
        throw ctl.budgetFailure();
      case 'finish': {
        publish(cmd.upserts);
        const written = await writeSearchResults(cmd.results);
        // Trials draw no learning curve (a person looks at the best one): the best trial's, now.
        if (cmd.best !== null && patched(SEARCH_BEST_CURVE_PATCH)) {
          const runId = trialId(cmd.best);
          await renderLearningCurve({ runUri: runUriOf(state.searchUri, runId), title: `${runId}: the best trial of ${state.searchRunId}` });
        }
        await tracking.finish(cmd.best !== null ? 'FINISHED' : 'FAILED');
        const { result, upserts } = ctl.complete(written);
        publish(upserts);
        return result;
      }
    }
  }
}
