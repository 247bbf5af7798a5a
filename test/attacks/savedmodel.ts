/**
 * A SavedModel is code (#20): a caller who may start runs names a SavedModel whose graph reads a
 * file of the worker's and writes it elsewhere (test/fixtures/savedmodel/hostile-copies-a-file: a
 * layer that runs ReadFile(/tmp/durable-train-hostile/secret.txt) -> WriteFile(.../stolen.txt) on
 * every step). The worker refuses it before loading it: FAILED non-retryably (UnsafeSavedModel)
 * within 10 s of the start (the worker's trainer already up), naming the op; one attempt; the secret is not copied and is nowhere in the history.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { historyToJson } from '../history-json';
import { uniqueId } from '../helpers/temporal';
import type { Attack } from './attack';

const HOSTILE = path.resolve(__dirname, '../fixtures/savedmodel/hostile-copies-a-file');
/** The paths baked into the fixture (test/fixtures/savedmodel/regenerate.sh). */
const SECRET_DIR = '/tmp/durable-train-hostile';

/** The first ApplicationFailure in an error's cause chain. */
function applicationFailure(err: unknown): ApplicationFailure | undefined {
  for (let e: unknown = err, i = 0; e && i < 10; e = (e as { cause?: unknown }).cause, i++) {
    if (e instanceof ApplicationFailure) return e;
  }
  return undefined;
}

export const attacks: Attack[] = [
  {
    name: 'trainModel on a SavedModel whose train_step copies a secret file (ReadFile -> WriteFile)',
    origin: '#20 SavedModel is code',
    timeoutMs: 60_000,
    async run({ stack, worker, dir }) {
      const secret = `hostile-secret-${randomBytes(8).toString('hex')}`;
      fs.mkdirSync(SECRET_DIR, { recursive: true });
      fs.writeFileSync(path.join(SECRET_DIR, 'secret.txt'), secret);
      const stolen = path.join(SECRET_DIR, 'stolen.txt');
      fs.rmSync(stolen, { force: true });
      try {
        // The worker's trainer process is started first (a cold start of TensorFlow is not the
        // refusal's cost; on a loaded CI machine it alone can take seconds): the 10 s are the run's.
        await worker.plugin.trainer.request({ type: 'describe' });
        const runId = uniqueId('hostile-sm');
        const tiny = { name: 'synthetic', params: { features: 4, classes: 3, size: 64 } };
        const started = Date.now();
        const handle = await stack.client.workflow.start('trainModel', {
          taskQueue: worker.taskQueue,
          workflowId: runId,
          args: [
            {
              runId,
              model: { kind: 'savedmodel', uri: pathToFileURL(HOSTILE).href },
              data: { train: tiny, eval: tiny },
              hyperparameters: { learningRate: 0.01, batchSize: 8 },
              stepsPerEpoch: 4,
              maxEpochs: 2,
              seed: 1,
              checkpoint: { uri: pathToFileURL(dir).href },
            },
          ],
        });
        const err = await handle.result().then(
          () => assert.fail('the hostile SavedModel trained'),
          (e: unknown) => e,
        );
        const seconds = (Date.now() - started) / 1000;
        assert.ok(err instanceof WorkflowFailedError, String(err));
        const failure = applicationFailure(err);
        assert.ok(failure, `no ApplicationFailure in ${String(err)}`);
        assert.equal(failure.type, 'UnsafeSavedModel');
        assert.equal(failure.nonRetryable, true);
        assert.match(failure.message, /`ReadFile` \(it reads a file\), run by signature `train_step`: node `[^`]+` in function `__inference_train_step_\d+`/);
        assert.ok(seconds < 10, `FAILED after ${seconds.toFixed(1)} s, expected under 10 s`);

        const history = await handle.fetchHistory();
        const attempts = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
        assert.deepEqual(attempts, [1], 'one attempt: not retried');
        assert.ok(!historyToJson(history).includes(secret), 'the secret is in the history');
        const copied = fs.existsSync(stolen);
        assert.ok(!copied, 'the secret was copied: the graph ran');
        assert.ok(!fs.existsSync(path.join(dir, runId, 'checkpoints')), 'a checkpoint was written');
        return {
          outcome: `FAILED ${failure.type} in ${seconds.toFixed(1)} s, non-retryable, naming ${[...failure.message.matchAll(/`(\w+)` \(it /g)].map((m) => m[1]).join(', ')} in train_step`,
          // The victim is the worker's file system: the secret copied nowhere, unchanged.
          victimUnchanged: !copied && fs.readFileSync(path.join(SECRET_DIR, 'secret.txt'), 'utf8') === secret,
        };
      } finally {
        fs.rmSync(SECRET_DIR, { recursive: true, force: true });
      }
    },
  },
];
