/**
 * The start of a new hyperparameterSearch (workflow code): the search's folder and the checks only
 * the worker can make (registry names, allowed URIs), before any trial starts.
 */
import { patched, workflowInfo } from '@temporalio/workflow';
import { joinUri, trialId } from '../../checkpoints/layout';
import { pbtSpaceIssues } from '../../config/search-config';
import { Checker, checkPathSegment } from '../../config/validate';
import { checkInputUris, checkRegistryNames, describeWorker, trainConfigUris } from '../activity-proxies';
import { baseTracking } from '../run-tracking';
import { PBT_BOUNDS_PATCH, PBT_SPACE_PATCH, SEARCH_STORE_ROWS_PATCH } from '../patches';
import type { SearchConfig } from '../../config/search-config';
import type { ConfigIssue } from '../../config/validate';
import { pbtBoundIssues, pbtEpochs } from './pbt';
import { ashaEpochs } from './asha';
import { childWorkflowId, initialState, newTrial, RECENT_FAILURES, TOP_TRIALS, type SearchState } from './state';
import { baseCheckpointRoot, invalidSearch, type ValidatedSearch } from './validate';

/** Temporal's payload warning level: a continue-as-new input of a grid or random search that stores its rows stays below it. */
export const MAX_SEARCH_STATE_BYTES = 256 * 1024;

/**
 * The continue-as-new input of a search whose strategy keeps every trial it may still act on
 * (ASHA, halving, PBT: exact promotion needs every value reported at a rung). Above Temporal's
 * 256 KB warning level, well under the 2 MB it refuses: these strategies carried their whole table
 * before the log, capped at 2,000 trials (about 0.8 MB), and a search they ran then still starts.
 */
export const MAX_KEPT_STATE_BYTES = 1536 * 1024;

/**
 * The bytes a search that stores its rows carries per trial through continue-as-new, when its
 * strategy keeps trials it may still act on: ASHA and halving keep every trial paused at a rung
 * (its row, and its value in the rung's results), PBT its whole population and every round's
 * reports. Measured on a sample row of this search (its folder's length and its values), with UTF-8's
 * worst case left out: rows are mostly ASCII URIs and numbers. 0 for grid and random (constant state).
 */
export function storedBytesPerTrial(config: SearchConfig, sampleRow: object, params: object): number {
  const row = JSON.stringify(sampleRow).length + 1;
  const maxEpochs = typeof config.base.maxEpochs === 'number' ? config.base.maxEpochs : 1;
  switch (config.strategy) {
    case 'grid':
    case 'random':
      return 0;
    case 'asha':
      // {"trial":n,"value":v} in each rung's results, and a promoted trial's number.
      return row + 48 * ashaEpochs(config.eta, config.minEpochs ?? 1, maxEpochs).length;
    case 'halving':
      return row + 56;
    case 'pbt':
      // Every round's report carries the trial's values.
      return row + pbtEpochs(config.roundEpochs ?? maxEpochs, maxEpochs).length * (80 + JSON.stringify(params).length);
  }
}

/**
 * A search that stores its rows and whose strategy keeps trials in its state: at most as many
 * trials as keep its continue-as-new input under MAX_KEPT_STATE_BYTES, with room for the best
 * TOP_TRIALS, the last failures and the fixed part.
 */
export function storedStateIssues(config: SearchConfig, planned: number, sampleRow: object, params: object): ConfigIssue[] {
  const perTrial = storedBytesPerTrial(config, sampleRow, params);
  if (perTrial === 0) return [];
  const fixed = 32 * 1024 + (TOP_TRIALS + 1) * JSON.stringify(sampleRow).length + RECENT_FAILURES * 2100;
  const bound = Math.max(1, Math.floor((MAX_KEPT_STATE_BYTES - fixed) / perTrial));
  if (planned <= bound) return [];
  return [{
    field: config.maxTrials !== undefined ? 'maxTrials' : 'space',
    expected: `at most ${bound} trials for the \`${config.strategy}\` strategy: it keeps every trial it may still promote in workflow state (about ${perTrial} bytes a trial for this search), and continue-as-new's input must stay under ${MAX_KEPT_STATE_BYTES} bytes (grid and random searches keep constant state, up to ${MAX_TRIALS_TEXT} trials)`,
    received: `${planned} trials`,
  }];
}
const MAX_TRIALS_TEXT = '1,000,000';


export async function startState(v: ValidatedSearch): Promise<SearchState> {
  const { config, parsed } = v;
  const c = new Checker();

  if (config.strategy === 'pbt' && patched(PBT_SPACE_PATCH)) c.issues.push(...pbtSpaceIssues(config));
  const stateBounds = pbtBoundIssues(config, v.planned);
  if (stateBounds.length > 0 && patched(PBT_BOUNDS_PATCH)) c.issues.push(...stateBounds);
  const searchRunId = config.runId ?? checkPathSegment(c, 'runId (defaults to the workflow id)', workflowInfo().workflowId);
  // Registry names can only be checked on the worker: one local activity, before any child starts.
  const worker = await describeWorker();
  const seen = new Set<string>();
  parsed.forEach((cfg, i) => {
    const trial = new Checker();
    checkRegistryNames(trial, worker, cfg);
    // One line per distinct bad name, under the first trial that has it.
    for (const issue of trial.issues) {
      if (seen.has(`${issue.field}=${issue.received}`)) continue;
      seen.add(`${issue.field}=${issue.received}`);
      c.issues.push({ ...issue, field: `${trialId(i + 1)}: ${issue.field}` });
    }
  });
  const root = baseCheckpointRoot(config) ?? worker.checkpointRoot.replace(/\/+$/, '');
  // Trials started later (adaptive searchers) are checked by their own trainModel.
  if (searchRunId !== undefined) {
    await checkInputUris(c, [{ field: 'base.checkpoint.uri', uri: joinUri(root, searchRunId) }, ...parsed.flatMap((cfg, i) => trainConfigUris(cfg, undefined, `${trialId(i + 1)}: `))]);
  }
  const searchUri = joinUri(root, searchRunId ?? 'search');
  if (v.trials[0]) {
    // A paused trial's row as the state would carry it: its folder, values, a metric and its export.
    const sample = { ...newTrial(searchUri, v.planned, v.trials[0]), status: 'paused', workflowId: childWorkflowId(workflowInfo().workflowId, v.planned, 9), value: 0.123456789012345, epochs: 100, step: 100000, runStatus: 'early-stopped' };
    const bounds = storedStateIssues(config, v.planned, { ...sample, modelUri: `${sample.runUri}/model/model.json` }, v.trials[0]);
    // Asked only when the bound would refuse the search (a search that keeps its table has none):
    // the patch's marker stays where the workflow asks it otherwise, after the folder is claimed.
    if (bounds.length > 0 && patched(SEARCH_STORE_ROWS_PATCH)) c.issues.push(...bounds);
  }
  if (c.issues.length > 0) throw invalidSearch(c.issues);
  return initialState({
    searchRunId: searchRunId!, searchUri: joinUri(root, searchRunId!), planned: v.planned, maxParallel: config.maxParallel,
    mlflowWanted: baseTracking(config) !== undefined || worker.mlflow === true,
  });
}
