/**
 * The worker's side of the trainer process: forks it on first use, sends requests, relays
 * progress, turns an abort into a stop at the next step, and starts a new trainer if one dies.
 * On worker shutdown (`shutdown()`) it stops the running training at its next step (the trainer
 * commits a checkpoint and releases the run's lease), refuses new requests, and then closes the
 * trainer through its IPC channel: the trainer ignores SIGINT/SIGTERM so a signal sent to the
 * whole process group never kills it mid-write.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { ChildMessage, Progress, RequestBody, SerializedError, TrainEpochTrainerResult, TrainUntilStepResult } from './protocol';
import { isInputError } from './input-errors';
import { resolveTrainerModule, type ResolvedTrainerModule } from './trainer-module';
import { checkShutdownSeconds, shutdownSecondsFromEnv } from './shutdown-budget';
import { mark } from './timeline';

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
  /**
   * How long a shutdown may take to stop the running training and commit its checkpoint before the
   * trainer is killed (GCE gives 30 s of notice before a preemption). @default `DT_SHUTDOWN_SECONDS`, else 25
   */
  readonly shutdownSeconds?: number;
}

export { MAX_SHUTDOWN_SECONDS, shutdownSecondsFromEnv } from './shutdown-budget';

/** The worker is shutting down: the request was stopped (or refused) so that another worker takes it. Retryable. */
export class WorkerShuttingDownError extends Error {
  override readonly name = 'WorkerShuttingDown';
  constructor(
    message: string,
    /** What the stopped training reached (its checkpoint is committed), when it was a training. */
    readonly stopped?: TrainUntilStepResult,
  ) {
    super(message);
  }

  static stoppedAt(reason: string, stopped: TrainUntilStepResult): WorkerShuttingDownError {
    return new WorkerShuttingDownError(
      `The worker is shutting down (${reason}): training stopped at step ${stopped.step} and committed checkpoint ${stopped.checkpointStep} (${stopped.checkpointUri})`,
      stopped,
    );
  }
}

/** The training a `train` or `trainEpoch` answer says was stopped before its target, if it was. */
export function trainStoppedEarly(body: RequestBody, result: unknown): TrainUntilStepResult | undefined {
  const trained = body.type === 'train' ? (result as TrainUntilStepResult) : body.type === 'trainEpoch' ? (result as TrainEpochTrainerResult).trained : undefined;
  return trained?.cancelled ? trained : undefined;
}

/** A failure inside the trainer; `nonRetryable` says whether trying again could help. */
export class TrainerError extends Error {
  readonly nonRetryable: boolean;
  constructor(e: SerializedError) {
    super(e.message);
    this.name = e.name;
    // Classified here too: the non-retryable mapping must not depend on every trainer path having classified it.
    this.nonRetryable = e.nonRetryable || isInputError(e.name, e.message);
    if (e.stack) this.stack = e.stack;
  }
}

/**
 * What the trainer inherits from the worker's environment, and nothing else: the system basics,
 * TensorFlow's and CUDA's settings, the GCS client's credentials and endpoint, and durable-train's
 * own DT_* variables (none of which holds a secret). Temporal's credentials (TEMPORAL_API_KEY,
 * TEMPORAL_TLS_*) and whatever else the worker holds never reach the process that reads inputs' files.
 */
const TRAINER_ENV_NAMES = new Set([
  'PATH', 'HOME', 'USER', 'LOGNAME', 'TMPDIR', 'TMP', 'TEMP', 'LANG', 'LANGUAGE', 'TZ',
  'LD_LIBRARY_PATH', 'CUDA_VISIBLE_DEVICES', 'OMP_NUM_THREADS',
  'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR',
  'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy',
  // @google-cloud/storage and google-auth-library (Application Default Credentials, the emulator).
  'STORAGE_EMULATOR_HOST', 'GCLOUD_PROJECT', 'GCP_PROJECT', 'METADATA_SERVER_DETECTION',
]);
const TRAINER_ENV_PREFIXES = ['LC_', 'TF_', 'NVIDIA_', 'GOOGLE_', 'GCE_METADATA_', 'CLOUDSDK_', 'DT_'];

/** The trainer's environment: the allowed part of `env` (see TRAINER_ENV_NAMES). */
export function trainerEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && (TRAINER_ENV_NAMES.has(name) || TRAINER_ENV_PREFIXES.some((p) => name.startsWith(p)))) out[name] = value;
  }
  return out;
}

const TF_BANNER = /^(WARNING: All log messages before absl::InitializeLog|I0000 .*\] (oneDNN custom operations|This TensorFlow binary is optimized))/;

