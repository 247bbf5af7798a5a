/**
 * Keras in and out: a graph-route run trains the committed trainable SavedModel (exported from
 * tools.example_models:cnn), then tools/keras_from_run.py writes its trained weights into that Keras
 * model and saves a `.keras` file and a servable SavedModel. Python (TensorFlow from PyPI,
 * scripts/setup-bench-python.sh) loads both and predicts the eval set: the accuracy equals the
 * run's val_accuracy and the mean cross-entropy its val_loss.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { builtInDatasets } from '../src/training/dataset-registry';
import type { TrainModelResult } from '../src/workflows';
import { ROOT, tempDir, uniqueId, useStackAndWorker } from './helpers/temporal';

const CNN_KWARGS = '{"input_dim": 784, "image": [28, 28, 1], "filters": [8, 16], "dense": 64, "classes": 10}';
const EVAL = { name: 'mnist', split: 'test', limit: 300 } as const;

const CHECK = `
import json, sys, numpy as np, keras, tensorflow as tf
d, n = sys.argv[1], int(sys.argv[2])
x = np.fromfile(d + "/x.f32", dtype="<f4").reshape(n, 784)
y = np.fromfile(d + "/y.f32", dtype="<f4").reshape(n, 10)
def score(p):
    p = np.asarray(p, dtype=np.float64)
    acc = float(np.mean(np.argmax(p, -1) == np.argmax(y, -1)))
    loss = float(np.mean(keras.losses.categorical_crossentropy(y, p.astype(np.float32))))
    return {"accuracy": acc, "loss": loss}
m = keras.saving.load_model(d + "/trained.keras")
served = tf.saved_model.load(d + "/serving")
fn = served.signatures["serving_default"]
out = list(fn(tf.constant(x)).values())[0].numpy()
print(json.dumps({"keras": score(m.predict(x, verbose=0)), "savedmodel": score(out), "signatures": list(served.signatures.keys())}))
`;

function python(): string {
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/setup-bench-python.sh')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `scripts/setup-bench-python.sh: ${r.stderr}`);
  return r.stdout.trim();
}

const sw = useStackAndWorker();

test('a graph-route run goes back to Keras: .keras and serving SavedModel predict as the trainer evaluated', { timeout: 600_000 }, async () => {
  const py = python();
  const dir = tempDir('dt-keras-');
  const result = (await sw.stack.client.workflow.execute('trainModel', {
    taskQueue: sw.worker.taskQueue,
    workflowId: uniqueId('keras-out'),
    args: [
      {
        model: { kind: 'savedmodel', uri: pathToFileURL(path.join(ROOT, 'test/fixtures/savedmodel/mnist-cnn')).href },
        data: { train: { name: 'mnist', split: 'train', limit: 1024 }, eval: EVAL },
        hyperparameters: { learningRate: 0.002, batchSize: 32 },
        stepsPerEpoch: 12,
        maxEpochs: 2,
        seed: 4,
        checkpoint: { uri: pathToFileURL(path.join(dir, 'runs')).href },
      },
    ],
  })) as TrainModelResult;
  assert.equal(result.status, 'completed');
  const final = result.history.at(-1)!.metrics;

  const data = await builtInDatasets().load(EVAL);
  fs.writeFileSync(path.join(dir, 'x.f32'), Buffer.from(data.x.buffer, data.x.byteOffset, data.size * 784 * 4));
  fs.writeFileSync(path.join(dir, 'y.f32'), Buffer.from(data.y.buffer, data.y.byteOffset, data.size * 10 * 4));

  const env = { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', KERAS_BACKEND: 'tensorflow' };
  const runDir = path.join(dir, 'runs', result.runId);
  const made = spawnSync(py, ['tools/keras_from_run.py', '--model', 'tools.example_models:cnn', '--factory-kwargs', CNN_KWARGS, '--run', runDir,
    '--out-keras', path.join(dir, 'trained.keras'), '--out-savedmodel', path.join(dir, 'serving')], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(made.status, 0, `keras_from_run.py: ${made.stdout}\n${made.stderr}`);
  assert.match(made.stdout, /wrote .*trained\.keras/);
  assert.match(made.stdout, /serving_default/);

  const checked = spawnSync(py, ['-c', CHECK, dir, String(data.size)], { cwd: ROOT, env, encoding: 'utf8' });
  assert.equal(checked.status, 0, `the Python check: ${checked.stderr}`);
  const scores = JSON.parse(checked.stdout.trim().split('\n').at(-1)!) as Record<'keras' | 'savedmodel', { accuracy: number; loss: number }> & { signatures: string[] };
  assert.ok(scores.signatures.includes('serving_default'), scores.signatures.join(','));
  for (const how of ['keras', 'savedmodel'] as const) {
    assert.equal(scores[how].accuracy, final.val_accuracy, `${how} accuracy ${scores[how].accuracy} vs the run's ${final.val_accuracy}`);
    assert.ok(Math.abs(scores[how].loss - final.val_loss!) < 1e-4, `${how} loss ${scores[how].loss} vs the run's ${final.val_loss}`);
  }
  // Trained, not initial weights: the wrong weights would not reproduce the run's metrics above, and the
  // run did learn (the check above would pass trivially only if nothing changed and nothing was learned).
  assert.ok(final.val_accuracy! > 0.3, `val_accuracy ${final.val_accuracy}`);
  console.log(`# [keras] run val_accuracy ${final.val_accuracy} val_loss ${final.val_loss}; python ${JSON.stringify(scores)}`);
});
