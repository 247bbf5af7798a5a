/**
 * PBT's exploit step: one trial's committed checkpoint (weights, optimizer state, the trainer's
 * state) becomes another trial's checkpoint at the same step, through the store, and the copy is
 * recorded in both trials' folders (lineage/…). The recipient's own checkpoint at that step is
 * un-committed first (manifest first, as a damaged checkpoint is) and the donor's objects are
 * written through the checkpoint format, so the copy verifies like any checkpoint; its newer
 * manifest also tells a trainer holding the recipient's old session in memory not to use it.
 * Runs only between rounds, while no trainModel of the recipient is running; it takes the
 * recipient's lease all the same, so a zombie attempt of the recipient's last round (a worker that
 * has not noticed it lost) can no longer commit there, and every write to the recipient goes through
 * src/checkpoints/ (the checkpoint format, moveLatest, replaceRunIdentity, writeOnce).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { checkpointKey, checkpointObjectKey, lineageKey, MANIFEST } from '../checkpoints/layout';
import { replaceRunIdentity } from '../checkpoints/run-identity';
import { parseTrainConfig, type TrainConfig } from '../config/train-config';
import { ConfigError } from '../config/validate';
import { listCheckpointSteps, moveLatest, readCheckpoint, writeCheckpoint } from '../checkpoints/format';
import type { CheckpointStore } from '../checkpoints/store';
import { writeOnce } from '../checkpoints/write-once';
import { acquireActivityLease } from './fencing';
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

/** The recipient's next input, parsed (an input error fails the copy for good). */
function nextConfig(nextInput: unknown): TrainConfig {
  try {
    return parseTrainConfig(nextInput);
  } catch (err) {
    if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidConfig');
    throw err;
  }
}

export function createCheckpointCopyActivities(deps: CheckpointCopyDeps) {
  return {
    async copyTrialCheckpoint(input: CopyTrialCheckpointInput): Promise<CopyTrialCheckpointOutput> {
      const from = deps.openStore(input.fromRunUri);
      const to = deps.openStore(input.toRunUri);
      const config = input.nextInput === undefined ? undefined : nextConfig(input.nextInput);
      return storeCall(async () => {
        const lease = await acquireActivityLease(to);
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
          await lease.assertHeld();
          await to.deletePrefix(checkpointObjectKey(input.step, MANIFEST));
          await to.deletePrefix(`${checkpointKey(input.step)}/`);
          manifestSha256 = (await writeCheckpoint(to, input.step, source.checkpoint.objects, { lease })).manifestSha256;
        }
        await moveLatest(to, { step: input.step, key: checkpointKey(input.step), manifestSha256 }, { lease, sameStep: 'replace' });
        if (config) await replaceRunIdentity(to, config, { lease });
        const record = { round: input.round, step: input.step, from: input.fromTrial, to: input.toTrial, fromUri: from.uriOf(checkpointKey(input.step)), toUri: to.uriOf(checkpointKey(input.step)), manifestSha256, sourceManifestSha256: source.checkpoint.manifestSha256, ...input.record };
        const bytes = Buffer.from(JSON.stringify(record, null, 1) + '\n');
        await writeOnce(to, lineageKey(input.round, 'copied-from', input.fromTrial), bytes, 'a different record');
        await writeOnce(from, lineageKey(input.round, 'copied-to', input.toTrial), bytes, 'a different record');
        await lease.release();
        return { checkpointUri: to.uriOf(checkpointKey(input.step)), manifestSha256, copied: !same };
      });
    },
  };
}

export type CheckpointCopyActivities = ReturnType<typeof createCheckpointCopyActivities>;
