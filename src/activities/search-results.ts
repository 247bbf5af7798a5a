/**
 * What a hyperparameter search writes in its own folder: `search.json` (its owner record, claimed
 * before any trial: src/checkpoints/search-identity.ts), `results.json` (the whole summary),
 * `results.csv` (one row per trial) and `results.svg` (the leaderboard: the metric of every trial,
 * best first, coloured by the halving rung it reached). Only the folder's owners write there.
 *
 * A search that stores its rows (search-store-rows: `logUri` in the input) hands over only its
 * best few: the table is read from its log (docs/search-log.md) in pages, results.json holds the
 * summary, the best trial, the best few and where the table is, the plot the best PLOT_TRIALS.
 */
import { Context } from '@temporalio/activity';
import { ancestorUris } from '../checkpoints/folder-owners';
import { MODEL_DIR, RESULTS_CSV, RESULTS_JSON, RESULTS_SVG, modelJsonKey, rungModelDir } from '../checkpoints/layout';
import { assertSearchOwner, claimSearchFolder } from '../checkpoints/search-identity';
import type { CheckpointStore } from '../checkpoints/store';
import type { SearchConfig } from '../config/search-config';
import type { TrialRow } from '../config/search-types';
import type { Mode } from '../config/train-config';
import { withinAllowList } from './fencing';
import { storeCall } from './store-and-trainer';
import { readSearchLog } from '../checkpoints/search-log';
import { leaderboardSpec, renderSvg } from '../observability/charts';

export interface SearchResultDeps {
  readonly openStore: (uri: string) => CheckpointStore;
}

export interface WriteSearchResultsInput {
  /** The search's folder, `<root>/<search runId>`. */
  readonly searchUri: string;
  readonly title: string;
  readonly strategy: string;
  readonly metric: string;
  readonly mode: Mode;
  /** Trial number of the winner, or null. */
  readonly bestTrial: number | null;
  readonly trials: readonly TrialRow[];
  /** The search's live edits, in the order applied (plain JSON; see workflows/search/edits.ts). */
  readonly edits?: readonly unknown[];
  /** PBT: every checkpoint copy between trials (workflows/search/exploit.ts). */
  readonly lineage?: readonly unknown[];
  /**
   * A search that stores its rows (search-store-rows): its log's folder, `<searchUri>/log/`. The
   * table is read from the log (`trials` holds only the best few), edits and lineage are counted.
   */
  readonly logUri?: string;
  /** The segment this search's rows begin at (a search started again on a folder appends after the earlier one's log). */
  readonly fromSeq?: number;
  readonly trialCount?: number;
  readonly editCount?: number;
  readonly lineageCount?: number;
}

export interface WriteSearchResultsOutput {
  readonly resultsUri: string;
  readonly csvUri: string;
  readonly plotUri: string;
  /**
   * A search that stores its rows, small enough for one payload (at most RESULT_TRIALS trials and
   * RESULT_RECORD_CHARS of edits and of lineage): its whole table (trial order), edits and lineage,
   * read back from its log, for its result. Absent otherwise: the result then holds the best few.
   */
  readonly trials?: readonly TrialRow[];
  readonly edits?: readonly unknown[];
  readonly lineage?: readonly unknown[];
}

/** Trials a search that stores its rows returns whole in its result (else its best few; every row is in its log). */
export const RESULT_TRIALS = 200;
/** JSON characters of edits, and of lineage, returned whole in a result. */
export const RESULT_RECORD_CHARS = 64 * 1024;

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One row per trial; each searched path is a column of its own. */
/** The leaderboard chart of the search (src/observability/charts.ts). */
export function leaderboardChart(input: WriteSearchResultsInput): ReturnType<typeof leaderboardSpec> {
  const rows = input.trials.map((t) => ({ trial: t.id, value: t.value, rung: t.rung, status: t.status }));
  return leaderboardSpec(input.title, input.metric, input.mode, rows);
}

const csvHeader = (metric: string, paths: readonly string[]): string =>
  ['trial', 'id', 'status', 'rung', 'epochs', 'step', metric, ...paths, 'runStatus', 'workflowId', 'modelUri', 'error'].map(csvCell).join(',');

const csvLine = (t: TrialRow, paths: readonly string[]): string =>
  [t.trial, t.id, t.status, t.rung, t.epochs, t.step, t.value, ...paths.map((p) => t.params[p]), t.runStatus, t.workflowId, t.modelUri, t.error].map(csvCell).join(',');

export function resultsCsv(input: WriteSearchResultsInput): string {
  const paths = [...new Set(input.trials.flatMap((t) => Object.keys(t.params)))];
  return [csvHeader(input.metric, paths), ...input.trials.map((t) => csvLine(t, paths))].join('\n') + '\n';
}

/** Trials the plot of a search that stores its rows draws: the best, by rung then metric. */
export const PLOT_TRIALS = 50;
/** Rows one page of the log read for the results holds at most. */
const RESULTS_PAGE_ROWS = 10_000;

