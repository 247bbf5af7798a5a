/**
 * The search as a pure controller: every decision of hyperparameterSearch (which run next, what a
 * child's result or failure means, what an edit does, when to continue as new, what to write)
 * as a synchronous state machine. Events go in (a child ended, an edit, a copy was made); commands
 * come out of `next()` (start a child, archive an export, copy a checkpoint, wait, continue as new,
 * finish). The workflow (src/workflows/hyperparameter-search.ts) only executes the commands, in
 * order, and feeds their results back; the tests drive this same class with simulated children.
 *
 * No I/O, no clock (times come in with the events), no Temporal API beyond building failures: a
 * controller and a copy of its state fed the same events give the same commands.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { Heap } from 'heap-js';
import type { CopyTrialCheckpointInput, CopyTrialCheckpointOutput } from '../../activities/checkpoint-copy';
import type { WriteSearchResultsInput, WriteSearchResultsOutput } from '../../activities/search-results';
import type { TrainModelResult } from '../train-model';
import { SEARCH_ATTRIBUTES } from '../search-attributes';
import { compareRanked, rankTrials, trialInput } from '../search-space';
import { applyEdit, epochBudget, validateEdit, type EditRecord, type EditReply, type SearchEdit, type TrialSignal } from './edits';
import type { LineageRecord } from './exploit';
import { finishExploit, planExploit, type PendingExploit } from './exploit';
import { createSearch, type SearchLogRow, type Searcher, type TrialDecision, type TrialScheduler } from './index';
import { LogBuffer } from './log-buffer';
import {
  bestTrial, childWorkflowId, editCount, failureMessage, metricOf, newTrial, RECENT_FAILURES, TOP_TRIALS, trialCount,
  type Leaderboard, type QueuedRun, type SearchResult, type SearchState, type StoreRowsState, type TrialRecord, type TrialTable,
} from './state';
import { joinUri } from '../../checkpoints/layout';
import type { TrialParams } from '../../config/search-types';
import type { TrialStatus } from '../../config/search-types';
import { invalidSearch, trialIssues, type ValidatedSearch } from './validate';

/** One `upsertSearchAttributes` call: status, trials finished, best metric (trainModel's attributes). */
export type Upsert = ReadonlyArray<
  | { readonly key: typeof SEARCH_ATTRIBUTES.status; readonly value: string }
  | { readonly key: typeof SEARCH_ATTRIBUTES.epoch; readonly value: number }
  | { readonly key: typeof SEARCH_ATTRIBUTES.bestMetric; readonly value: number }
>;

export type SearchCommand =
  /** Upsert these search attributes, in order, then ask again. */
  | { readonly kind: 'publish'; readonly upserts: readonly Upsert[] }
  /** Run `appendSearchLog({ searchUri, seq, rows })` (one log segment, create-only), then ask again. */
  | { readonly kind: 'append'; readonly seq: number; readonly rows: readonly SearchLogRow[] }
  /** Start this child trainModel and report its end with `onChildResult` / `onChildError`; then ask again. */
  | { readonly kind: 'start'; readonly trial: number; readonly rung: number; readonly workflowId: string; readonly input: Record<string, unknown> }
  /** Run `archiveTrialModel` (a promotion keeps the rung's export under rungs/rung-<r>/), then ask again. */
  | { readonly kind: 'archive'; readonly runUri: string; readonly rung: number }
  /** Run `copyTrialCheckpoint` and hand its result to `onCopied` before asking again (PBT's exploit). */
  | { readonly kind: 'copy'; readonly input: CopyTrialCheckpointInput }
  /**
   * Run `fetchTrialOutcome` for this child, started by an earlier run of the search (noDrain), and
   * report what it returns with `onChildResult` / `onChildError`; ask again at once (it runs meanwhile).
   */
  | { readonly kind: 'fetch'; readonly trial: number; readonly rung: number; readonly workflowId: string }
  /** Nothing to do until a child ends, an edit arrives or the failure budget is spent: `changedSince(this)`. */
  | { readonly kind: 'wait'; readonly inFlight: number; readonly edits: number }
  /** Continue as new with this state (once every handler finished). */
  | { readonly kind: 'continueAsNew'; readonly state: SearchState }
  /**
   * More trials failed than the budget allows: write these results, request cancellation of the
   * children in `cancel` (noDrain: they outlive the search), then fail with `budgetFailure()`.
   */
  | { readonly kind: 'failBudget'; readonly results: WriteSearchResultsInput; readonly cancel: readonly string[] }
  /** Done: publish, write these results, end the tracking run (FINISHED when `best`), then `complete(written)`. */
  | { readonly kind: 'finish'; readonly upserts: readonly Upsert[]; readonly results: WriteSearchResultsInput; readonly best: number | null };

