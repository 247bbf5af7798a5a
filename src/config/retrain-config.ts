/**
 * The `retrainModel` input: a `trainModel` input for the new data, plus how the challenger is
 * judged against the current champion. Pure code: the workflow, the CLI and `createRetrainSchedule`
 * all validate with it, so a bad input gets the same field-level error everywhere.
 */
import { fnv1aHex } from './fnv1a';
import { parseTrainConfig, type Mode, type TrainConfig } from './train-config';
import { MAX_NAME_LENGTH } from './bounds';
import { checkStoreUri } from './uri';
import { Checker, ConfigError, checkPathSegment, type ConfigIssue } from './validate';

/** The validated input with every default filled in. */
export interface RetrainConfig {
  /** The model's name: a path segment; its champion lives at `<championRoot>/champions/<modelName>/`. */
  readonly modelName: string;
  /** The raw `trainModel` input for the new data (without `runId` and `warmStartFrom`: the retrain sets them). */
  readonly train: Readonly<Record<string, unknown>>;
  /** `train`, validated, with its defaults. */
  readonly trainConfig: TrainConfig;
  /** The challenger must beat the champion by more than this on `metric`. @default 0 */
  readonly minImprovement: number;
  /** Metric both models are evaluated on (on `train.data.eval`). @default 'val_loss' */
  readonly metric: string;
  /** Whether lower (`min`) or higher (`max`) `metric` is better. @default 'min' */
  readonly mode: Mode;
  /** Where the champion pointer and decisions live. @default the checkpoint root (`train.checkpoint.uri`, else the worker's) */
  readonly championRoot?: string;
}

export type RetrainInput = { readonly [key: string]: unknown };

export const RETRAIN_DEFAULTS = { minImprovement: 0, metric: 'val_loss', mode: 'min' as Mode } as const;

const FIELDS = ['modelName', 'train', 'minImprovement', 'metric', 'mode', 'championRoot'] as const;

/** Validates a `retrainModel` input. Throws ConfigError naming every bad field (`train.*` for the nested run). */
export function parseRetrainConfig(input: unknown): RetrainConfig {
  const c = new Checker();
  const o = c.object('input', input);
  if (!o) {
    c.throwIfAny('Invalid retrainModel input');
    throw new Error('unreachable');
  }
  c.noUnknownKeys('', o, FIELDS);
  const modelName = checkPathSegment(c, 'modelName', o.modelName);

  let trainConfig: TrainConfig | undefined;
  const train = c.object('train', o.train);
  if (train) {
    if (train.warmStartFrom !== undefined) {
      c.fail('train.warmStartFrom', 'absent (a retrain warm-starts from the current champion)', train.warmStartFrom);
    }
    if (train.runId !== undefined) {
      c.fail('train.runId', 'absent (a retrain derives its run id from its workflow id)', train.runId);
    }
    try {
      trainConfig = parseTrainConfig(train);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const issue of err.issues) {
        const field = issue.field === 'input' ? 'train' : `train.${issue.field}`;
        c.issues.push({ ...issue, field } satisfies ConfigIssue);
      }
    }
  }

  const minImprovement =
    c.number('minImprovement', o.minImprovement, { min: 0, fallback: RETRAIN_DEFAULTS.minImprovement }) ?? RETRAIN_DEFAULTS.minImprovement;
  let metric = c.string('metric', o.metric, { required: false }) ?? RETRAIN_DEFAULTS.metric;
  if (metric.length > MAX_NAME_LENGTH) metric = c.fail('metric', `a metric name of at most ${MAX_NAME_LENGTH} characters`, metric) ?? metric;
  const mode = c.oneOf('mode', o.mode, ['min', 'max'] as const, RETRAIN_DEFAULTS.mode) ?? RETRAIN_DEFAULTS.mode;
  const rootGiven = c.string('championRoot', o.championRoot, { required: false });
  const championRoot =
    rootGiven === undefined ? undefined : checkStoreUri(c, 'championRoot', rootGiven, 'a `file:///absolute/path` or `gs://bucket/prefix` URI');

  c.throwIfAny('Invalid retrainModel input');
  return {
    modelName: modelName!,
    train: train!,
    trainConfig: trainConfig!,
    minImprovement,
    metric,
    mode,
    ...(championRoot !== undefined && { championRoot: championRoot.replace(/\/+$/, '') }),
  };
}

const MAX_ID = 128;

/**
 * The run id of a retrain: `<modelName>-<workflow id>`, with every character outside
 * [A-Za-z0-9._-] turned into '-' (a schedule appends `-2026-01-02T03:04:05Z` to its workflow ids,
 * which becomes `-2026-01-02T03-04-05Z`). Too long an id is cut and tagged with a hash of the
 * full one, so distinct long ids stay distinct.
 */
export function retrainRunId(modelName: string, workflowId: string): string {
  const raw = `${modelName}-${workflowId}`;
  const id = raw.replace(/[^A-Za-z0-9._-]/g, '-');
  return id.length <= MAX_ID ? id : `${id.slice(0, MAX_ID - 9)}-${fnv1aHex(raw)}`;
}

/**
 * The run id of a retrain started since `retrain-run-id-unique` (retrainModel keeps `retrainRunId`
 * for workflows that began before): `retrainRunId`'s readable form, tagged with 16 hex digits of
 * hash over the exact (modelName, workflowId) pair whenever the readable form lost information, i.e.
 * a character was replaced, the id was cut, or the model name has a '-' (`a-b`+`c` vs `a`+`b-c`).
 * `a/b`, `a:b` and `a b` then differ; two ids collide only if both 32-bit FNV-1a hashes (forward
 * and over the reversed text) collide at once.
 */
export function uniqueRetrainRunId(modelName: string, workflowId: string): string {
  const raw = `${modelName}-${workflowId}`;
  const readable = raw.replace(/[^A-Za-z0-9._-]/g, '-');
  if (readable === raw && raw.length <= MAX_ID && !modelName.includes('-')) return raw;
  const exact = `${modelName.length}:${modelName}/${workflowId}`;
  const tag = `${fnv1aHex(exact)}${fnv1aHex([...exact].reverse().join(''))}`;
  return `${readable.slice(0, MAX_ID - tag.length - 1)}-${tag}`;
}
