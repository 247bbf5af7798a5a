/**
 * Which of a search's trials its own start already checked (workflow code, pure).
 *
 * A new hyperparameterSearch asks the worker once, before any child (search/start.ts): the registry
 * names of every trial it suggests up front (describeWorker) and every URI they name, its own folder
 * included (checkUris); one refusal fails the search. A trainModel asks the same two questions at
 * its own start. For a trial whose input names nothing that check did not cover (the same model and
 * dataset names, the same data, model, warm-start and tracking URIs, its folder inside the search's,
 * no data window to resolve) the answers cannot differ: the names and URIs are the same strings, and
 * the worker's registries and allow-list are fixed when it starts (read once from its environment),
 * so the only way to another answer is another worker build on the same task queue, which would
 * answer a trial's own check no more than the activity it then runs (any worker of the queue takes
 * either). The trial then skips both local activities (`searchTrial` in its input); the store still
 * refuses, at every open, a URI outside the allow-list and a folder under a symlink
 * (trust/allow-list.ts, checkpoints/fs-atomic.ts), so the check skipped only gave an earlier error.
 *
 * A trial that names anything else (an edit's new values, a resolved data window) keeps its checks.
 */
import { parseTrainConfig, type TrainConfig } from '../config/train-config';
import { resolveDataWindows } from './data-window';
import { trainConfigUris } from './activity-proxies';

/** What a search's start checked: the names and URIs of its up-front trials (ValidatedSearch.parsed). */
export interface StartChecks {
  readonly models: ReadonlySet<string>;
  readonly datasets: ReadonlySet<string>;
  readonly uris: ReadonlySet<string>;
}

export function startChecks(parsed: readonly TrainConfig[]): StartChecks {
  const models = new Set<string>();
  const datasets = new Set<string>();
  const uris = new Set<string>();
  for (const cfg of parsed) {
    if ('name' in cfg.model) models.add(cfg.model.name);
    datasets.add(cfg.data.train.name).add(cfg.data.eval.name);
    for (const u of trainConfigUris(cfg, undefined)) uris.add(u.uri);
  }
  return { models, datasets, uris };
}

/** True when `childInput` (a trial's trainModel input, as the search starts it) names only what `checked` covered, in the folder `searchUri`. */
export function checkedBySearchStart(checked: StartChecks, searchUri: string, childInput: Record<string, unknown>): boolean {
  if (resolveDataWindows(childInput, new Date(0)) !== undefined) return false;
  let cfg: TrainConfig;
  try {
    cfg = parseTrainConfig(childInput);
  } catch {
    return false; // the trial fails its own validation, with every issue named
  }
  if (cfg.runId === undefined || cfg.checkpoint.uri !== searchUri) return false;
  if ('name' in cfg.model && !checked.models.has(cfg.model.name)) return false;
  if (!checked.datasets.has(cfg.data.train.name) || !checked.datasets.has(cfg.data.eval.name)) return false;
  return trainConfigUris(cfg, undefined).every((u) => checked.uris.has(u.uri));
}
