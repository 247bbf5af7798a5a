/**
 * Run identity: a run folder belongs to one trajectory. `<run>/run.json` is written once, when the
 * run first trains, with a fingerprint of every input field that determines the weights at a given
 * step; a later input whose fields differ is refused (non-retryably, naming the fields) instead of
 * training on someone else's checkpoints.
 *
 * What is in it: the model spec, the train and eval data specs (eval metrics drive the learning
 * rate through reduceLrOnPlateau), the hyperparameters, the loss, the seed, stepsPerEpoch (it fixes
 * which batches make a step and where epochs end), reduceLrOnPlateau (it changes the rate of later
 * steps), the warm start (it sets the initial weights) and the route (the model spec decides it
 * today; a route field wins when present), and, when the caller lists it, a streamed dataset's
 * identity (src/data/identity.ts: its shards, sizes and GCS generations).
 * What is not: maxEpochs, earlyStopping, the checkpoint policy (cadence, keepLast, uri),
 * timeouts, continueAsNewEvery, historyLimit, runId, resume. They decide how far a run goes, when
 * it stops or how it is stored, never what step N computes, so a run may continue with new values.
 *
 * The exact rule: no run.json: write it (only if absent; a racing writer's copy is then compared).
 * Same fingerprint: go on. Different: refuse, `resume` and `warmStartFrom` included. Resuming means
 * continuing the same trajectory (successive halving's later rungs change only maxEpochs, which is
 * not in it), and a retrain warm-starts into a new folder each time: letting either through with a
 * different input let any caller rewrite another run's trajectory in its own folder.
 *
 * Where it is checked: before every write to a run folder. The epoch activities claim or check it
 * before training, recording and retention; a `resume` checks it before reading the recorded epochs
 * (verifyRunIdentity: it claims nothing); finalizeRun checks it before the export, metrics.jsonl,
 * the learning curve and retention. A folder is claimed only if it is not inside another run's or
 * search's folder (folder-owners.ts, run by the activities as `beforeClaim`). The one write that
 * changes a run.json is PBT's exploit (replaceRunIdentity): the recipient's folder continues a new
 * trajectory, the donor's weights with perturbed values.
 */
import type { TrainConfig } from '../config/train-config';
import { sha256 } from './digest';
import { RUN_JSON } from './layout';
import type { Lease } from './lease';
import { PreconditionFailedError, type CheckpointStore } from './store';

export const RUN_FORMAT = 'durable-train/run@1';

export type RunIdentity = Readonly<Record<string, unknown>>;

export interface RunRecord {
  readonly format: typeof RUN_FORMAT;
  readonly fingerprint: string;
  readonly identity: RunIdentity;
  readonly createdAt: string;
}

/** An input that does not match the run folder it names. Caused by the input: never retried. */
export class RunIdentityMismatchError extends Error {
  override readonly name = 'RunIdentityMismatch';
  constructor(
    readonly uri: string,
    readonly differences: readonly string[],
  ) {
    super(
      `The run folder ${uri} was started with a different input: ${differences.join('; ')}. ` +
        'Start a new run id for the new input',
    );
  }
}

/**
 * The fields of `config` that determine its trajectory (see the top of this file), and, when given,
 * the identity of a streamed training set (src/data/identity.ts: its shards with sizes and GCS
 * generations; absent for in-memory datasets, so their fingerprints are unchanged).
 */
export function runIdentityOf(config: TrainConfig, dataset?: unknown): RunIdentity {
  const route = (config as { readonly route?: unknown }).route ?? ('kind' in config.model && config.model.kind === 'savedmodel' ? 'savedmodel' : 'eager');
  return {
    model: config.model,
    data: config.data,
    hyperparameters: config.hyperparameters,
    loss: config.loss,
    seed: config.seed,
    stepsPerEpoch: config.stepsPerEpoch,
    reduceLrOnPlateau: config.reduceLrOnPlateau ?? null,
    warmStartFrom: config.warmStartFrom ?? null,
    route,
    ...(dataset !== undefined && { dataset }),
  };
}

/** JSON with object keys sorted, so equal identities have equal bytes whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function fingerprintOf(identity: RunIdentity): string {
  return sha256(canonicalJson(identity));
}

const MAX_SHOWN = 60;
function show(value: unknown): string {
  const text = value === undefined ? 'absent' : canonicalJson(value);
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

/** The leaf paths where `a` (the folder's) and `b` (the input's) differ: "`model.params.hiddenUnits` is [64] there, [32] here". */
export function identityDifferences(a: unknown, b: unknown, at = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => identityDifferences(a[k], b[k], at ? `${at}.${k}` : k));
  }
  if (canonicalJson(a ?? null) === canonicalJson(b ?? null)) return [];
  return [`\`${at}\` is ${show(a)} there, ${show(b)} here`];
}

export interface ClaimOptions {
  /** Runs before run.json is first written: the check that the folder is not inside another's (folder-owners.ts). */
  readonly beforeClaim?: () => Promise<void>;
  /** Lists the data a new run.json pins (a streamed dataset's shards): asked only when the folder has no run.json yet. */
  readonly datasetIdentity?: () => Promise<unknown>;
}

