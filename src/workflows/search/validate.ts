/**
 * Validation of a hyperparameterSearch input (pure): the search fields, then the trainModel input of
 * every trial the searcher suggests up front (all of a grid's or of random draws), so a bad input
 * fails the workflow at once, before any child starts. Issues of a trial are named `trial-<n>: field`.
 */
import type { ApplicationFailure } from '@temporalio/workflow';
import { trialId } from '../../checkpoints/layout';
import { parseSearchConfig, type SearchConfig } from '../../config/search-config';
import type { Rung, TrialParams } from '../../config/search-types';
import { parseTrainConfig, type TrainConfig } from '../../config/train-config';
import { Checker, ConfigError, type ConfigIssue } from '../../config/validate';
import { failOnOversizedInput, MAX_PARENT_INPUT_BYTES } from '../input-bounds';
import { invalidConfig } from '../invalid-config';
import { trialInput } from '../search-space';
import { createSearch, planTrials, plannedTrials } from './index';

export function invalidSearch(issues: readonly ConfigIssue[]): ApplicationFailure {
  return invalidConfig(new ConfigError(issues, 'Invalid hyperparameterSearch input'));
}

/** Only for validation: the real folder is known once the worker's default root is. */
const PLACEHOLDER_ROOT = 'file:///validating-search';

export function baseCheckpointRoot(config: SearchConfig): string | undefined {
  const checkpoint = config.base.checkpoint;
  const uri = typeof checkpoint === 'object' && checkpoint !== null ? (checkpoint as { uri?: unknown }).uri : undefined;
  return typeof uri === 'string' ? uri.replace(/\/+$/, '') : undefined;
}

/**
 * Trials whose trainModel input is checked before the search starts (all of them up to the old
 * 2,000-trial bound); later ones are checked as the searcher suggests them, so a search of a
 * million trials does not parse a million inputs in every run of its workflow.
 */
export const MAX_TRIALS_CHECKED_UP_FRONT = 2000;

export interface ValidatedSearch {
  readonly config: SearchConfig;
  /** The most trials the search runs. */
  readonly planned: number;
  /** The trials suggested before any result is in (every trial of a grid or of random draws), at most MAX_TRIALS_CHECKED_UP_FRONT. */
  readonly trials: readonly TrialParams[];
  /** Each of those trials' first trainModel input, parsed (for the registry check). */
  readonly parsed: readonly TrainConfig[];
  readonly rungs: readonly Rung[];
}

/**
 * The issues of one trial's first trainModel input, fields prefixed `trial-<n>: `; `seen` names a
 * bad base field or value once across trials (with the first trial that has it).
 */
export function trialIssues(config: SearchConfig, trial: number, params: TrialParams, opts: { searchUri: string; maxEpochs: number | undefined }, seen: Set<string>): { parsed?: TrainConfig; issues: ConfigIssue[] } {
  const id = trialId(trial);
  try {
    const input = trialInput(config.base, params, { runId: id, searchUri: opts.searchUri, ...(opts.maxEpochs !== undefined && { maxEpochs: opts.maxEpochs }) });
    return { parsed: parseTrainConfig(input), issues: [] };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const issues: ConfigIssue[] = [];
    for (const issue of err.issues) {
      const key = `${issue.field}\n${issue.expected}\n${issue.received}`;
      if (seen.has(key)) continue;
      seen.add(key);
      issues.push({ ...issue, field: `${id}: ${issue.field}` });
    }
    return { issues };
  }
}

/** Validates the search input and every up-front trial's trainModel input; throws InvalidConfig naming every issue. */
export function validateSearchOrFail(input: unknown): ValidatedSearch {
  failOnOversizedInput(input, 'Invalid hyperparameterSearch input', MAX_PARENT_INPUT_BYTES);
  let config: SearchConfig;
  let planned: number;
  let trials: TrialParams[];
  try {
    config = parseSearchConfig(input);
    planned = plannedTrials(config);
    trials = planTrials(config, MAX_TRIALS_CHECKED_UP_FRONT);
  } catch (err) {
    if (err instanceof ConfigError) throw invalidSearch(err.issues);
    throw err;
  }
  const { scheduler } = createSearch(config, planned);
  const issues: ConfigIssue[] = [];
  // The search's own word to its trials (search-trial-checks.ts): never taken from its input.
  if (config.base.searchTrial !== undefined) {
    const c = new Checker();
    c.fail('base.searchTrial', 'absent: the search sets it on the trials it checked', config.base.searchTrial);
    issues.push(...c.issues);
  }
  const seen = new Set<string>();
  const parsed: TrainConfig[] = [];
  // A bad base `checkpoint.uri` must still be reported: the trials' folders are inside it.
  const searchUri = `${baseCheckpointRoot(config) ?? PLACEHOLDER_ROOT}/${config.runId ?? 'search'}`;
  trials.forEach((params, i) => {
    const r = trialIssues(config, i + 1, params, { searchUri, maxEpochs: scheduler.maxEpochsAt(1) }, seen);
    if (r.parsed) parsed.push(r.parsed);
    issues.push(...r.issues);
  });
  if (issues.length > 0) throw invalidSearch(issues);
  return { config, planned, trials, parsed, rungs: scheduler.progress().rungs };
}
