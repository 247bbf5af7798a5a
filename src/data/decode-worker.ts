/**
 * One decode thread of the pool (decode-pool.ts): receives a shard's bytes (transferred), decodes
 * them with records.ts's decodeShardBytes (the same code the main thread would run) and sends the
 * rows back as transferred Float32Array buffers, or the error (its message, and whether it is the
 * input's fault: non-retryable).
 */
import { parentPort } from 'node:worker_threads';
import type { ShardedParams } from '../config/sharded-data';
import { NonRetryableTrainingError } from '../training/protocol';
import { decodeShardBytes, type RowLayout } from './records';

export interface DecodeTask {
  readonly id: number;
  readonly bytes: Uint8Array;
  readonly uri: string;
  readonly params: ShardedParams;
  readonly layout: RowLayout | undefined;
}

export type DecodeReply =
  | { readonly id: number; readonly ok: true; readonly layout: RowLayout | undefined; readonly records: number; readonly x: Float32Array; readonly y: Float32Array; readonly empty: boolean }
  | { readonly id: number; readonly ok: false; readonly message: string; readonly nonRetryable: boolean };

const port = parentPort;
if (port) {
  port.on('message', (task: DecodeTask) => {
    void (async () => {
      try {
        const bytes = Buffer.from(task.bytes.buffer, task.bytes.byteOffset, task.bytes.byteLength);
        const { layout, shard } = await decodeShardBytes(bytes, task.uri, task.params, task.layout);
        const x = shard?.x ?? new Float32Array(0);
        const y = shard?.y ?? new Float32Array(0);
        const reply: DecodeReply = { id: task.id, ok: true, layout, records: shard?.records ?? 0, x, y, empty: !shard };
        const transfer = x.buffer === y.buffer ? [x.buffer] : [x.buffer, y.buffer];
        port.postMessage(reply, transfer as ArrayBuffer[]);
      } catch (err) {
        const e = err as Error;
        const reply: DecodeReply = { id: task.id, ok: false, message: String(e?.message ?? e), nonRetryable: err instanceof NonRetryableTrainingError };
        port.postMessage(reply);
      }
    })();
  });
}
