/** trainModel end to end on a real dev server, a real worker and real MNIST digits. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { progressQuery, type TrainModelResult } from '../src/workflows';
import { historyEventTypes, invalidConfigFailure, mnistInput, uniqueId, useStackAndWorker } from './helpers/temporal';

describe('trainModel', () => {
  const harness = useStackAndWorker();

  test('learns the MNIST digits: eval loss falls and accuracy is far above chance', async () => {
    const workflowId = uniqueId('learn');
    const handle = await harness.stack.client.workflow.start('trainModel', {
      taskQueue: harness.worker.taskQueue,
      workflowId,
      args: [mnistInput({ maxEpochs: 3 })],
    });
    const result = (await handle.result()) as TrainModelResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.epochs, 3);
    assert.equal(result.step, 120);
    assert.equal(result.history.length, 3);
    const losses = result.history.map((h) => h.metrics.val_loss!);
    assert.ok(losses[2]! < losses[0]!, `eval loss should fall: ${losses.join(' → ')}`);
    const accuracy = result.history[2]!.metrics.val_accuracy!;
    assert.ok(accuracy > 0.7, `accuracy ${accuracy} should be far above chance (0.1)`);
    assert.match(result.backend, /^(tensorflow|wasm|cpu)/);

    // What the run left beside its checkpoints.
    const modelJson = JSON.parse(fs.readFileSync(fileURLToPath(result.modelUri), 'utf8'));
    assert.equal(modelJson.format, 'layers-model');
    const lines = fs.readFileSync(fileURLToPath(result.metricsUri), 'utf8').trim().split('\n');
    assert.deepEqual(lines.map((l) => JSON.parse(l).epoch), [1, 2, 3]);
    assert.match(fs.readFileSync(fileURLToPath(result.plotUri!), 'utf8'), /<svg[\s\S]*val_loss/);

    const progress = await handle.query(progressQuery);
    assert.equal(progress.status, 'completed');
    assert.equal(progress.epoch, 3);
    assert.equal(progress.best?.metric, 'val_loss');
  });

  const badInputs: Array<[string, Record<string, unknown>, RegExp]> = [
    ['missing model', mnistInput({ model: undefined }), /`model` to be an object, got nothing/],
    ['negative steps', mnistInput({ stepsPerEpoch: -5 }), /`stepsPerEpoch` to be a whole number from 1 to 100000000, got `-5` \(number\)/],
    ['unknown dataset', mnistInput({ data: { train: { name: 'imagenet' }, eval: { name: 'mnist' } } }), /`data\.train\.name` to be one of the worker's datasets \(csv, jsonl, mnist, sharded, synthetic\), got `"imagenet"`/],
    ['unknown model', mnistInput({ model: { name: 'resnet9000' } }), /`model\.name` to be one of the worker's models \(cnn, mlp\)/],
  ];
  for (const [name, input, message] of badInputs) {
    test(`rejects bad input before any activity is scheduled: ${name}`, async () => {
      const handle = await harness.stack.client.workflow.start('trainModel', {
        taskQueue: harness.worker.taskQueue,
        workflowId: uniqueId('bad'),
        args: [input],
      });
      assert.match((await invalidConfigFailure(handle)).message, message);
      const events = await historyEventTypes(handle);
      assert.ok(!events.some((e) => /ACTIVITY_TASK_SCHEDULED/.test(e)), `no activity may be scheduled: ${events.join(', ')}`);
    });
  }
});
