/**
 * Reading one shard's bytes, pinned to what the run recorded (data-index.ts):
 *   gs://     `file(name, { generation }).createReadStream({ validation: 'crc32c' })`: exactly the
 *             recorded generation, its CRC32C checked by the client; transient errors retried with
 *             the checkpoint store's policy (checkpoints/retry.ts). A generation that no longer
 *             exists (the object was deleted or replaced) fails non-retryably, naming the shard.
 *   file:///  streamed from disk, its size and SHA-256 compared with the recorded ones.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Storage } from '@google-cloud/storage';
import { withRetry } from '../checkpoints/retry';
import { readWholeStream } from '../checkpoints/stream-read';
import { bad, gcsLocation, gcsRetry, gcsStorage, type ShardInfo } from './source';

/** A shard as the run recorded it: its listing plus the SHA-256 of its bytes. */
export interface PinnedShard extends ShardInfo {
  readonly sha256: string;
}

function changed(uri: string, what: string): never {
  return bad(`Shard ${uri} of \`params.uri\` changed under the run: ${what}. A run reads exactly the data it started on: restore the shard or start a new run id`);
}

/** A read that receives nothing for this long is aborted as a transient ETIMEDOUT (and retried), as the checkpoint store's downloads are. */
export const STALL_TIMEOUT_MS = 30_000;

async function readGcs(shard: ShardInfo, storage: Storage): Promise<Buffer> {
  const { bucket, name } = gcsLocation(shard.uri);
  const file = storage.bucket(bucket).file(name, { generation: Number(shard.generation) });
  try {
    return await withRetry(() => readWholeStream(file.createReadStream({ validation: 'crc32c' }), `Read of shard ${shard.uri}`, STALL_TIMEOUT_MS), gcsRetry);
  } catch (err) {
    if ((err as { code?: unknown }).code === 404) changed(shard.uri, `generation ${shard.generation} no longer exists (the object was deleted or replaced)`);
    throw err;
  }
}

/** The shard's bytes, checked against what was recorded (`sha256` absent: the index pass, which records it). */
export async function readShardBytes(shard: ShardInfo & { readonly sha256?: string }, storage?: Storage): Promise<{ bytes: Buffer; sha256: string }> {
  let bytes: Buffer;
  if (shard.uri.startsWith('gs://')) {
    bytes = await readGcs(shard, gcsStorage(storage));
  } else {
    try {
      bytes = await fs.promises.readFile(fileURLToPath(shard.uri));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') changed(shard.uri, 'it was deleted');
      throw err;
    }
  }
  if (bytes.length !== shard.size) changed(shard.uri, `it has ${bytes.length} bytes, the run recorded ${shard.size}`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (shard.sha256 !== undefined && sha256 !== shard.sha256) changed(shard.uri, `its SHA-256 is ${sha256.slice(0, 12)}…, the run recorded ${shard.sha256.slice(0, 12)}…`);
  return { bytes, sha256 };
}
