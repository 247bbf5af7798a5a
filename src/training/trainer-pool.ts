/**
 * A worker's trainer slots: N trainer processes, one per GPU (or one share of the CPU cores each),
 * so one worker trains N runs at once. Each request goes to a free slot, preferring the slot that
 * last served the same run: its trainer still holds that run's session in memory and continues
 * without reading the checkpoint back (engine.ts). Correctness never depends on that choice, since a
 * trainer that does not hold the run reloads it from the newest checkpoint.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { describe } from '../config/validate';
import type { RequestBody } from './protocol';
import { TrainerClient, WorkerShuttingDownError, type RequestOptions, type TrainerOptions } from './trainer-client';

export interface TrainerPoolOptions extends TrainerOptions {
  /**
   * Trainer processes this worker runs, each pinned to its own GPU (`CUDA_VISIBLE_DEVICES`) or,
   * without GPUs, to an equal share of the CPU cores (TensorFlow's thread pools).
   * @default `DT_TRAINER_SLOTS`, else the number of visible GPUs, else 1
   */
  readonly slots?: number;
}

/**
 * What the pool needs of one slot's trainer (a TrainerClient; tests give fakes). `shutdown` and
 * `shutdownReason`: the worker's drain on SIGTERM/SIGINT, passed to each trainer that offers it.
 */
export type SlotTrainer = Pick<TrainerClient, 'request' | 'allowUris' | 'close' | 'pid'> & {
  shutdown?(reason?: string): Promise<void>;
  readonly shutdownReason?: string | undefined;
};

/** What activities use of the trainers: a TrainerPool (a worker's slots), or one TrainerClient. */
export type Trainer = Pick<TrainerPool, 'request'>;

/** What the router knows about a slot when it picks one. */
export interface SlotView {
  /** Requests sent to this slot and not yet answered. */
  readonly inFlight: number;
  /** Its trainer process is running (a new one takes seconds to load TensorFlow). */
  readonly started: boolean;
  /** The run (runUri) whose session its trainer last held, if any. */
  readonly lastRun: string | undefined;
  /** When it last took a request (a counter: higher is more recent). */
  readonly lastUsed: number;
}

/**
 * The slot for a request about run `runUri` (undefined: a request about no run, e.g. describe).
 * Only the least busy slots are candidates (free ones when any is free); among them the run's own
 * slot, then a running trainer holding no session, then the least recently used running trainer
 * (its session is the stalest to lose), then a trainer not started yet.
 */
export function chooseSlot(slots: readonly SlotView[], runUri: string | undefined): number {
  if (slots.length === 0) throw new Error('Expected at least one trainer slot, got none');
  const least = Math.min(...slots.map((s) => s.inFlight));
  const candidates = slots.map((s, i) => ({ s, i })).filter(({ s }) => s.inFlight === least);
  const own = runUri === undefined ? undefined : candidates.find(({ s }) => s.lastRun === runUri);
  if (own) return own.i;
  const rank = (s: SlotView): number => (!s.started ? 2 : s.lastRun === undefined ? 0 : 1);
  candidates.sort((a, b) => rank(a.s) - rank(b.s) || a.s.lastUsed - b.s.lastUsed || a.i - b.i);
  return candidates[0]!.i;
}

/** The run a request is about: train and evaluate requests name it; describe and friends do not. */
export function runOf(body: RequestBody): string | undefined {
  if (!('request' in body)) return undefined;
  const runUri = (body.request as { readonly runUri?: unknown }).runUri;
  return typeof runUri === 'string' ? runUri : undefined;
}

/**
 * GPUs this process may use, as the ids each slot's `CUDA_VISIBLE_DEVICES` names: the worker's own
 * CUDA_VISIBLE_DEVICES when set (CUDA stops at the first entry that is not a device), else one per
 * line of `nvidia-smi -L`, else none.
 */
export function visibleGpus(env: NodeJS.ProcessEnv = process.env, listGpus: () => string = nvidiaSmiList): string[] {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) {
    const ids: string[] = [];
    for (const entry of visible.split(',').map((e) => e.trim())) {
      if (!/^(\d+|GPU-[\w-]+|MIG-[\w/-]+)$/.test(entry)) break;
      ids.push(entry);
    }
    return ids;
  }
  return listGpus()
    .split('\n')
    .filter((line) => /^GPU \d+:/.test(line))
    .map((_, i) => String(i));
}

function nvidiaSmiList(): string {
  try {
    return execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    // No driver, no nvidia-smi, or it failed: no GPU this worker can use.
    return '';
  }
}

/** Trainer processes one worker may run: each loads TensorFlow (hundreds of MB), and all start with the worker. */
export const MAX_TRAINER_SLOTS = 64;

/** The slot count: the option, else DT_TRAINER_SLOTS, else one per GPU, else 1. */
export function slotCount(option: number | undefined, env: NodeJS.ProcessEnv, gpus: readonly string[]): number {
  const raw: unknown = option ?? (env.DT_TRAINER_SLOTS?.trim() || undefined);
  if (raw === undefined) return Math.min(MAX_TRAINER_SLOTS, Math.max(1, gpus.length));
  const n = typeof raw === 'string' && /^\d{1,6}$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_TRAINER_SLOTS) {
    throw new Error(`Expected \`trainer.slots\` (or DT_TRAINER_SLOTS) to be a whole number from 1 to ${MAX_TRAINER_SLOTS}, got ${describe(raw)}`);
  }
  return n;
}

