/**
 * A run's data index, `<run>/data-index.json`: the dataset identity (every shard with its size, GCS
 * generation and CRC32C, SHA-256 of its bytes) plus what the order needs (records per shard) and
 * the row layout. Built once, by the first training attempt, in one pass that reads and decodes
 * every shard (so a bad shard, a label outside `classes` or a wrong type fails before step 1), and
 * written create-only beside run.json, like preprocessing.json. Every later attempt lists the
 * dataset again and compares it with the index: a shard deleted, replaced or added fails
 * non-retryably naming the shard; reads are pinned to the index (reader.ts).
 */
import type { Storage } from '@google-cloud/storage';
import { PreconditionFailedError, type CheckpointStore } from '../checkpoints/store';
import type { ShardedParams } from '../config/sharded-data';
import { PREPROCESSING_JSON } from '../checkpoints/layout';
import { breathe } from '../training/liveness';
import { preprocessingBytes, readPreprocessing, type Preprocessing } from '../training/tabular-preprocess';
import { FeatureStats } from './preprocess';
import { decodeShardBytes, type RowLayout } from './records';
import { readShardBytes, type PinnedShard } from './reader';
import { bad, listShards, type ListOptions, type ShardInfo } from './source';

export const DATA_INDEX_JSON = 'data-index.json';
export const DATA_INDEX_FORMAT = 'durable-train/data-index@1';

export interface IndexedShard extends PinnedShard {
  readonly records: number;
}

export interface DataIndex {
  readonly format: typeof DATA_INDEX_FORMAT;
  readonly uri: string;
  readonly shards: readonly IndexedShard[];
  readonly layout: RowLayout;
  readonly records: number;
}

/**
 * Reads and decodes every shard once: record counts, SHA-256s and the layout (from the first record);
 * with `params.normalize`, `stats` gets every decoded shard in listing order (data/preprocess.ts).
 */
export async function buildDataIndex(params: ShardedParams, shards: readonly ShardInfo[], storage?: Storage, stats?: { value?: FeatureStats }): Promise<DataIndex> {
  let layout: RowLayout | undefined;
  const indexed: IndexedShard[] = [];
  for (const shard of shards) {
    const { bytes, sha256 } = await readShardBytes(shard, storage);
    const decoded = await decodeShardBytes(bytes, shard.uri, params, layout);
    layout ??= decoded.layout;
    const records = decoded.shard?.records ?? 0;
    if (stats && layout && decoded.shard) (stats.value ??= new FeatureStats(params, layout)).add(decoded.shard);
    indexed.push({ ...shard, sha256, records });
    await breathe();
  }
  const total = indexed.reduce((a, s) => a + s.records, 0);
  if (!layout || total === 0) bad(`Expected the shards of \`params.uri\` (${params.uri}) to hold at least one record, got none in ${shards.length} shard(s)`);
  return { format: DATA_INDEX_FORMAT, uri: params.uri, shards: indexed, layout, records: total };
}

/** Fails naming the first shard whose listing differs from the index. */
export function checkListing(index: DataIndex, listed: readonly ShardInfo[]): void {
  const now = new Map(listed.map((s) => [s.uri, s]));
  for (const s of index.shards) {
    const l = now.get(s.uri);
    const why = !l
      ? 'it was deleted'
      : l.generation !== s.generation
        ? `its generation is ${l.generation}, the run recorded ${s.generation} (the object was replaced)`
        : l.size !== s.size
          ? `it has ${l.size} bytes, the run recorded ${s.size}`
          : undefined;
    if (why) bad(`Shard ${s.uri} of \`params.uri\` changed under the run: ${why}. A run reads exactly the data it started on: restore the shard or start a new run id`);
  }
  const known = new Set(index.shards.map((s) => s.uri));
  const added = listed.find((s) => !known.has(s.uri));
  if (added) bad(`Shard ${added.uri} now matches \`params.uri\` (${index.uri}) but was not in the run's data (${index.shards.length} shards): a run reads exactly the data it started on; start a new run id to train on more`);
}

function parseIndex(bytes: Buffer, where: string): DataIndex {
  const index = JSON.parse(bytes.toString('utf8')) as DataIndex;
  if (index?.format !== DATA_INDEX_FORMAT || !Array.isArray(index.shards)) bad(`Expected ${where} to be a ${DATA_INDEX_FORMAT} file, got something else`);
  return index;
}

/**
 * The run's data index: the stored one, checked against a fresh listing; else built now and
 * stored create-only (a racing attempt's copy is then used, after the same check).
 */
export async function openDataIndex(store: CheckpointStore, params: ShardedParams, options: ListOptions & { readonly log?: (m: string) => void } = {}): Promise<DataIndex> {
  return (await openRunData(store, params, options)).index;
}

/** The run's stored transform (preprocessing.json): required once the index exists and `params.normalize` is set. */
async function storedPreprocessing(store: CheckpointStore, params: ShardedParams): Promise<Preprocessing | undefined> {
  if (!params.normalize) return undefined;
  const bytes = await store.get(PREPROCESSING_JSON);
  if (!bytes) {
    return bad(
      `Expected the run's ${store.uriOf(PREPROCESSING_JSON)} (the statistics \`params.normalize\` fitted on the first attempt), got none: ` +
        'the run indexed its data without `normalize`; start a new run id to normalize',
    );
  }
  return readPreprocessing(bytes, store.uriOf(PREPROCESSING_JSON));
}

/**
 * The run's data index and, with `params.normalize`, its fitted transform: both stored ones (the
 * index checked against a fresh listing; never refitted); else built in one pass, the transform
 * stored create-only first, then the index (a racing attempt's copies are then used).
 */
export async function openRunData(
  store: CheckpointStore,
  params: ShardedParams,
  options: ListOptions & { readonly log?: (m: string) => void } = {},
): Promise<{ readonly index: DataIndex; readonly preprocessing?: Preprocessing }> {
  const listed = await listShards(params, options);
  const stored = await store.get(DATA_INDEX_JSON);
  if (stored) {
    const index = parseIndex(stored, store.uriOf(DATA_INDEX_JSON));
    checkListing(index, listed);
    const preprocessing = await storedPreprocessing(store, params);
    return { index, ...(preprocessing && { preprocessing }) };
  }
  const started = Date.now();
  const stats: { value?: FeatureStats } = {};
  const index = await buildDataIndex(params, listed, options.storage, params.normalize ? stats : undefined);
  options.log?.(`data index of ${params.uri}: ${index.shards.length} shards, ${index.records} records, built in ${Date.now() - started} ms`);
  try {
    if (stats.value) {
      try {
        await store.putIfVersion(PREPROCESSING_JSON, preprocessingBytes(stats.value.fitted()), undefined);
      } catch (err) {
        // An earlier attempt stored it (and died before the index): the same shards, the same bits; keep its copy.
        if (!(err instanceof PreconditionFailedError)) throw err;
      }
    }
    await store.putIfVersion(DATA_INDEX_JSON, Buffer.from(JSON.stringify(index)), undefined);
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
    return openRunData(store, params, options);
  }
  const preprocessing = await storedPreprocessing(store, params);
  return { index, ...(preprocessing && { preprocessing }) };
}