export interface StepContext {
  /** Temporal suggests continuing as new (the history is large). */
  readonly continueAsNewSuggested: boolean;
  /**
   * Workflow time (ms since the epoch): a search that stores its rows appends them before waiting
   * only once they are LOG_FLUSH_MS old (or a segment's worth, or nothing runs). Without it: before
   * every wait.
   */
  readonly now?: number;
}

/** How old the oldest buffered row may be before a wait appends it: the log lags the search by at most this or one search event. */
export const LOG_FLUSH_MS = 5000;

export interface ControllerOptions {
  /**
   * One search-attribute upsert (status, trials finished, best metric together), and none when
   * nothing changed since the last (the workflow asks patched(SEARCH_SINGLE_UPSERT_PATCH)); else
   * the two upserts of searches started before it, at every publish.
   */
  readonly singleUpsert: boolean;
  /**
   * Continue as new without waiting for running children (the workflow asks
   * patched(SEARCH_NO_DRAIN_PATCH)): they ride in the state, and their ends reach the next run as
   * `trialEnded` signals (`onTrialEnded`) whose outcomes `fetch` commands get. Else: drain first.
   * @default false
   */
  readonly noDrain?: boolean;
}

/** A trial's place in the ranking when it was pushed (an entry whose trial moved since is stale). */
interface RankEntry {
  readonly trial: number;
  readonly rung: number;
  readonly value: number | null;
}

const finished = (s: TrialStatus): boolean => s !== 'pending' && s !== 'running';
/** No scheduler acts on the trial again (a paused one waits for a decision). */
const over = (s: TrialStatus): boolean => s === 'completed' || s === 'pruned' || s === 'failed';
/** The search log's folder under a search's folder (docs/search-log.md). */
export const searchLogUri = (searchUri: string): string => `${joinUri(searchUri, 'log')}/`;
const ranks = (t: TrialRecord): boolean => t.value !== null && t.status !== 'failed';

export class SearchController {
  readonly state: SearchState;
  /** Trials running, and trials neither pending nor running: kept as statuses change, not counted per event. */
  private runningCount = 0;
  private finishedCount_ = 0;
  /** The ranking, best on top (later rungs first, then the metric, then the trial number); stale entries are dropped when they surface. */
  private readonly best: Heap<RankEntry>;
  /** Rank order: later rungs first, then the metric, then the trial number. */
  private readonly order: (a: RankEntry, b: RankEntry) => number;
  /** Trials by number: the whole table, or (a search that stores its rows) the ones still in memory, in trial order. */
  private readonly rows = new Map<number, TrialRecord>();
  private readonly table: TrialTable;
  /** The counters and best trials of a search that stores its rows; null for one that keeps its table. */
  private readonly store: StoreRowsState | null;
  /** The attributes last upserted (singleUpsert): an unchanged publish upserts nothing. */
  private published: string | null = null;
  private readonly searcher: Searcher;
  private readonly scheduler: TrialScheduler;
  /** Decisions of the scheduler not applied yet. */
  private readonly decisions: TrialDecision[] = [];
  /** The batch of decisions being applied (a promotion or an exploit waits for an activity). */
  private batch: { readonly decisions: TrialDecision[]; index: number; readonly reached: TrialRecord[]; promoted: boolean } | null = null;
  /** An exploit whose archive was asked for: its copy comes next. */
  private exploitNext: PendingExploit | null = null;
  /** An exploit whose copy was asked for: `onCopied` finishes it. */
  private copying: PendingExploit | null = null;
  private finalBest: TrialRecord | null = null;
  /** Rows not yet appended to the search log (searches that write it: `state.store`), and segments cut from them. */
  private readonly log: LogBuffer | null;
  private segments: SearchLogRow[][] = [];
  /** The `finish` command, once decided: the last rows are appended before it is returned. */
  private finishing: SearchCommand | null = null;
  /** Runs this controller started (this run of the workflow holds their executeChild promises). */
  private readonly own = new Set<string>();
  /** Runs whose outcome a `fetch` command is getting. */
  private readonly fetching = new Set<string>();