/**
 * Records the run's identity on first use (`created`), or checks the input against the recorded
 * one. Throws RunIdentityMismatchError for a different input (see the rule at the top).
 */
export async function checkRunIdentity(
  store: CheckpointStore,
  config: TrainConfig,
  now: () => Date = () => new Date(),
  dataset?: unknown,
  options: ClaimOptions = {},
): Promise<{ readonly created: boolean }> {
  let identity = runIdentityOf(config, dataset);
  let existing = await store.get(RUN_JSON);
  if (!existing) {
    await options.beforeClaim?.();
    if (dataset === undefined && options.datasetIdentity) identity = runIdentityOf(config, await options.datasetIdentity());
    const fingerprint = fingerprintOf(identity);
    const record: RunRecord = { format: RUN_FORMAT, fingerprint, identity, createdAt: now().toISOString() };
    try {
      await store.putIfVersion(RUN_JSON, Buffer.from(JSON.stringify(record, null, 1)), undefined);
      if (options.beforeClaim) await recheckClaim(store, RUN_JSON, options.beforeClaim);
      return { created: true };
    } catch (err) {
      // A racing first writer won: compare with its record like any later input.
      if (!(err instanceof PreconditionFailedError)) throw err;
      existing = await store.get(RUN_JSON);
    }
  }
  compareRecorded(store, existing, identity, fingerprintOf(identity));
  return { created: false };
}

/**
 * The nesting check again, once the claim is written: two folders claimed at the same moment, one
 * inside the other, each passed the check before the other's record existed. Run after every write,
 * at most one of them passes (the later writer sees the earlier record); a claim that no longer
 * passes removes the record it has just created (nothing has been written beside it yet) and fails.
 */
export async function recheckClaim(store: CheckpointStore, key: string, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (err) {
    await store.deletePrefix(key).catch(() => undefined);
    throw err;
  }
}

/**
 * Checks the input against the folder's run.json without claiming the folder: `absent` when it has
 * none (nothing is recorded to compare with), `same` when it matches. Throws RunIdentityMismatchError
 * otherwise. What reads a run folder on behalf of an input (resume's recorded epochs) calls this.
 */
export async function verifyRunIdentity(store: CheckpointStore, config: TrainConfig): Promise<'absent' | 'same'> {
  const existing = await store.get(RUN_JSON);
  if (!existing) return 'absent';
  const identity = runIdentityOf(config);
  compareRecorded(store, existing, identity, fingerprintOf(identity));
  return 'same';
}

function compareRecorded(store: CheckpointStore, existing: Buffer | undefined, identity: RunIdentity, fingerprint: string): void {
  let recorded: RunRecord;
  try {
    recorded = JSON.parse(existing?.toString('utf8') ?? 'null') as RunRecord;
  } catch {
    throw new RunIdentityMismatchError(store.uriOf(RUN_JSON), ['its run.json is not valid JSON']);
  }
  if (recorded?.fingerprint === fingerprint) return;
  // A caller that cannot know a streamed dataset's identity (only the trainer lists the shards)
  // checks everything else the input decides.
  if (!('dataset' in identity) && recorded?.identity && 'dataset' in recorded.identity) {
    const rest = Object.fromEntries(Object.entries(recorded.identity).filter(([k]) => k !== 'dataset'));
    if (fingerprintOf(rest) === fingerprint) return;
  }
  const differences = identityDifferences(recorded?.identity ?? {}, JSON.parse(JSON.stringify(identity)));
  throw new RunIdentityMismatchError(store.uri, differences.length > 0 ? differences : ['the fingerprint differs']);
}

/**
 * Replaces the folder's run.json with the identity of `config`: PBT's exploit, after copying the
 * donor's checkpoint into the recipient's folder, which now continues that trajectory with perturbed
 * values. A streamed dataset's pinned shards in the old record are kept (an exploit changes
 * hyperparameters, never the data, and only the trainer lists shards). Compare-and-swap on run.json,
 * the lease checked before each swap; nothing is written when the record already has this fingerprint.
 */
export async function replaceRunIdentity(store: CheckpointStore, config: TrainConfig, options: { readonly lease?: Lease; readonly now?: () => Date } = {}): Promise<void> {
  const now = options.now ?? (() => new Date());
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await store.getVersioned(RUN_JSON);
    let recorded: RunRecord | undefined;
    try {
      recorded = current ? (JSON.parse(current.data.toString('utf8')) as RunRecord) : undefined;
    } catch {
      recorded = undefined;
    }
    const pinned = recorded?.identity && 'dataset' in recorded.identity ? recorded.identity.dataset : undefined;
    const identity = runIdentityOf(config, pinned);
    const fingerprint = fingerprintOf(identity);
    if (recorded?.fingerprint === fingerprint) return;
    const record: RunRecord = { format: RUN_FORMAT, fingerprint, identity, createdAt: now().toISOString() };
    await options.lease?.assertHeld();
    try {
      await store.putIfVersion(RUN_JSON, Buffer.from(JSON.stringify(record, null, 1)), current?.version);
      return;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
    }
  }
  throw new Error(`Could not update ${store.uriOf(RUN_JSON)}: too many concurrent writers`);
}
