/**
 * PBT's exploit step: one trial's committed checkpoint (weights, optimizer state, the trainer's
 * state) becomes another trial's checkpoint at the same step, through the store, and the copy is
 * recorded in both trials' folders (lineage/…). The recipient's own checkpoint at that step is
 * un-committed first (manifest first, as a damaged checkpoint is) and the donor's objects are
 * written through the checkpoint format, so the copy verifies like any checkpoint; its newer
 * manifest also tells a trainer holding the recipient's old session in memory not to use it.
 * Runs only between rounds, while no trainModel of the recipient is running.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { checkpointKey, checkpointObjectKey, LATEST_KEY, lineageKey, MANIFEST, RUN_JSON } from '../checkpoints/layout';
import { fingerprintOf, RUN_FORMAT, runIdentityOf, type RunRecord } from '../checkpoints/run-identity';
import { parseTrainConfig } from '../config/train-config';
import { ConfigError } from '../config/validate';
import { listCheckpointSteps, readCheckpoint, writeCheckpoint, type LatestPointer } from '../checkpoints/format';
import { PreconditionFailedError, type CheckpointStore } from '../checkpoints/store';
import { storeCall } from './store-and-trainer';

export interface CheckpointCopyDeps {
  readonly openStore: (uri: string) => CheckpointStore;
}

export interface CopyTrialCheckpointInput {
  readonly fromRunUri: string;
  readonly toRunUri: string;
  readonly step: number;
  readonly round: number;
  readonly fromTrial: string;
  readonly toTrial: string;
  /** What the lineage records say besides who and where (values before and after, metrics). */
  readonly record: Readonly<Record<string, unknown>>;
  /**
   * The recipient's next trainModel input: its run.json becomes this input's identity, since the
   * folder now continues a new trajectory (the donor's weights, the perturbed values).
   */
  readonly nextInput?: Readonly<Record<string, unknown>>;
}

export interface CopyTrialCheckpointOutput {
  readonly checkpointUri: string;
  readonly manifestSha256: string;
  /** False when an earlier attempt had already copied it. */
  readonly copied: boolean;
}

/** Creates `key` with `data`, or finds these very bytes there (a retried attempt). */
async function createOnce(store: CheckpointStore, key: string, data: Buffer): Promise<void> {
  try {
    await store.putIfVersion(key, data, undefined);
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
    const there = await store.get(key);
    if (!there?.equals(data)) throw ApplicationFailure.nonRetryable(`Refusing to overwrite ${store.uriOf(key)}: it holds a different record`, 'WouldOverwrite');
  }
}

/** Points latest.json at `pointer` even when it already names that step (the step's manifest changed). */
async function setLatest(store: CheckpointStore, pointer: LatestPointer): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await store.getVersioned(LATEST_KEY);
    try {
      await store.putIfVersion(LATEST_KEY, Buffer.from(JSON.stringify(pointer)), current?.version);
      return;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
    }
  }
  throw new Error(`Could not update ${store.uriOf(LATEST_KEY)}: too many concurrent writers`);
}

/** Replaces the recipient's run.json with the identity of its next input (recorded in the lineage). */
async function reidentify(store: CheckpointStore, nextInput: unknown): Promise<void> {
  let config;
  try {
    config = parseTrainConfig(nextInput);
  } catch (err) {
    if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidConfig');
    throw err;
  }
  const identity = runIdentityOf(config);
  const record: RunRecord = { format: RUN_FORMAT, fingerprint: fingerprintOf(identity), identity, createdAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await store.getVersioned(RUN_JSON);
    if (current && (JSON.parse(current.data.toString('utf8')) as RunRecord).fingerprint === record.fingerprint) return;
    try {
      await store.putIfVersion(RUN_JSON, Buffer.from(JSON.stringify(record, null, 1)), current?.version);
      return;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
    }
  }
  throw new Error(`Could not update ${store.uriOf(RUN_JSON)}: too many concurrent writers`);
}

export function createCheckpointCopyActivities(deps: CheckpointCopyDeps) {
  return {
    async copyTrialCheckpoint(input: CopyTrialCheckpointInput): Promise<CopyTrialCheckpointOutput> {
      const from = deps.openStore(input.fromRunUri);
      const to = deps.openStore(input.toRunUri);
      return storeCall(async () => {
        const source = await readCheckpoint(from, input.step);
        if (!source.ok) {
          throw ApplicationFailure.nonRetryable(`Cannot copy ${from.uriOf(checkpointKey(input.step))}: ${source.reason}`, 'CheckpointUnusable');
        }
        const newer = (await listCheckpointSteps(to)).filter((s) => s > input.step);
        if (newer.length > 0) {
          throw ApplicationFailure.nonRetryable(`Cannot copy into ${to.uri} at step ${input.step}: it has newer checkpoints (${newer.join(', ')})`, 'CheckpointConflict');
        }
        const there = await readCheckpoint(to, input.step);
        const same = there.ok && [...source.checkpoint.objects].every(([n, b]) => there.checkpoint.objects.get(n)?.equals(b)) && there.checkpoint.objects.size === source.checkpoint.objects.size;
        let manifestSha256 = there.ok ? there.checkpoint.manifestSha256 : '';
        if (!same) {
          // Manifest first: a crash between the two deletes leaves an uncommitted step, never a mix.
          await to.deletePrefix(checkpointObjectKey(input.step, MANIFEST));
          await to.deletePrefix(`${checkpointKey(input.step)}/`);
          manifestSha256 = (await writeCheckpoint(to, input.step, source.checkpoint.objects)).manifestSha256;
        }
        await setLatest(to, { step: input.step, key: checkpointKey(input.step), manifestSha256 });
        if (input.nextInput) await reidentify(to, input.nextInput);
        const record = { round: input.round, step: input.step, from: input.fromTrial, to: input.toTrial, fromUri: from.uriOf(checkpointKey(input.step)), toUri: to.uriOf(checkpointKey(input.step)), manifestSha256, sourceManifestSha256: source.checkpoint.manifestSha256, ...input.record };
        const bytes = Buffer.from(JSON.stringify(record, null, 1) + '\n');
        await createOnce(to, lineageKey(input.round, 'copied-from', input.fromTrial), bytes);
        await createOnce(from, lineageKey(input.round, 'copied-to', input.toTrial), bytes);
        return { checkpointUri: to.uriOf(checkpointKey(input.step)), manifestSha256, copied: !same };
      });
    },
  };
}

export type CheckpointCopyActivities = ReturnType<typeof createCheckpointCopyActivities>;