  constructor(
    private readonly validated: ValidatedSearch,
    state: SearchState,
    /** The search's workflow id: children are `<it>/trial-<n>[/rung-<r>]`. */
    private readonly workflowId: string,
    resumed: boolean,
    private readonly options: ControllerOptions = { singleUpsert: false },
  ) {
    this.state = state;
    this.store = state.store ?? null;
    this.log = this.store ? new LogBuffer() : null;
    const byMetric = compareRanked(validated.config.mode);
    this.order = (a, b) => b.rung - a.rung || byMetric(a, b);
    this.best = new Heap<RankEntry>(this.order);
    for (const t of state.trials) {
      this.rows.set(t.trial, t);
      if (t.status === 'running') this.runningCount++;
      if (finished(t.status)) this.finishedCount_++;
      this.rank(t);
    }
    // Trials that left memory are counted in the store's counters.
    if (this.store) this.finishedCount_ = this.store.finished;
    this.table = { get: (n) => this.rows.get(n), add: (params) => this.addTrial(params) };
    const parts = createSearch(validated.config, state.trialLimit, resumed ? { searcher: state.searcher, scheduler: state.scheduler } : undefined);
    this.searcher = parts.searcher;
    this.scheduler = parts.scheduler;
  }

  private get config() {
    return this.validated.config;
  }

  private trialOf(n: number): TrialRecord {
    const t = this.rows.get(n);
    if (!t) throw new Error(`trial-${n} is not in memory (it finished)`);
    return t;
  }

  /** Trial `n`'s row, while it is in memory (every trial, for a search that keeps its table). */
  trial(n: number): TrialRecord | undefined {
    return this.rows.get(n);
  }

  /** The trials in memory, in trial order (every trial, for a search that keeps its table). */
  trialsInMemory(): TrialRecord[] {
    return [...this.rows.values()];
  }

  /** A new pending trial, numbered after every trial so far. */
  private addTrial(params: TrialParams): TrialRecord {
    const s = this.state;
    const t = newTrial(s.searchUri, trialCount(s) + 1, params);
    s.trials.push(t);
    if (this.store) this.store.trialCount = t.trial;
    this.rows.set(t.trial, t);
    this.touch(t);
    return t;
  }

  /**
   * A search that stores its rows: trials no scheduler acts on again leave memory once their rows
   * are cut for the log; the best of them stay in `store.top` (and `store.best`). PBT keeps its
   * whole population (a donor is any trial of the round). Called where `next()` waits or continues
   * as new: no decision is pending then.
   */
  private evict(): void {
    const store = this.store;
    if (!store || this.config.strategy === 'pbt') return;
    let left = 0;
    for (const t of this.rows.values()) {
      if (!over(t.status) || this.log!.holds(t.trial)) continue;
      this.rows.delete(t.trial);
      left++;
      if (ranks(t)) {
        const row = { ...t };
        if (store.top.length < TOP_TRIALS || this.order(row, store.top[store.top.length - 1]!) < 0) {
          store.top.push(row);
          store.top.sort(this.order);
          if (store.top.length > TOP_TRIALS) store.top.pop();
        }
        if (t.status === 'completed' && (!store.best || this.order(row, store.best) < 0)) store.best = row;
      }
    }
    if (left === 0) return;
    const s = this.state;
    s.trials = [...this.rows.values()];
    s.stopped = s.stopped.filter((n) => this.rows.has(n));
    // The heap's entries of trials that left are stale: rebuilt once they are most of it.
    if (this.best.size() > 2 * this.rows.size + 64) {
      this.best.clear();
      for (const t of this.rows.values()) this.rank(t);
    }
  }

  running(): number {
    return this.runningCount;
  }

  /** Every status change of a trial goes through here (or `recount`), so the counts stay exact. */
  private setStatus(t: TrialRecord, status: TrialStatus): void {
    this.recount(t.status, status);
    t.status = status;
    this.touch(t);
  }

  /** `t`'s row changed: it goes to the log with the next segment. */
  private touch(t: TrialRecord): void {
    this.log?.touch(t.trial);
  }

  /** The rows waiting, cut into segments (searches that write the log; none otherwise). */
  private flush(): void {
    if (this.log && !this.log.empty) this.segments.push(...this.log.cut((n) => this.trialOf(n)));
  }

  /** The next segment to append, if one is cut: its number is taken from the state now. */
  private append(): SearchCommand | null {
    const rows = this.segments.shift();
    if (!rows) return null;
    const store = this.state.store!;
    return { kind: 'append', seq: store.nextSeq++, rows };
  }

  /** `cmd`, after the rows waiting are appended (before waiting, continuing as new or finishing). */
  private afterFlush(cmd: SearchCommand, _ctx?: StepContext): SearchCommand {
    this.flush();
    if (cmd.kind === 'wait') this.evict();
    return this.append() ?? cmd;
  }

