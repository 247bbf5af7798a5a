/**
 * What a hyperparameter search writes in its own folder: `search.json` (its owner record, claimed
 * before any trial: src/checkpoints/search-identity.ts), `results.json` (the whole summary),
 * `results.csv` (one row per trial) and `results.svg` (the leaderboard: the metric of every trial,
 * best first, coloured by the halving rung it reached). Only the folder's owners write there.
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
}

export interface WriteSearchResultsOutput {
  readonly resultsUri: string;
  readonly csvUri: string;
  readonly plotUri: string;
}

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

export function resultsCsv(input: WriteSearchResultsInput): string {
  const paths = [...new Set(input.trials.flatMap((t) => Object.keys(t.params)))];
  const header = ['trial', 'id', 'status', 'rung', 'epochs', 'step', input.metric, ...paths, 'runStatus', 'workflowId', 'modelUri', 'error'];
  const rows = input.trials.map((t) => [
    t.trial, t.id, t.status, t.rung, t.epochs, t.step, t.value, ...paths.map((p) => t.params[p]), t.runStatus, t.workflowId, t.modelUri, t.error,
  ]);
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
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
    async claimSearchFolder(input: ClaimSearchFolderInput): Promise<{ readonly created: boolean }> {
      const store = deps.openStore(input.searchUri);
      return storeCall(() => claimSearchFolder(store, input.config, callingWorkflowId(), withinAllowList(deps.openStore)));
    },

    /** Writes results.json, results.csv and results.svg into the search's folder (its owners only; the latest summary wins). */
    async writeSearchResults(input: WriteSearchResultsInput): Promise<WriteSearchResultsOutput> {
      const store = deps.openStore(input.searchUri);
      await storeCall(async () => {
        await storeCall(() => assertSearchOwner(store, callingWorkflowId()));
        await store.put(RESULTS_JSON, Buffer.from(JSON.stringify(input, null, 2) + '\n'));
        await store.put(RESULTS_CSV, Buffer.from(resultsCsv(input)));
        await store.put(RESULTS_SVG, Buffer.from(await renderSvg(leaderboardChart(input))));
      });
      return { resultsUri: store.uriOf(RESULTS_JSON), csvUri: store.uriOf(RESULTS_CSV), plotUri: store.uriOf(RESULTS_SVG) };
    },
  };
}

export type SearchResultActivities = ReturnType<typeof createSearchResultActivities>;
