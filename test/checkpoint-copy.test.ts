/**
 * copyTrialCheckpoint (src/activities/checkpoint-copy.ts) on the real file store: the donor's
 * committed checkpoint replaces the recipient's at the same step and verifies there, latest.json
 * names it, both folders record the copy, a retry changes nothing, and a donor without a
 * committed checkpoint at that step (or a recipient with newer ones) is refused non-retryably.
 * The copy takes the recipient's lease (a zombie attempt of the recipient commits nothing after it)
 * and its new run.json keeps the data the recipient's folder was pinned to.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createCheckpointCopyActivities } from '../src/activities/checkpoint-copy';
import { readCheckpoint, writeCheckpoint } from '../src/checkpoints/format';
import { LATEST_KEY, lineageKey, RUN_JSON } from '../src/checkpoints/layout';
import { LeaseLostError, acquireLease } from '../src/checkpoints/lease';
import { checkRunIdentity } from '../src/checkpoints/run-identity';
import { parseTrainConfig } from '../src/config/train-config';
import { trainInput } from './fast/harness';
import { openStore } from '../src/checkpoints/open-store';
import { tempDir } from './helpers/cleanup';

const objects = (who: string) => new Map([['weights.bin', Buffer.from(`weights of ${who}`)], ['optimizer.bin', Buffer.from(`adam slots of ${who}`)], ['state.json', Buffer.from(`{"who":"${who}"}`)]]);

/** The activity, run inside an activity context as the worker runs it. */
function copyActivity() {
  const { copyTrialCheckpoint } = createCheckpointCopyActivities({ openStore: (uri) => openStore(uri) });
  return (input: Parameters<typeof copyTrialCheckpoint>[0]) => new MockActivityEnvironment().run(copyTrialCheckpoint, input) as ReturnType<typeof copyTrialCheckpoint>;
}

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(() => assert.fail('Expected a failure'), (e: unknown) => e);
  assert.ok(err instanceof ApplicationFailure, String(err));
  return err;
}