  private recount(before: TrialStatus, after: TrialStatus): void {
    this.runningCount += (after === 'running' ? 1 : 0) - (before === 'running' ? 1 : 0);
    this.finishedCount_ += (finished(after) ? 1 : 0) - (finished(before) ? 1 : 0);
  }

  /** `t`'s rung, metric or status changed: its new place in the ranking (O(log n)). */
  private rank(t: TrialRecord): void {
    if (ranks(t)) this.best.push({ trial: t.trial, rung: t.rung, value: t.value });
  }

  /** The best trial with a metric (what ranked()[0] is), from the heap: stale entries are popped as they surface. */
  bestSoFar(): TrialRecord | undefined {
    const kept = this.store?.top[0];
    for (;;) {
      const top = this.best.peek();
      if (!top) return kept;
      const t = this.rows.get(top.trial);
      if (t && ranks(t) && t.rung === top.rung && t.value === top.value) return kept && this.order(kept, t) < 0 ? kept : t;
      this.best.pop();
    }
  }

  private overBudget(): boolean {
    return this.config.failureBudget !== undefined && this.state.failures > this.config.failureBudget;
  }

  private finishedCount(): number {
    return this.finishedCount_;
  }

  /** A trial that reached a later rung (more epochs) ranks above every trial pruned before it. */
  ranked(): TrialRecord[] {
    const live = [...this.rows.values()].filter(ranks);
    return rankTrials([...live, ...(this.store?.top ?? [])], this.config.mode).sort((a, b) => b.rung - a.rung);
  }

  /** The search attributes as of now: status and trials finished, then the best metric if any. */
  publish(): Upsert[] {
    const status = [
      { key: SEARCH_ATTRIBUTES.status, value: this.state.status },
      { key: SEARCH_ATTRIBUTES.epoch, value: this.finishedCount() },
    ] as const;
    const best = this.bestSoFar();
    const metric = best?.value != null ? [{ key: SEARCH_ATTRIBUTES.bestMetric, value: best.value }] as const : [];
    if (!this.options.singleUpsert) return metric.length > 0 ? [status, metric] : [status];
    const key = JSON.stringify([this.state.status, this.finishedCount(), best?.value ?? null]);
    if (key === this.published) return [];
    this.published = key;
    return [[...status, ...metric]];
  }

  leaderboard(): Leaderboard {
    const s = this.state;
    const ranked = this.ranked();
    // A search that stores its rows: the best few and the live trials; the rest are in the log.
    const withMetric = this.store ? ranked.filter((t, i) => i < TOP_TRIALS || !over(t.status)) : ranked;
    const rest = [...this.rows.values()].filter((t) => !ranks(t));
    const { rung, rungs } = this.scheduler.progress();
    return {
      searchRunId: s.searchRunId, searchUri: s.searchUri, strategy: this.config.strategy, status: s.status, metric: this.config.metric, mode: this.config.mode,
      rung, rungs, maxParallel: s.maxParallel, running: this.running(), failed: s.failures, continuedRuns: s.continuedRuns, trials: [...withMetric, ...rest],
      trialCount: trialCount(s), finished: this.finishedCount(), ...(this.store && { logUri: searchLogUri(s.searchUri) }),
    };
  }

  /** The search starts searching (edits are accepted from now on). */
  begin(): Upsert[] {
    this.state.status = 'searching';
    return this.publish();
  }

  // ---- events ----------------------------------------------------------------------------------

  /** The editSearch Update's validator: throws a non-retryable InvalidEdit. */
  validateEdit(edit: unknown): asserts edit is SearchEdit {
    validateEdit(edit, this.config, this.state, this.table);
  }

  /** A validated edit: applied now; the workflow sends `signals`, then publishes. */
  onEdit(edit: SearchEdit, now: number): { reply: EditReply; signals: TrialSignal[] } {
    const before = 'trial' in edit ? this.trialOf(edit.trial).status : undefined;
    const waiting = before === 'pending';
    const { record, ...out } = applyEdit(edit, this.config, this.state, now, this.table);
    if ('trial' in edit) this.recount(before!, this.trialOf(edit.trial).status);
    if ('trial' in edit) this.touch(this.trialOf(edit.trial));
    this.log?.add({ kind: 'edit', ...record });
    // A stopped trial that had not reported at its rung yet is counted out, as a failure would be.
    if (edit.op === 'stop' && waiting) this.decisions.push(...this.scheduler.onTrialError(edit.trial, this.trialOf(edit.trial).rung));
    return out;
  }

