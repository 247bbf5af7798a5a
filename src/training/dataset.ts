/**
 * What a dataset is: a pair of flat float arrays held in the trainer process. Only a dataset's
 * name and params ever travel through workflows. Kept apart from the registry (dataset-registry.ts) so
 * that dataset implementations (tabular.ts) and the registry import it without importing each other.
 */

export interface Dataset {
  /** Features, example after example. */
  readonly x: Float32Array;
  /** Targets, example after example (one-hot for classification). */
  readonly y: Float32Array;
  /** Shape of one example's features, e.g. [784]. */
  readonly xShape: readonly number[];
  /** Shape of one example's target, e.g. [10]. */
  readonly yShape: readonly number[];
  readonly size: number;
  /**
   * The input transform already applied to `x` (tabular datasets: tabular-preprocess.ts), as plain
   * JSON: the trainer stores it with the run so every later load applies the same one.
   */
  readonly preprocessing?: unknown;
  /**
   * What the targets are, where the dataset knows it (tabular datasets: `params.task`): a model's
   * loss is checked against it before the first step. Absent: not checked.
   */
  readonly task?: 'classification' | 'regression';
}

/** What the trainer passes a dataset factory beside the spec. */
export interface DatasetLoadOptions {
  /** The transform fitted on the run's training split (stored with the run), to apply instead of fitting one. */
  readonly preprocessing?: unknown;
}

/** The shapes of a dataset's examples: what a model is checked against. */
export type DatasetShapes = Pick<Dataset, 'xShape' | 'yShape'> & Partial<Pick<Dataset, 'task'>>;

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function limitDataset(d: Dataset, limit: number): Dataset {
  if (limit >= d.size) return d;
  const xw = product(d.xShape);
  const yw = product(d.yShape);
  return { ...d, size: limit, x: d.x.subarray(0, limit * xw), y: d.y.subarray(0, limit * yw) };
}
