/** The one content digest of the project: SHA-256 as lowercase hex (checkpoint manifests, file-store versions, write-once checks). */
import { createHash, webcrypto } from 'node:crypto';

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Below this, hashing on this thread costs less than a trip to the thread pool. */
const OFF_THREAD_BYTES = 1 << 20;
/** Hashing on this thread goes this many bytes at a time, then lets the event loop run (writes in flight go on). */
const SLICE_BYTES = 4 << 20;

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * SHA-256 hex of an object given as one buffer or as chunks (their concatenation), computed while
 * the caller's writes of the same bytes are in flight: a large single buffer on libuv's thread pool
 * (webcrypto), chunks on this thread a slice at a time with a turn of the event loop between
 * slices, so nothing is copied into one buffer to be hashed.
 */
export async function sha256Of(data: Buffer | readonly Buffer[]): Promise<string> {
  if (Buffer.isBuffer(data)) {
    if (data.length < OFF_THREAD_BYTES) return sha256(data);
    return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex');
  }
  const hash = createHash('sha256');
  let sinceTurn = 0;
  for (const chunk of data) {
    for (let at = 0; at < chunk.length; at += SLICE_BYTES) {
      if (sinceTurn >= SLICE_BYTES) {
        await turn();
        sinceTurn = 0;
      }
      const slice = chunk.subarray(at, at + SLICE_BYTES);
      hash.update(slice);
      sinceTurn += slice.length;
    }
  }
  return hash.digest('hex');
}
