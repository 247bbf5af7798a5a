/**
 * Where the time of writing checkpoints goes, per part, so that a slow epoch can be explained. The
 * step loop opens a recorder per checkpoint; the format and the file store add to it through
 * AsyncLocalStorage, so the store interface needs no timing parameter and two writes in flight
 * never mix their numbers.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** Milliseconds per part of the checkpoints one request wrote (sums over them). */
export interface CheckpointTiming {
  /** Checkpoints committed. */
  readonly checkpoints: number;
  /** The route's snapshot: the state read into host buffers and laid out as objects (training waits for it). */
  readonly snapshotMs: number;
  /** SHA-256 of the objects and the manifest. */
  readonly hashMs: number;
  /** Storing the objects and the manifest (lease checks, create-only writes), fsyncs included. */
  readonly writeMs: number;
  /** Of writeMs and pointerMs, the time in fsync calls, summed (parallel writes overlap theirs). */
  readonly fsyncMs: number;
  /** Moving latest.json (read, lease check, compare-and-swap). */
  readonly pointerMs: number;
  /** How long training stood still for checkpoints; the rest of the write overlapped later steps. */
  readonly blockedMs: number;
  /** Bytes of the objects and manifests written. */
  readonly bytes: number;
}

type Part = Exclude<keyof CheckpointTiming, 'checkpoints'>;

export class TimingRecorder {
  private readonly parts: Record<Part, number> = { snapshotMs: 0, hashMs: 0, writeMs: 0, fsyncMs: 0, pointerMs: 0, blockedMs: 0, bytes: 0 };
  private count = 0;

  add(part: Part, amount: number): void {
    this.parts[part] += amount;
  }

  /** Runs `work` with this recorder as the one the store's calls inside it report to. */
  run<T>(work: () => Promise<T>): Promise<T> {
    return storage.run(this, work);
  }

  committed(): void {
    this.count++;
  }

  result(): CheckpointTiming {
    const round = (ms: number): number => Math.round(ms * 10) / 10;
    const p = this.parts;
    return {
      checkpoints: this.count,
      snapshotMs: round(p.snapshotMs),
      hashMs: round(p.hashMs),
      writeMs: round(p.writeMs),
      fsyncMs: round(p.fsyncMs),
      pointerMs: round(p.pointerMs),
      blockedMs: round(p.blockedMs),
      bytes: p.bytes,
    };
  }
}

const storage = new AsyncLocalStorage<TimingRecorder>();

/** Adds to the recorder of the checkpoint being written, if any. */
export function recordTime(part: Part, amount: number): void {
  storage.getStore()?.add(part, amount);
}

/** `work`, its wall time added to `part` of the current recorder. */
export async function timed<T>(part: Part, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    recordTime(part, performance.now() - started);
  }
}