/** What the log of a search says, read twice in pages: each trial's last row wins (docs/search-log.md). */
export interface LogTable {
  /** results.csv: one line per trial, in trial order. */
  readonly csv: string;
  readonly trials: number;
  readonly statuses: Record<string, number>;
  readonly edits: number;
  readonly lineage: number;
  /** The row of `input.bestTrial`, or null. */
  readonly best: TrialRow | null;
  /** The best PLOT_TRIALS with a metric, best first. */
  readonly plotted: TrialRow[];
  /** Every trial's row in trial order, the edits and the lineage, each when within RESULT_TRIALS / RESULT_RECORD_CHARS. */
  readonly small: { trials?: TrialRow[]; edits?: unknown[]; lineage?: unknown[] };
}

/** Reads every row of the log in `store` (rooted at the search folder), page by page. */
async function eachLogRow(store: CheckpointStore, fn: (row: Record<string, unknown>, index: number) => void, firstSeq = 0, atEnd?: (nextSeq: number) => void): Promise<void> {
  let index = 0;
  for (let fromSeq = firstSeq; ; ) {
    const page = await readSearchLog(store, { fromSeq, maxRows: RESULTS_PAGE_ROWS });
    for (const row of page.rows) fn(row, index++);
    if (page.end) return atEnd?.(page.nextSeq);
    fromSeq = page.nextSeq;
  }
}

const isTrialRow = (row: Record<string, unknown>): row is Record<string, unknown> & TrialRow =>
  row.kind === 'trial' && Number.isSafeInteger(row.trial) && (row.trial as number) >= 1 && typeof row.params === 'object' && row.params !== null;

/**
 * The table of a search that stores its rows, from its log: a first pass finds each trial's last
 * row (an index per trial number, 8 bytes a trial) and the searched paths, a second writes those
 * rows' CSV lines in trial order and keeps the best PLOT_TRIALS. Pages are read and dropped; the
 * CSV text itself (about 200 bytes a trial) is the one thing held whole, as the store writes one object.
 */
export async function tableFromLog(store: CheckpointStore, input: Pick<WriteSearchResultsInput, 'metric' | 'mode' | 'bestTrial' | 'trialCount' | 'fromSeq'>): Promise<LogTable> {
  let last = new Float64Array(Math.max(16, (input.trialCount ?? 0) + 1)).fill(-1);
  const paths = new Set<string>();
  let edits = 0;
  let lineage = 0;
  const records = { edit: { rows: [] as unknown[], chars: 0 }, lineage: { rows: [] as unknown[], chars: 0 } };
  await eachLogRow(store, (row, i) => {
    if (row.kind === 'edit') edits++;
    if (row.kind === 'lineage') lineage++;
    if (row.kind === 'edit' || row.kind === 'lineage') {
      const kept = records[row.kind];
      const copy: Record<string, unknown> = { ...row };
      delete copy.kind;
      kept.chars += JSON.stringify(copy).length;
      if (kept.chars <= RESULT_RECORD_CHARS) kept.rows.push(copy);
    }
    if (!isTrialRow(row)) return;
    if (row.trial >= last.length) {
      const grown = new Float64Array(Math.max(row.trial + 1, last.length * 2)).fill(-1);
      grown.set(last);
      last = grown;
    }
    last[row.trial] = i;
    for (const p of Object.keys(row.params)) paths.add(p);
  }, input.fromSeq);
  const columns = [...paths];
  const lines: string[] = [];
  const statuses: Record<string, number> = {};
  let best: TrialRow | null = null;
  // The search's ranking (workflows/search-space.ts compareRanked, by rung first): later rungs, then the metric, then the trial number.
  const rank = (a: TrialRow, b: TrialRow) => b.rung - a.rung || (input.mode === 'min' ? a.value! - b.value! : b.value! - a.value!) || a.trial - b.trial;
  let plotted: TrialRow[] = [];
  const whole: TrialRow[] = [];
  await eachLogRow(store, (row, i) => {
    if (!isTrialRow(row) || last[row.trial] !== i) return;
    const copy: Record<string, unknown> = { ...row };
    delete copy.kind;
    const trial = copy as unknown as TrialRow;
    lines[row.trial] = csvLine(trial, columns);
    if (row.trial <= RESULT_TRIALS) whole[row.trial] = trial;
    statuses[trial.status] = (statuses[trial.status] ?? 0) + 1;
    if (trial.trial === input.bestTrial) best = trial;
    if (trial.value !== null && Number.isFinite(trial.value) && trial.status !== 'failed' && (plotted.length < PLOT_TRIALS || rank(trial, plotted[plotted.length - 1]!) < 0)) {
      plotted.push(trial);
      plotted.sort(rank);
      if (plotted.length > PLOT_TRIALS) plotted = plotted.slice(0, PLOT_TRIALS);
    }
  }, input.fromSeq);
  const body = lines.filter((l) => l !== undefined);
  const trials = whole.filter((t) => t !== undefined);
  const small = {
    ...(body.length <= RESULT_TRIALS && { trials }),
    ...(records.edit.chars <= RESULT_RECORD_CHARS && { edits: records.edit.rows }),
    ...(records.lineage.chars <= RESULT_RECORD_CHARS && { lineage: records.lineage.rows }),
  };
  return { csv: [csvHeader(input.metric, columns), ...body].join('\n') + '\n', trials: body.length, statuses, edits, lineage, best, plotted, small };
}