  /** A child trainModel of `trial` at `rung` completed; returns the attributes to publish at once. */
  onChildResult(trial: number, rung: number, result: Pick<TrainModelResult, 'finalMetrics' | 'epochs' | 'step' | 'status' | 'modelUri'>): Upsert[] {
    const t = this.endedTrial(trial);
    if (!t || !this.takeEnd(t, rung)) return [];
    this.setStatus(t, 'completed');
    t.value = metricOf(result as TrainModelResult, this.config.metric);
    t.epochs = result.epochs;
    t.step = result.step;
    t.runStatus = result.status;
    t.modelUri = result.modelUri;
    this.rank(t);
    const upserts = this.publish();
    if (this.state.stopped.includes(t.trial)) return [...upserts, ...this.stopByEdit(t)];
    this.decisions.push(...this.scheduler.onTrialResult(t.trial, { rung, value: t.value, epochs: t.epochs, runStatus: result.status, params: t.params }));
    return upserts;
  }

  /** A child trainModel of `trial` at `rung` failed with `err`; returns the attributes to publish at once. */
  onChildError(trial: number, rung: number, err: unknown): Upsert[] {
    const t = this.endedTrial(trial);
    if (!t || !this.takeEnd(t, rung)) return [];
    // Stopped by an edit before its first checkpoint: not a failure of the trial.
    if (this.state.stopped.includes(t.trial)) return this.stopByEdit(t);
    this.setStatus(t, 'failed');
    t.value = null;
    t.error = failureMessage(err);
    this.state.failures++;
    if (this.store) this.store.recentFailures = [...this.store.recentFailures, `${t.id} (${t.error})`].slice(-RECENT_FAILURES);
    const upserts = this.publish();
    this.searcher.onTrialComplete(t.trial, { value: null, status: 'failed' });
    this.decisions.push(...this.scheduler.onTrialError(t.trial, rung));
    return upserts;
  }

  /**
   * A child reported its end (the `trialEnded` signal, noDrain): remembered in the state until its
   * outcome is applied, so a continue-as-new in between hands it to the next run, which fetches it.
   * Its content is not trusted: only the workflow id of a run this search has running counts;
   * anything else, and a repeat, is ignored (returns false).
   */
  onTrialEnded(workflowId: string): boolean {
    if (!this.options.noDrain) return false;
    const t = this.runningUnder(workflowId);
    const reported = (this.state.endReported ??= []);
    if (!t || reported.includes(workflowId)) return false;
    reported.push(workflowId);
    return true;
  }

  /** The checkpoint copy of the exploit the last `copy` command asked for was made. */
  onCopied(copied: Pick<CopyTrialCheckpointOutput, 'checkpointUri'>, now: number): void {
    const pending = this.copying;
    if (!pending) throw new Error('onCopied without a copy command');
    this.copying = null;
    const t = this.trialOf(pending.trial);
    const before = t.status;
    const row = finishExploit(this.state, t, pending, copied.checkpointUri, now);
    this.recount(before, t.status);
    this.touch(t);
    this.log?.add({ kind: 'lineage', ...row });
  }

  /** Whether anything the last `wait` command waits for happened. */
  changedSince(wait: { readonly inFlight: number; readonly edits: number }): boolean {
    return this.running() < wait.inFlight || this.overBudget() || this.decisions.length > 0 || editCount(this.state) > wait.edits || this.fetchable() !== undefined;
  }

  // ---- commands --------------------------------------------------------------------------------

