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
import { PBT_BOUNDS_PATCH, PBT_SPACE_PATCH } from '../patches';
import { pbtBoundIssues } from './pbt';
import { initialState, type SearchState } from './state';
import { baseCheckpointRoot, invalidSearch, type ValidatedSearch } from './validate';


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
  if (c.issues.length > 0) throw invalidSearch(c.issues);
  return initialState({
    searchRunId: searchRunId!, searchUri: joinUri(root, searchRunId!), planned: v.planned, maxParallel: config.maxParallel,
    mlflowWanted: baseTracking(config) !== undefined || worker.mlflow === true,
  });
}
