/**
 * The worker's side of the trainer process: forks it on first use, sends requests, relays
 * progress, turns an abort into a stop at the next step, and starts a new trainer if one dies.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { ChildMessage, Progress, RequestBody, SerializedError } from './protocol';

export interface TrainerOptions {
  /** Backend preference for the trainer (`DT_BACKEND`): auto, tensorflow-gpu, tensorflow, wasm, cpu. */
  readonly backend?: string;
  /** Module that registers the user's models and datasets in the trainer (`DT_TRAINER_MODULE`). */
  readonly trainerModule?: string;
  /** Extra environment for the trainer process. */
  readonly env?: NodeJS.ProcessEnv;
  /** Where trainer log lines go. */
  readonly log?: (message: string) => void;
  /**
   * Kill the trainer when it has given no sign of life for this long while a request is open:
   * a native op that never returns blocks its event loop, and the activity would otherwise keep
   * heartbeating until its timeout. The request then fails (retryably) and the next one starts a
   * fresh trainer. @default `DT_TRAINER_STALL_SECONDS`, else 300
   */
  readonly stallTimeoutSeconds?: number;
}

/** A failure inside the trainer; `nonRetryable` says whether trying again could help. */
export class TrainerError extends Error {
  readonly nonRetryable: boolean;
  constructor(e: SerializedError) {
    super(e.message);
    this.name = e.name;
    this.nonRetryable = e.nonRetryable;
    if (e.stack) this.stack = e.stack;
  }
}

const TF_BANNER = /^(WARNING: All log messages before absl::InitializeLog|I0000 .*\] (oneDNN custom operations|This TensorFlow binary is optimized))/;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  onProgress?: (p: Progress) => void;
}

export class TrainerClient {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private lastHeard = 0;
  private stalled: string | undefined;
  private readonly stallMs: number;

  constructor(private readonly options: TrainerOptions = {}) {
    const seconds = options.stallTimeoutSeconds ?? Number(process.env.DT_TRAINER_STALL_SECONDS ?? 300);
    if (!(seconds > 0)) {
      throw new Error(`Expected \`stallTimeoutSeconds\` (or DT_TRAINER_STALL_SECONDS) to be a number of seconds above 0, got ${String(seconds)}`);
    }
    this.stallMs = seconds * 1000;
  }

  /** Checks, once a second while requests are open, that the trainer still answers. */
  private watch(child: ChildProcess): void {
    const timer = setInterval(() => {
      if (this.child !== child) {
        clearInterval(timer);
        return;
      }
      const silentMs = Date.now() - this.lastHeard;
      if (this.pending.size > 0 && silentMs > this.stallMs) {
        this.stalled = `gave no sign of life for ${Math.round(silentMs / 1000)} s (stall limit ${this.stallMs / 1000} s); it was killed`;
        (this.options.log ?? console.warn)(`[durable-train] the trainer process (pid ${child.pid}) ${this.stalled}`);
        child.kill('SIGKILL');
        clearInterval(timer);
      }
    }, 1000);
    timer.unref();
  }

  private start(): ChildProcess {
    const ext = path.extname(__filename);
    const entry = path.join(__dirname, `trainer-process${ext}`);
    const child = fork(entry, [], {
      execArgv: ext === '.ts' ? ['--import', 'tsx'] : [],
      env: {
        ...process.env,
        ...this.options.env,
        ...(this.options.backend && { DT_BACKEND: this.options.backend }),
        ...(this.options.trainerModule && { DT_TRAINER_MODULE: this.options.trainerModule }),
      },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    // TensorFlow prints start-up banners on every load; pass everything else through.
    child.stderr?.setEncoding('utf8');
    let partial = '';
    child.stderr?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (!TF_BANNER.test(line)) process.stderr.write(`${line}\n`);
    });
    child.on('message', (msg: ChildMessage) => {
      this.lastHeard = Date.now();
      this.onMessage(msg);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const why = this.stalled ?? `exited (code ${code}, signal ${signal})`;
      this.stalled = undefined;
      const err = new Error(`The trainer process (pid ${child.pid}) ${why}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    this.child = child;
    this.lastHeard = Date.now();
    this.watch(child);
    return child;
  }

  private onMessage(msg: ChildMessage): void {
    if (msg.type === 'alive') return;
    if (msg.type === 'log') {
      (this.options.log ?? ((m: string) => console.log(`[trainer] ${m}`)))(msg.message);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'progress') {
      p.onProgress?.(msg.progress);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.type === 'result') p.resolve(msg.result);
    else p.reject(new TrainerError(msg.error));
  }

  /** Sends one request. Aborting `signal` asks the trainer to stop at its next step. */
  request<T>(body: RequestBody, opts: { onProgress?: (p: Progress) => void; signal?: AbortSignal } = {}): Promise<T> {
    const child = this.child ?? this.start();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...(opts.onProgress && { onProgress: opts.onProgress }) });
      const onAbort = (): void => {
        if (child.connected) child.send({ id, type: 'cancel' });
      };
      if (opts.signal) {
        if (opts.signal.aborted) onAbort();
        else opts.signal.addEventListener('abort', onAbort, { once: true });
      }
      child.send({ id, ...body }, (err) => {
        if (err) {
          this.pending.delete(id);
          reject(err);
        }
      });
    });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}