  /** The next command. Call again after executing it (a `wait` once `changedSince` it). */
  next(ctx: StepContext): SearchCommand {
    if (this.copying) throw new Error('next() before onCopied: the copy command was not finished');
    for (;;) {
      const segment = this.append();
      if (segment) return segment;
      if (this.log?.full) {
        this.flush();
        continue;
      }
      if (this.finishing) return this.afterFlush(this.finishing);
      if (this.exploitNext) {
        this.copying = this.exploitNext;
        this.exploitNext = null;
        return { kind: 'copy', input: this.copying.copy };
      }
      if (this.batch) {
        const cmd = this.stepBatch();
        if (cmd) return cmd;
        continue;
      }
      const fetch = this.fetchable();
      if (fetch) {
        this.fetching.add(fetch.workflowId);
        return { kind: 'fetch', ...fetch };
      }
      if (this.overBudget()) return this.afterFlush({ kind: 'failBudget', results: this.results(this.bestSoFar()?.trial ?? null), cancel: this.options.noDrain ? this.runningIds() : [] });
      if (this.decisions.length > 0) {
        this.batch = { decisions: this.decisions.splice(0), index: 0, reached: [], promoted: false };
        continue;
      }
      const inFlight = this.running();
      const s = this.state;
      const due = (this.config.continueAsNewEvery > 0 && s.startedThisRun >= this.config.continueAsNewEvery) || ctx.continueAsNewSuggested;
      const noDrain = this.options.noDrain === true;
      if (due && noDrain && inFlight > 0 && (ctx.continueAsNewSuggested || this.moreToStart())) {
        // noDrain: running children ride in the state (their ends reach the next run by signal), but
        // an outcome being fetched is this run's to apply: wait for it first.
        if (this.fetching.size > 0) return this.afterFlush({ kind: 'wait', inFlight, edits: editCount(s) }, ctx);
        this.flush();
        if (this.segments.length > 0) continue;
        this.evict();
        return { kind: 'continueAsNew', state: this.snapshot() };
      }
      // Due (drain): no child is in flight across the boundary, so none is lost or repeated.
      if (due && !noDrain ? inFlight > 0 : inFlight >= s.maxParallel) return this.afterFlush({ kind: 'wait', inFlight, edits: editCount(s) }, ctx);
      const run = this.nextRun();
      if (!run) {
        // A trial held by an edit keeps the search open until it is resumed or stopped.
        if (inFlight > 0 || s.queue.length > 0) return this.afterFlush({ kind: 'wait', inFlight, edits: editCount(s) }, ctx);
        const last = this.scheduler.onSearchEnd();
        if (last.length === 0) {
          this.finishing = this.finish();
          continue;
        }
        this.decisions.push(...last);
        continue;
      }
      if (due) {
        this.flush();
        if (this.segments.length > 0) continue;
        this.evict();
        return { kind: 'continueAsNew', state: this.snapshot() };
      }
      return this.launch(run);
    }
  }

  /**
   * The state to carry through continue-as-new: the searcher's and scheduler's JSON state included.
   * Complete only when `next()` last returned `wait` or `continueAsNew` (no decision is pending then).
   */
  snapshot(): SearchState {
    this.state.searcher = this.searcher.getState();
    this.state.scheduler = this.scheduler.getState();
    if (this.store) this.store.finished = this.finishedCount();
    return this.state;
  }

  /** The failure after a `failBudget` command's results were written. */
  budgetFailure(): ApplicationFailure {
    const s = this.state;
    const failed = this.store
      ? `${this.store.recentFailures.join('; ')}${s.failures > this.store.recentFailures.length ? ` (the last ${this.store.recentFailures.length}; every failure is in ${searchLogUri(s.searchUri)})` : ''}`
      : s.trials.filter((t) => t.status === 'failed').map((t) => `${t.id} (${t.error})`).join('; ');
    return ApplicationFailure.create({
      message: `${s.failures} trials failed, more than failureBudget ${this.config.failureBudget}: ${failed}`,
      type: 'FailureBudgetExceeded',
      nonRetryable: true,
    });
  }

  /** After a `finish` command's results were written: the result and the last attributes, or NoSuccessfulTrial. */
  complete(written: WriteSearchResultsOutput): { result: SearchResult; upserts: Upsert[] } {
    const best = this.finalBest;
    const s = this.state;
    if (!best || best.value === null || best.modelUri === null || best.workflowId === null) {
      throw ApplicationFailure.create({
        message: `No trial completed with a \`${this.config.metric}\` metric (${s.failures} of ${trialCount(s)} failed); see ${written.resultsUri}`,
        type: 'NoSuccessfulTrial',
        nonRetryable: true,
      });
    }
    s.status = 'completed';
    const upserts = this.publish();
    const top = this.ranked().slice(0, TOP_TRIALS);
    const result: SearchResult = {
      searchRunId: s.searchRunId,
      searchUri: s.searchUri,
      strategy: this.config.strategy,
      metric: this.config.metric,
      mode: this.config.mode,
      best: { ...bestTrial(best), metric: this.config.metric, value: best.value, workflowId: best.workflowId, modelUri: best.modelUri },
      // A search that stores its rows: its table, edits and lineage as read back from its log when
      // small (writeSearchResults), else its best few; every row is in its log.
      trials: written.trials ?? (this.store ? top : s.trials),
      failed: s.failures,
      rungs: this.scheduler.progress().rungs,
      edits: (written.edits as EditRecord[] | undefined) ?? s.edits,
      lineage: (written.lineage as LineageRecord[] | undefined) ?? s.lineage,
      ...(this.store && { logUri: searchLogUri(s.searchUri), ...(this.store.firstSeq !== undefined && { fromSeq: this.store.firstSeq }), trialCount: trialCount(s), top }),
      resultsUri: written.resultsUri,
      csvUri: written.csvUri,
      plotUri: written.plotUri,
    };
    return { result, upserts };
  }