/** How long close() lets a trainer save the request it abandons before killing it. */
const ABANDON_GRACE_MS = 3000;

/** How long a new trainer may take to load TensorFlow and say it is ready. */
const STARTUP_LIMIT_MS = 120_000;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  onProgress?: (p: Progress) => void;
  onWorking?: () => void;
}

/** What a request reports back while it runs. */
export interface RequestOptions {
  /** Each progress message of a train request. */
  onProgress?: (p: Progress) => void;
  /**
   * About once a second while the trainer's work moves forward (steps, store calls, loading and
   * evaluating data), and while a new trainer process starts: what the activity heartbeats on.
   */
  onWorking?: () => void;
  /** Aborting asks the trainer to stop at its next step. */
  signal?: AbortSignal;
}

export class TrainerClient {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private lastHeard = 0;
  /** The trainer answered once (its start-up, loading TensorFlow, is over). */
  private ready = false;
  private stalled: string | undefined;
  private readonly stallMs: number;
  private allowedUris: readonly string[] | undefined;
  /** Set once shutdown() was called: why, and when it is over. */
  private stopping: { readonly reason: string; readonly done: Promise<void> } | undefined;
  /** While close() ends the trainer process: a request waits for it, then starts a new one. */
  private closing: Promise<void> | undefined;
  /** Budget of a shutdown, in seconds. */
  readonly shutdownSeconds: number;
  private readonly trainerModule: ResolvedTrainerModule | undefined;

  constructor(private readonly options: TrainerOptions = {}) {
    const seconds = options.stallTimeoutSeconds ?? Number(process.env.DT_TRAINER_STALL_SECONDS ?? 300);
    if (!(seconds > 0)) {
      throw new Error(`Expected \`stallTimeoutSeconds\` (or DT_TRAINER_STALL_SECONDS) to be a number of seconds above 0, got ${String(seconds)}`);
    }
    this.stallMs = seconds * 1000;
    this.shutdownSeconds = options.shutdownSeconds === undefined ? shutdownSecondsFromEnv() : checkShutdownSeconds('shutdownSeconds', options.shutdownSeconds);
    this.trainerModule = options.trainerModule === undefined ? undefined : resolveTrainerModule(options.trainerModule);
  }

  /**
   * The worker's allow-list, passed to the trainer as DT_ALLOWED_URIS: its store opener refuses
   * everything else. Takes effect when the next trainer process starts (set it before the first request).
   */
  allowUris(prefixes: readonly string[]): void {
    this.allowedUris = [...prefixes];
  }

