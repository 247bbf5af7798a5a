/**
 * The identity of a streamed training set, for the run's fingerprint (run.json, run-identity.ts):
 * its shards as listed, each with its size and, on gs://, its generation and CRC32C. Undefined for
 * a dataset that is not `sharded` (in-memory datasets keep the fingerprint they always had).
 * Whoever writes run.json lists the shards with this; the trainer's data index (data-index.ts)
 * pins the same list and adds each shard's SHA-256 and record count.
 */
import { SHARDED_DATASET } from '../config/sharded-data';
import type { DatasetSpec } from '../config/train-config';
import { listShards, type ListOptions, type ShardInfo } from './source';
import { shardedParamsOf } from './streamed';

export interface DatasetIdentity {
  readonly shards: readonly ShardInfo[];
}

export async function datasetIdentityOf(spec: DatasetSpec, options: ListOptions = {}): Promise<DatasetIdentity | undefined> {
  if (spec.name !== SHARDED_DATASET) return undefined;
  return { shards: await listShards(shardedParamsOf(spec), options) };
}
