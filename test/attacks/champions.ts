/**
 * #20 ownership, champions (found by the hostile review): after a model's champion was chosen on
 * `val_loss` (min), another caller runs a retrain of the same model name and root with its own rule
 * (`mode: "max"` on `val_loss`, so the worst model wins). It must fail before training, naming both
 * rules, and champion.json must be byte for byte what it was.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { historyEventTypes, mnistInput, uniqueId } from '../helpers/temporal';
import type { Attack } from './attack';

const sha = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

export const attacks: Attack[] = [
  {
    name: "retrain another caller's champion by another rule (mode max on val_loss)",
    origin: '#20 ownership (review)',
    timeoutMs: 180_000,
    async run(ctx) {
      const root = pathToFileURL(ctx.dir).href;
      const train = (seed: number) =>
        mnistInput({
          data: { train: { name: 'mnist', split: 'train', limit: 400 }, eval: { name: 'mnist', split: 'test', limit: 100 } },
          stepsPerEpoch: 5,
          maxEpochs: 2,
          seed,
          checkpoint: { uri: root, everySeconds: 0 },
        });
      const retrain = (input: Record<string, unknown>) =>
        ctx.stack.client.workflow.start('retrainModel', { taskQueue: ctx.worker.taskQueue, workflowId: uniqueId('champ'), args: [input] });
      await (await retrain({ modelName: 'digits', train: train(1), championRoot: root })).result();
      const pointer = path.join(ctx.dir, 'champions', 'digits', 'champion.json');
      const before = sha(pointer);

      const handle = await retrain({ modelName: 'digits', train: train(2), championRoot: root, metric: 'val_loss', mode: 'max' });
      const err = await handle.result().then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof WorkflowFailedError, `expected the retrain to fail, it ended ${String(err ?? 'COMPLETED')}`);
      let cause: unknown = err.cause;
      while (cause instanceof TemporalFailure && !(cause instanceof ApplicationFailure) && cause.cause) cause = cause.cause;
      assert.ok(cause instanceof ApplicationFailure, String(cause));
      assert.equal(cause.type, 'ChampionMismatch', cause.message);
      assert.equal(cause.nonRetryable, true);
      assert.match(cause.message, /chosen on `val_loss` \(mode min\); this retrain asks for `val_loss` \(mode max\)/);
      const events = await historyEventTypes(handle);
      assert.ok(!events.includes('EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED'), 'no training started');
      return { outcome: `FAILED ${cause.type}: ${cause.message}`, victimUnchanged: sha(pointer) === before };
    },
  },
];
