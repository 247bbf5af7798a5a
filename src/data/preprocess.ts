/**
 * Fitted preprocessing for the `sharded` dataset (`params.normalize`, the tabular datasets' option
 * with the same meaning: `standard` centres on the mean and divides by the population standard
 * deviation, `minmax` by the range). The statistics are exact, not sampled: the index pass (which
 * decodes every training record once, data-index.ts) adds each feature's values in float64 (sum,
 * sum of squares, min, max) in shard-listing order, so the same shards give the same bits. The
 * sums are of each value minus the column's first value (a shift that changes no statistic but
 * keeps `squares / n - mean²` from cancelling: values near 2^23 with a variance of 4 lost it all). The
 * result is a tabular `Preprocessing` (training/tabular-preprocess.ts), stored create-only as the
 * run's preprocessing.json, copied into checkpoints and exported beside the model like the tabular
 * one; streamed training and evaluation (with the TRAIN statistics) apply it to decoded rows.
 *
 * Statistics are of the values as decoded (float32, what the model would otherwise see); values a
 * float32 holds exactly (integers, pixels, most sensor readings) give the numbers the `jsonl`
 * dataset fits on the same rows.
 */
import type { ShardedParams } from '../config/sharded-data';
import { PREPROCESSING_FORMAT, type NumericColumn, type Preprocessing } from '../training/tabular-preprocess';
import type { DecodedShard, RowLayout } from './records';
import { bad } from './source';

/** Per-column float64 sums over decoded rows, in the order they are added. */
export class FeatureStats {
  readonly sum: Float64Array;
  readonly squares: Float64Array;
  readonly min: Float64Array;
  readonly max: Float64Array;
  /** Each column's first value: what the sums are shifted by. */
  private shift: Float64Array | undefined;
  rows = 0;

  constructor(
    readonly params: ShardedParams,
    readonly layout: RowLayout,
  ) {
    const wide = params.features.findIndex((_, j) => layout.widths[j] !== 1);
    if (wide >= 0) {
      bad(
        `Expected every feature of \`params.features\` to be one number when \`params.normalize\` is \`${params.normalize}\`, ` +
          `got feature \`${params.features[wide]}\` with ${layout.widths[wide]} values per record (arrays are not normalized per column)`,
      );
    }
    const n = params.features.length;
    this.sum = new Float64Array(n);
    this.squares = new Float64Array(n);
    this.min = new Float64Array(n).fill(Infinity);
    this.max = new Float64Array(n).fill(-Infinity);
  }

  add(shard: DecodedShard): void {
    const n = this.sum.length;
    const x = shard.x;
    if (shard.records > 0) this.shift ??= Float64Array.from(x.subarray(0, n));
    const shift = this.shift!;
    for (let r = 0; r < shard.records; r++) {
      for (let j = 0; j < n; j++) {
        const raw = x[r * n + j]!;
        const v = raw - shift[j]!;
        this.sum[j] = this.sum[j]! + v;
        this.squares[j] = this.squares[j]! + v * v;
        if (raw < this.min[j]!) this.min[j] = raw;
        if (raw > this.max[j]!) this.max[j] = raw;
      }
    }
    this.rows += shard.records;
  }

  /** The run's transform (the tabular format: label, classes, one numeric column per feature). */
  fitted(): Preprocessing {
    const p = this.params;
    const normalize = p.normalize ?? 'none';
    const columns = p.features.map((name, j): NumericColumn => {
      const shifted = this.sum[j]! / this.rows;
      const mean = this.shift![j]! + shifted;
      const std = Math.sqrt(Math.max(0, this.squares[j]! / this.rows - shifted * shifted));
      const min = this.min[j]!;
      const max = this.max[j]!;
      const [center, scale] = normalize === 'standard' ? [mean, std] : normalize === 'minmax' ? [min, max - min] : [0, 1];
      return { name, kind: 'numeric', center, scale: scale > 0 && Number.isFinite(scale) ? scale : 1, mean, std, min, max };
    });
    return {
      format: PREPROCESSING_FORMAT,
      version: 1,
      fittedOn: { uri: p.uri, split: 'train', rows: this.rows },
      label: p.label,
      task: p.task,
      classes: p.classes ?? [],
      normalize,
      impute: 'none',
      unknown: 'error',
      columns,
      inputWidth: columns.length,
    };
  }
}

/**
 * Applies a stored transform to decoded rows in place (float64 arithmetic, as the tabular encoder),
 * after checking it names exactly the spec's features in order (a transform of other columns fails naming `params.features`).
 */
export function transformRows(p: Preprocessing, params: ShardedParams, layout: RowLayout): (shard: DecodedShard) => DecodedShard {
  const names = p.columns.map((c) => c.name);
  if (names.length !== params.features.length || names.some((n, j) => n !== params.features[j]) || layout.widths.some((w) => w !== 1)) {
    bad(`Expected \`params.features\` to be the columns of the run's preprocessing.json (${JSON.stringify(names)}) with one number each, got ${JSON.stringify(params.features)}`);
  }
  const cols = p.columns.map((c) => {
    if (c.kind !== 'numeric') return bad(`Expected column \`${c.name}\` of the run's preprocessing.json to be numeric for a \`sharded\` dataset, got ${c.kind}`);
    return c;
  });
  const n = cols.length;
  return (shard) => {
    const x = shard.x;
    for (let r = 0; r < shard.records; r++) {
      for (let j = 0; j < n; j++) {
        const c = cols[j]!;
        x[r * n + j] = (x[r * n + j]! - c.center) / c.scale;
      }
    }
    return shard;
  };
}