describe('copyTrialCheckpoint', () => {
  test('the donor\'s checkpoint becomes the recipient\'s at that step, recorded in both folders; a retry changes nothing', async () => {
    const root = pathToFileURL(tempDir()).href;
    const donor = `${root}/search/trial-3`;
    const recipient = `${root}/search/trial-1`;
    await writeCheckpoint(openStore(donor), 10, objects('trial-3'));
    await writeCheckpoint(openStore(recipient), 5, objects('trial-1 at 5'));
    await writeCheckpoint(openStore(recipient), 10, objects('trial-1'));
    const copyTrialCheckpoint = copyActivity();
    const input = { fromRunUri: donor, toRunUri: recipient, step: 10, round: 1, fromTrial: 'trial-3', toTrial: 'trial-1', record: { params: { lr: 0.012 } } };

    const out = await copyTrialCheckpoint(input);
    assert.equal(out.copied, true);
    const copied = await readCheckpoint(openStore(recipient), 10);
    assert.ok(copied.ok);
    assert.deepEqual(Object.fromEntries([...copied.checkpoint.objects].map(([k, v]) => [k, v.toString()])), Object.fromEntries([...objects('trial-3')].map(([k, v]) => [k, v.toString()])));
    assert.equal(out.manifestSha256, copied.checkpoint.manifestSha256);
    const latest = JSON.parse((await openStore(recipient).get(LATEST_KEY))!.toString());
    assert.deepEqual(latest, { step: 10, key: 'checkpoints/000000000010', manifestSha256: out.manifestSha256 });
    // The recipient's earlier checkpoints are its own still.
    const earlier = await readCheckpoint(openStore(recipient), 5);
    assert.equal(earlier.ok && earlier.checkpoint.objects.get('weights.bin')!.toString(), 'weights of trial-1 at 5');

    const inRecipient = JSON.parse((await openStore(recipient).get(lineageKey(1, 'copied-from', 'trial-3')))!.toString());
    const inDonor = JSON.parse((await openStore(donor).get(lineageKey(1, 'copied-to', 'trial-1')))!.toString());
    assert.deepEqual(inRecipient, inDonor);
    assert.equal(inRecipient.from, 'trial-3');
    assert.equal(inRecipient.to, 'trial-1');
    assert.deepEqual(inRecipient.params, { lr: 0.012 });

    const again = await copyTrialCheckpoint(input);
    assert.deepEqual(again, { ...out, copied: false });
  });

  test('a donor without a committed checkpoint at the step, or a recipient with newer ones, is refused', async () => {
    const root = pathToFileURL(tempDir()).href;
    const donor = `${root}/s/trial-2`;
    const recipient = `${root}/s/trial-4`;
    await writeCheckpoint(openStore(donor), 5, objects('trial-2'));
    await writeCheckpoint(openStore(recipient), 15, objects('trial-4'));
    const copyTrialCheckpoint = copyActivity();
    const base = { fromRunUri: donor, toRunUri: recipient, round: 1, fromTrial: 'trial-2', toTrial: 'trial-4', record: {} };
    const missing = await failure(copyTrialCheckpoint({ ...base, step: 10 }));
    assert.equal(missing.type, 'CheckpointUnusable');
    assert.equal(missing.nonRetryable, true);
    assert.match(missing.message, /trial-2\/checkpoints\/000000000010: no manifest/);
    await writeCheckpoint(openStore(donor), 10, objects('trial-2'));
    const newer = await failure(copyTrialCheckpoint({ ...base, step: 10 }));
    assert.equal(newer.type, 'CheckpointConflict');
    assert.match(newer.message, /newer checkpoints \(15\)/);
    assert.equal(await openStore(donor).get(lineageKey(1, 'copied-to', 'trial-4')), undefined);
  });

  test('the copy takes the recipient\'s lease: a zombie attempt of the recipient commits nothing after it', async () => {
    const root = pathToFileURL(tempDir()).href;
    const donor = `${root}/search/trial-2`;
    const recipient = `${root}/search/trial-0`;
    await writeCheckpoint(openStore(donor), 10, objects('trial-2'));
    await writeCheckpoint(openStore(recipient), 10, objects('trial-0'));
    // The recipient's last round, on a worker that has not noticed it is gone.
    const zombie = await acquireLease(openStore(recipient), { workflowId: 'search/trial-0', workflowRunId: 'r1', activityId: '9', attempt: 1 });
    await zombie.assertHeld();
    await copyActivity()({ fromRunUri: donor, toRunUri: recipient, step: 10, round: 1, fromTrial: 'trial-2', toTrial: 'trial-0', record: {} });
    await assert.rejects(zombie.assertHeld(), LeaseLostError);
    await assert.rejects(writeCheckpoint(openStore(recipient), 15, objects('zombie'), { lease: zombie }), LeaseLostError);
    assert.equal((await readCheckpoint(openStore(recipient), 15)).ok, false);
    const latest = JSON.parse((await openStore(recipient).get(LATEST_KEY))!.toString());
    assert.equal(latest.step, 10);
    const there = await readCheckpoint(openStore(recipient), 10);
    assert.equal(there.ok && there.checkpoint.objects.get('weights.bin')!.toString(), 'weights of trial-2');
  });

  test('the recipient\'s new run.json is its next input\'s identity, with the data its folder was pinned to', async () => {
    const root = pathToFileURL(tempDir()).href;
    const donor = `${root}/search/trial-5`;
    const recipient = `${root}/search/trial-6`;
    await writeCheckpoint(openStore(donor), 10, objects('trial-5'));
    const before = parseTrainConfig(trainInput({ hyperparameters: { optimizer: 'adam', learningRate: 0.1, batchSize: 32 } }));
    const pinned = { shards: [{ uri: 'file:///data/part-0.jsonl', size: 123 }] };
    await checkRunIdentity(openStore(recipient), before, undefined, pinned);
    const next = trainInput({ hyperparameters: { optimizer: 'adam', learningRate: 0.05, batchSize: 32 } });
    await copyActivity()({ fromRunUri: donor, toRunUri: recipient, step: 10, round: 2, fromTrial: 'trial-5', toTrial: 'trial-6', record: {}, nextInput: next });
    const record = JSON.parse((await openStore(recipient).get(RUN_JSON))!.toString());
    assert.equal(record.identity.hyperparameters.learningRate, 0.05);
    assert.deepEqual(record.identity.dataset, pinned);
    // The trainer of the next round, which lists the same shards, finds the folder its own.
    assert.deepEqual(await checkRunIdentity(openStore(recipient), parseTrainConfig(next), undefined, pinned), { created: false });
    // And the copy is idempotent: a retried attempt leaves the record as it is.
    await copyActivity()({ fromRunUri: donor, toRunUri: recipient, step: 10, round: 2, fromTrial: 'trial-5', toTrial: 'trial-6', record: {}, nextInput: next });
    assert.deepEqual(JSON.parse((await openStore(recipient).get(RUN_JSON))!.toString()), record);
  });
});
