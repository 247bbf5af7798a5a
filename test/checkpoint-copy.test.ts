/**
 * copyTrialCheckpoint (src/activities/checkpoint-copy.ts) on the real file store: the donor's
 * committed checkpoint replaces the recipient's at the same step and verifies there, latest.json
 * names it, both folders record the copy, a retry changes nothing, and a donor without a
 * committed checkpoint at that step (or a recipient with newer ones) is refused non-retryably.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createCheckpointCopyActivities } from '../src/activities/checkpoint-copy';
import { readCheckpoint, writeCheckpoint } from '../src/checkpoints/format';
import { LATEST_KEY, lineageKey } from '../src/checkpoints/layout';
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
});