  /** Checks, once a second while requests are open, that the trainer still answers. */
  private watch(child: ChildProcess): void {
    const timer = setInterval(() => {
      if (this.child !== child) {
        clearInterval(timer);
        return;
      }
      // Starting a trainer (loading TensorFlow) reports nothing; it is bounded by the stall limit below.
      if (!this.ready) for (const p of this.pending.values()) p.onWorking?.();
      const silentMs = Date.now() - this.lastHeard;
      // Loading TensorFlow is silent and slow on a busy machine: the start gets its own, longer limit.
      const limitMs = this.ready ? this.stallMs : Math.max(this.stallMs, STARTUP_LIMIT_MS);
      if (this.pending.size > 0 && silentMs > limitMs) {
        this.stalled = `gave no sign of life for ${Math.round(silentMs / 1000)} s (${this.ready ? 'stall' : 'start-up'} limit ${limitMs / 1000} s); it was killed`;
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
    mark('trainer-fork');
    const child = fork(entry, [], {
      execArgv: ext === '.ts' ? ['--import', 'tsx'] : [...(this.trainerModule?.execArgv ?? [])],
      env: {
        ...trainerEnvironment(process.env),
        ...(this.allowedUris && { DT_ALLOWED_URIS: this.allowedUris.join(',') }),
        ...this.options.env,
        ...(this.options.backend && { DT_BACKEND: this.options.backend }),
        ...(this.trainerModule && { DT_TRAINER_MODULE: this.trainerModule.file }),
        DT_SHUTDOWN_SECONDS: String(this.shutdownSeconds),
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
    /** It answered a request with a result once: it loaded, so starting it again will work. */
    let served = false;
    child.on('message', (msg: ChildMessage) => {
      this.lastHeard = Date.now();
      if (this.child === child) this.ready = true;
      if (msg.type === 'result') served = true;
      this.onMessage(msg);
    });
    child.on('exit', (code, signal) => {
      // Not ended by close() (which lets go of it first): it crashed, was killed, or stalled.
      const died = this.child === child;
      if (died) this.child = undefined;
      const why = this.stalled ?? `exited (code ${code}, signal ${signal})`;
      this.stalled = undefined;
      const err = new Error(`The trainer process (pid ${child.pid}) ${why}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      // A trainer that had served a request is started again at once, not on the next request: the
      // retried attempt (the failure above, a retry backoff later) then finds TensorFlow loaded
      // instead of waiting seconds for it (bench/restart.ts, trainer SIGKILL). One that never
      // answered with a result (a bad backend, a broken trainer module) waits for a request, so a
      // trainer that cannot start is not restarted in a loop; neither is one while the worker stops.
      if (died && served && !this.stopping && !this.closing) this.start();
    });
    this.child = child;
    this.ready = false;
    this.lastHeard = Date.now();
    this.watch(child);
    return child;
  }

  private onMessage(msg: ChildMessage): void {
    if (msg.type === 'alive') {
      // One request runs at a time; those queued behind it wait on its progress.
      if (msg.progressing) for (const p of this.pending.values()) p.onWorking?.();
      return;
    }
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

  /** Sends one request. Aborting `opts.signal` asks the trainer to stop at its next step. */
  request<T>(body: RequestBody, opts: RequestOptions = {}): Promise<T> {
    // Not beside a process that is still ending: its exit would fail this request too.
    if (this.closing) return this.closing.then(() => this.request<T>(body, opts));
    if (this.stopping) return Promise.reject(new WorkerShuttingDownError(`The worker is shutting down (${this.stopping.reason}): it takes no new ${body.type} request`));
    const child = this.child ?? this.start();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, {
        resolve: (value) => {
          // Stopped by the drain: hand the attempt back rather than report a cancellation.
          const stopped = this.stopping && trainStoppedEarly(body, value);
          if (stopped) reject(WorkerShuttingDownError.stoppedAt(this.stopping!.reason, stopped));
          else resolve(value as T);
        },
        reject: (err) => reject(this.stopping && !(err instanceof TrainerError) ? new WorkerShuttingDownError(`The worker is shutting down (${this.stopping.reason}): ${err.message}`) : err),
        ...(opts.onProgress && { onProgress: opts.onProgress }),
        ...(opts.onWorking && { onWorking: opts.onWorking }),
      });
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

  /** Why the worker is shutting down, once shutdown() was called. */
  get shutdownReason(): string | undefined {
    return this.stopping?.reason;
  }

  /**
   * Starts the drain (on SIGTERM/SIGINT, with or before Temporal's `worker.shutdown()`): every open
   * request is asked to stop at its next step (a train request commits its checkpoint and answers
   * `cancelled`), and new requests are refused with WorkerShuttingDownError. Resolves when no request
   * is open, or after `shutdownSeconds`, when a trainer still busy is killed. Idempotent.
   */
  shutdown(reason = 'shutdown requested'): Promise<void> {
    if (this.stopping) return this.stopping.done;
    const child = this.child;
    if (child?.connected) for (const id of this.pending.keys()) child.send({ id, type: 'cancel' });
    const deadline = Date.now() + this.shutdownSeconds * 1000;
    const done = new Promise<void>((resolve) => {
      let killed = false;
      const timer = setInterval(() => {
        if (this.pending.size === 0) {
          clearInterval(timer);
          resolve();
        } else if (Date.now() > deadline && this.child && !killed) {
          killed = true;
          this.stalled = `did not stop within the shutdown budget of ${this.shutdownSeconds} s (DT_SHUTDOWN_SECONDS); it was killed`;
          (this.options.log ?? console.warn)(`[durable-train] the trainer process (pid ${this.child.pid}) ${this.stalled}`);
          this.child.kill('SIGKILL');
        }
      }, 50);
    });
    this.stopping = { reason, done };
    return done;
  }

  /**
   * Ends the trainer process: closes its IPC channel, and the trainer exits once the request it runs
   * has stopped at its next step and committed (after shutdown(), none is open and it exits at once).
   * A request still open here is abandoned: the trainer gets a few seconds for that save, then SIGKILL.
   * A request after close() starts a new trainer process (a drain started by shutdown() is over).
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const child = this.child;
    this.child = undefined;
    this.closing = (child ? this.end(child) : Promise.resolve()).finally(() => {
      this.stopping = undefined;
      this.closing = undefined;
    });
    return this.closing;
  }

  private async end(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const graceMs = this.pending.size > 0 ? Math.min(ABANDON_GRACE_MS, this.shutdownSeconds * 1000) : this.shutdownSeconds * 1000 + 5000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      if (child.connected) child.disconnect();
      else child.kill('SIGKILL');
    });
  }
}