export interface ClaimSearchFolderOutput {
  /** search.json was written by this call (a new folder). */
  readonly created: boolean;
  /** The first free segment number of the folder's search log (0 for a new folder; absent in histories recorded before it). */
  readonly logEnd?: number;
}

export interface ClaimSearchFolderInput {
  /** The search's folder, `<root>/<search runId>`. */
  readonly searchUri: string;
  /** The search's validated input: its identity is computed from it. */
  readonly config: SearchConfig;
}

/** The calling activity's workflow id (Temporal's): a search folder's owner. */
function callingWorkflowId(): string {
  return Context.current().info.workflowExecution?.workflowId ?? '(no workflow)';
}

export interface ArchiveTrialModelInput {
  /** The trial's folder, `<search folder>/trial-<n>`. */
  readonly runUri: string;
  /** The rung whose export is archived. */
  readonly rung: number;
}

export function createSearchResultActivities(deps: SearchResultDeps) {
  return {
    /**
     * Moves a trial's exported model (`model/`) to `rungs/rung-<r>/model/` before a later rung of
     * successive halving continues the same run: trainModel refuses to overwrite an export with
     * different bytes. Copies first, deletes last, so a retry after a crash finds the copy.
     */
    async archiveTrialModel(input: ArchiveTrialModelInput): Promise<{ readonly modelUri: string | null }> {
      const store = deps.openStore(input.runUri);
      const source = `${MODEL_DIR}/`;
      const target = `${rungModelDir(input.rung)}/`;
      return storeCall(async () => {
        const searchUri = ancestorUris(input.runUri)[0];
        if (searchUri !== undefined) await storeCall(() => assertSearchOwner(deps.openStore(searchUri), callingWorkflowId()));
        for (const key of await store.list(source)) {
          const data = await store.get(key);
          if (data) await store.put(`${target}${key.slice(source.length)}`, data);
        }
        await store.deletePrefix(source);
        const archived = await store.get(modelJsonKey(rungModelDir(input.rung)));
        return { modelUri: archived ? store.uriOf(modelJsonKey(rungModelDir(input.rung))) : null };
      });
    },

    /**
     * Claims the search's folder before its first trial: records search.json (the search's identity
     * and this workflow as an owner) or checks the input against it. A different search fails here,
     * non-retryably (SearchIdentityMismatch naming the fields, or NestedFolder), before any trial.
     */
    async claimSearchFolder(input: ClaimSearchFolderInput): Promise<ClaimSearchFolderOutput> {
      const store = deps.openStore(input.searchUri);
      const { created } = await storeCall(() => claimSearchFolder(store, input.config, callingWorkflowId(), withinAllowList(deps.openStore)));
      if (created) return { created, logEnd: 0 };
      // The same search started again on its folder: its rows go after the earlier one's, never over them.
      let logEnd = 0;
      await eachLogRow(store, () => undefined, 0, (next) => (logEnd = next));
      return { created, logEnd };
    },

    /** Writes results.json, results.csv and results.svg into the search's folder (its owners only; the latest summary wins). */
    async writeSearchResults(input: WriteSearchResultsInput): Promise<WriteSearchResultsOutput> {
      const store = deps.openStore(input.searchUri);
      const written = { resultsUri: store.uriOf(RESULTS_JSON), csvUri: store.uriOf(RESULTS_CSV), plotUri: store.uriOf(RESULTS_SVG) };
      let small: LogTable['small'] = {};
      await storeCall(async () => {
        await storeCall(() => assertSearchOwner(store, callingWorkflowId()));
        if (input.logUri !== undefined) {
          // The table is in the log: summary, best and best few here, every row in results.csv.
          const table = await tableFromLog(store, input);
          const summary = {
            title: input.title, strategy: input.strategy, metric: input.metric, mode: input.mode, bestTrial: input.bestTrial, best: table.best,
            trialCount: table.trials, statuses: table.statuses, top: input.trials, edits: table.edits, lineage: table.lineage,
            logUri: input.logUri, csvUri: written.csvUri,
          };
          await store.put(RESULTS_JSON, Buffer.from(JSON.stringify(summary, null, 2) + '\n'));
          await store.put(RESULTS_CSV, Buffer.from(table.csv));
          await store.put(RESULTS_SVG, Buffer.from(await renderSvg(leaderboardChart({ ...input, trials: table.plotted }))));
          small = table.small;
          return;
        }
        await store.put(RESULTS_JSON, Buffer.from(JSON.stringify(input, null, 2) + '\n'));
        await store.put(RESULTS_CSV, Buffer.from(resultsCsv(input)));
        await store.put(RESULTS_SVG, Buffer.from(await renderSvg(leaderboardChart(input))));
      });
      return { ...written, ...small };
    },
  };
}

export type SearchResultActivities = ReturnType<typeof createSearchResultActivities>;
