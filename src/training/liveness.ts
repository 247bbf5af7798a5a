/**
 * The trainer's own progress signal. Heartbeats come only from it (not from a timer in the
 * worker), so an attempt whose trainer stops making progress (stuck in file I/O, a store call that
 * never returns, a loop that no longer steps) misses its heartbeats and is retried within the
 * heartbeat timeout. The step loop, the dataset loaders, evaluation and every completed store
 * call mark progress; the trainer process reports, once a second, whether any mark was made.
 */
import type { CheckpointStore } from '../checkpoints/store';

let marks = 0;

/** Records that the current request moved forward. */
export function markProgress(): void {
  marks++;
}

/** A counter that grows with every mark (compare two readings). */
export function progressMarks(): number {
  return marks;
}

/** How many rows or batches a long synchronous loop handles between two yields to the event loop. */
export const ROWS_PER_YIELD = 5000;

/** Marks progress and lets IPC messages (cancellation, the once-a-second report) through. */
export async function breathe(): Promise<void> {
  markProgress();
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** `store`, with a progress mark each time one of its calls completes. */
export function markingStore(store: CheckpointStore): CheckpointStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result instanceof Promise) {
          return result.then((v: unknown) => {
            markProgress();
            return v;
          });
        }
        return result;
      };
    },
  });
}