  // ---- internals -------------------------------------------------------------------------------

  /** The trial whose run ended; noDrain: undefined for a repeated end of a trial that has left memory since. */
  private endedTrial(n: number): TrialRecord | undefined {
    return this.options.noDrain && !this.rows.has(n) ? undefined : this.trialOf(n);
  }

  /** The trial running under `workflowId`, if any. */
  private runningUnder(workflowId: string): TrialRecord | undefined {
    return this.state.trials.find((t) => t.status === 'running' && t.workflowId === workflowId);
  }

  private runningIds(): string[] {
    return this.state.trials.flatMap((t) => (t.status === 'running' && t.workflowId !== null ? [t.workflowId] : []));
  }

  /**
   * Whether the end of `t`'s run at `rung` is news (noDrain: a run's outcome can arrive twice, by
   * its promise and by a fetch, or after a continue-as-new): once taken, it is forgotten everywhere.
   */
  private takeEnd(t: TrialRecord, rung: number): boolean {
    if (!this.options.noDrain) return true;
    if (t.status !== 'running' || t.rung !== rung || t.workflowId === null) return false;
    const id = t.workflowId;
    this.own.delete(id);
    this.fetching.delete(id);
    if (this.state.endReported) this.state.endReported = this.state.endReported.filter((w) => w !== id);
    return true;
  }

  /** Whether a run could start now or later without a result first (a ready queued run, or the searcher's next). */
  private moreToStart(): boolean {
    const s = this.state;
    return s.queue.some((q) => !s.held.includes(q.trial)) || (!s.searcherFinished && s.suggested < s.trialLimit);
  }

  /** A reported end of a run this run did not start and is not fetching yet. */
  private fetchable(): { trial: number; rung: number; workflowId: string } | undefined {
    for (const id of this.state.endReported ?? []) {
      if (this.own.has(id) || this.fetching.has(id)) continue;
      const t = this.runningUnder(id);
      if (t) return { trial: t.trial, rung: t.rung, workflowId: id };
    }
    return undefined;
  }

  private end(t: TrialRecord, status: 'completed' | 'pruned'): void {
    this.setStatus(t, status);
    this.searcher.onTrialComplete(t.trial, { value: t.value, status });
  }

  /** A run stopped by an edit ended: pruned; the scheduler counts it out as it would a failure. */
  private stopByEdit(t: TrialRecord): Upsert[] {
    this.end(t, 'pruned');
    const upserts = this.publish();
    this.decisions.push(...this.scheduler.onTrialError(t.trial, t.rung));
    return upserts;
  }

  /** The next run to start: a queued one (later rungs first, then trial order), else a new suggestion. */
  private nextRun(): QueuedRun | undefined {
    const s = this.state;
    const ready = s.queue.filter((q) => !s.held.includes(q.trial));
    if (ready.length > 0) return ready.sort((a, b) => b.rung - a.rung || a.trial - b.trial)[0];
    if (s.searcherFinished || s.suggested >= s.trialLimit) return undefined;
    // Trials added by an edit take trial numbers, not the searcher's: it is asked for its own next one.
    const n = trialCount(s) + 1;
    const suggestion = this.searcher.suggest(s.suggested + 1);
    if (suggestion.kind === 'finished') s.searcherFinished = true;
    if (suggestion.kind !== 'trial') return undefined;
    s.suggested++;
    if (n > this.validated.trials.length) {
      // Validation checked every trial a searcher suggests up front; this one came from results.
      const { issues } = trialIssues(this.config, n, suggestion.params, { searchUri: s.searchUri, maxEpochs: this.scheduler.maxEpochsAt(1) ?? epochBudget(this.config, s) }, new Set());
      if (issues.length > 0) throw invalidSearch(issues);
    }
    this.addTrial(suggestion.params);
    const run = { trial: n, rung: 1 };
    s.queue.push(run);
    return run;
  }