/** TensorFlow's thread pools: intra-op (inside one op), inter-op (between ops); OMP for builds with OpenMP. */
const THREAD_VARIABLES = ['TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS'] as const;

/**
 * Each slot's extra environment: its GPU (slots beyond the GPUs share them round-robin), and with
 * more than one slot an equal share of the cores for TensorFlow's thread pools, so N trainers do
 * not each start a pool as large as the machine and fight over it. Variables the worker already
 * sets (`inherited`) win.
 */
export function slotEnvironments(slots: number, gpus: readonly string[], cores: number, inherited: NodeJS.ProcessEnv): NodeJS.ProcessEnv[] {
  const threads = String(Math.max(1, Math.floor(cores / slots)));
  return Array.from({ length: slots }, (_, i) => {
    const env: NodeJS.ProcessEnv = {};
    if (gpus.length > 0) env.CUDA_VISIBLE_DEVICES = gpus[i % gpus.length];
    if (slots > 1) for (const name of THREAD_VARIABLES) if (inherited[name] === undefined) env[name] = threads;
    return env;
  });
}

interface Slot extends SlotView {
  readonly trainer: SlotTrainer;
  inFlight: number;
  lastRun: string | undefined;
  lastUsed: number;
  readonly started: boolean;
}

/** What one slot is doing, for logs and tests. */
export interface SlotStatus {
  readonly slot: number;
  readonly pid: number | undefined;
  readonly inFlight: number;
  readonly lastRun: string | undefined;
}

export class TrainerPool {
  private readonly slots: Slot[];
  private used = 0;
  /** Why requests are refused now (refuseRequests), or undefined. */
  private refusing: string | undefined;

  /** A pool of `options.slots` trainer processes, each started on its first request. */
  static create(options: TrainerPoolOptions = {}): TrainerPool {
    const { slots: option, ...trainer } = options;
    const gpus = visibleGpus();
    const n = slotCount(option, process.env, gpus);
    const envs = slotEnvironments(n, gpus, os.availableParallelism(), { ...process.env, ...trainer.env });
    return new TrainerPool(envs.map((env) => new TrainerClient({ ...trainer, env: { ...trainer.env, ...env } })));
  }

  constructor(trainers: readonly SlotTrainer[]) {
    if (trainers.length === 0) throw new Error('Expected `trainers` to hold at least one trainer, got none');
    this.slots = trainers.map((trainer) => ({
      trainer,
      inFlight: 0,
      lastRun: undefined,
      lastUsed: 0,
      get started() {
        return trainer.pid !== undefined;
      },
    }));
  }

  /** How many trainers (and so how many activities at once) this pool serves. */
  get size(): number {
    return this.slots.length;
  }

  /** Sends one request to the slot `chooseSlot` picks (see TrainerClient.request). */
  request<T>(body: RequestBody, opts: RequestOptions = {}): Promise<T> {
    if (this.refusing !== undefined) return Promise.reject(new WorkerShuttingDownError(`${this.refusing}: it takes no new ${body.type} request`));
    const runUri = runOf(body);
    const slot = this.slots[chooseSlot(this.slots, runUri)]!;
    slot.inFlight++;
    slot.lastUsed = ++this.used;
    if (runUri !== undefined) slot.lastRun = runUri;
    const done = (): void => {
      slot.inFlight--;
    };
    const pending = slot.trainer.request<T>(body, opts);
    pending.then(done, done);
    return pending;
  }

  /** The worker's allow-list, for every slot's trainer (see TrainerClient.allowUris). */
  allowUris(prefixes: readonly string[]): void {
    for (const s of this.slots) s.trainer.allowUris(prefixes);
  }

  /** The first slot's trainer process id (started on first use). */
  get pid(): number | undefined {
    return this.slots[0]!.trainer.pid;
  }

  /** Every slot's trainer process id, in slot order (undefined: not started). */
  get pids(): (number | undefined)[] {
    return this.slots.map((s) => s.trainer.pid);
  }

  status(): SlotStatus[] {
    return this.slots.map((s, slot) => ({ slot, pid: s.trainer.pid, inFlight: s.inFlight, lastRun: s.lastRun }));
  }

  /** Why the worker is shutting down, once shutdown() was called on any slot's trainer. */
  get shutdownReason(): string | undefined {
    return this.slots.map((s) => s.trainer.shutdownReason).find((r) => r !== undefined);
  }

  /** Starts every slot's drain at once (see TrainerClient.shutdown); resolves when all are over. */
  async shutdown(reason?: string): Promise<void> {
    await Promise.all(this.slots.map((s) => s.trainer.shutdown?.(reason)));
  }

  /**
   * Refuses every request with WorkerShuttingDownError while `reason` is set (the plugin, once its
   * last worker has stopped: a late request would start a trainer no one closes); undefined accepts again.
   */
  refuseRequests(reason: string | undefined): void {
    this.refusing = reason;
  }

  /** Stops every trainer process (after the worker has shut down). */
  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.trainer.close()));
  }
}

/** The pool an option names: a pool as is, one client as a pool of one, options as a new pool. */
export function toTrainerPool(trainer: TrainerPool | TrainerClient | TrainerPoolOptions | undefined): TrainerPool {
  if (trainer instanceof TrainerPool) return trainer;
  if (trainer instanceof TrainerClient) return new TrainerPool([trainer]);
  return TrainerPool.create(trainer);
}