  private launch(run: QueuedRun): SearchCommand {
    const s = this.state;
    s.queue = s.queue.filter((q) => q.trial !== run.trial);
    const t = this.trialOf(run.trial);
    const workflowId = childWorkflowId(this.workflowId, t.trial, run.rung);
    this.setStatus(t, 'running');
    t.rung = run.rung;
    t.workflowId = workflowId;
    t.error = null;
    this.rank(t);
    s.startedThisRun++;
    this.own.add(workflowId);
    const maxEpochs = this.scheduler.maxEpochsAt(run.rung) ?? s.maxEpochs;
    const input = trialInput(this.config.base, t.params, {
      runId: t.id,
      searchUri: s.searchUri,
      ...(maxEpochs !== undefined && { maxEpochs }),
      // Later rungs continue the trial's own run: its recorded epochs rebuild trainModel's state
      // and training resumes from its newest checkpoint.
      resume: run.rung > 1,
    });
    return { kind: 'start', trial: t.trial, rung: run.rung, workflowId, input };
  }

  /** Applies the batch's decisions in order; returns the activity a decision needs, or null when the batch is done and nothing is to publish. */
  private stepBatch(): SearchCommand | null {
    const b = this.batch!;
    while (b.index < b.decisions.length) {
      const d = b.decisions[b.index++]!;
      const t = this.rows.get(d.trial);
      // Stopped by an edit, or (a search that stores its rows) over and out of memory: nothing to decide.
      if (!t || this.state.stopped.includes(t.trial)) continue;
      if (d.action === 'promote') {
        b.promoted = true;
        const target = this.scheduler.maxEpochsAt(d.rung);
        if (t.runStatus === 'completed' && (target === undefined || t.epochs < target)) {
          this.setStatus(t, 'pending');
          this.state.queue.push({ trial: t.trial, rung: d.rung });
          // trainModel will not overwrite an export: keep this rung's under rungs/rung-<r>/.
          return { kind: 'archive', runUri: t.runUri, rung: t.rung };
        }
        // Early-stopped (or already there): its run is over; it competes at the next rung as it is.
        t.rung = d.rung;
        this.setStatus(t, 'paused');
        this.rank(t);
        b.reached.push(t);
      } else if (d.action === 'exploit') {
        b.promoted = true;
        const maxEpochs = this.scheduler.maxEpochsAt(d.rung);
        const nextInput = trialInput(this.config.base, d.params, { runId: t.id, searchUri: this.state.searchUri, resume: true, ...(maxEpochs !== undefined && { maxEpochs }) });
        this.exploitNext = planExploit(t, this.trialOf(d.from), d.rung, d.params, nextInput);
        return { kind: 'archive', runUri: t.runUri, rung: t.rung };
      } else if (d.action === 'pause') {
        this.setStatus(t, 'paused');
      } else if (d.action === 'stop') {
        this.end(t, 'pruned');
      } else if (t.status !== 'running') {
        this.end(t, 'completed');
      }
    }
    this.batch = null;
    for (const t of b.reached) {
      this.decisions.push(...this.scheduler.onTrialResult(t.trial, { rung: t.rung, value: t.value, epochs: t.epochs, runStatus: t.runStatus ?? 'completed', params: t.params }));
    }
    return b.promoted ? { kind: 'publish', upserts: this.publish() } : null;
  }

  private results(bestTrialNumber: number | null): WriteSearchResultsInput {
    const s = this.state;
    return {
      searchUri: s.searchUri,
      title: `${s.searchRunId}: ${this.config.strategy} search, ${trialCount(s)} trials, ${this.config.metric} (${this.config.mode})`,
      strategy: this.config.strategy,
      metric: this.config.metric,
      mode: this.config.mode,
      bestTrial: bestTrialNumber,
      // A search that stores its rows: the activity reads the table from the log; these are the best few.
      trials: this.store ? this.ranked().slice(0, TOP_TRIALS) : s.trials,
      edits: s.edits,
      lineage: s.lineage,
      ...(this.store && { logUri: searchLogUri(s.searchUri), trialCount: trialCount(s), edits: [], lineage: [], editCount: this.store.edits, lineageCount: this.store.lineage }),
    };
  }

  /** Nothing runs and nothing will: a trial still waiting for a promotion will not get one. */
  private finish(): SearchCommand {
    for (const t of this.rows.values()) if (t.status === 'paused') this.end(t, 'pruned');
    const live = this.ranked().filter((t) => t.status === 'completed')[0] ?? null;
    const kept = this.store?.best ?? null;
    const best = kept && (!live || this.order(kept, live) < 0) ? kept : live;
    this.finalBest = best;
    this.state.status = 'finalizing';
    return { kind: 'finish', upserts: this.publish(), results: this.results(best?.trial ?? null), best: best?.trial ?? null };
  }
}

