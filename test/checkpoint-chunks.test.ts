/**
 * A checkpoint's tensors written as chunks (issue #22 point 2): the eager route's snapshot hands the
 * store one host copy per weight tensor instead of one concatenated buffer, and the store writes
 * them with writev, hashed as they go. What must not change is the bytes: weights.bin is still
 * exactly what tfjs's own `model.save` writes, and the manifest's SHA-256 is the concatenation's.
 * In-process tfjs (`cpu` backend) and a file:// store in a temporary folder.
 *
 *   node --import tsx --test test/checkpoint-chunks.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { sha256, sha256Of } from '../src/checkpoints/digest';
import { readCheckpoint, writeCheckpoint } from '../src/checkpoints/format';
import { acquireLease } from '../src/checkpoints/lease';
import { checkpointObjectKey, MANIFEST, WEIGHTS_BIN } from '../src/checkpoints/layout';
import { openStore } from '../src/checkpoints/open-store';
import { deserializeModel, serializeModel } from '../src/training/eager/serialization';

/** What serializeModel wrote before chunks: tfjs's own save artifacts, weights concatenated by tfjs. */
async function savedByTfjs(model: tf.LayersModel): Promise<{ modelJson: Buffer; weights: Buffer }> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } })));
  const json = {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: 'durable-train',
    modelTopology: artifacts!.modelTopology,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts!.weightSpecs }],
  };
  return { modelJson: Buffer.from(JSON.stringify(json)), weights: Buffer.from(artifacts!.weightData as ArrayBuffer) };
}

function model(): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 3, kernelSize: 3, activation: 'relu' }));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 5, activation: 'softmax' }));
  return m;
}

describe('checkpoint objects as chunks', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-chunks-'));
  before(async () => {
    await tf.setBackend('cpu');
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  test('serializeModel gives the bytes model.save gives, weights.bin as one chunk per weight tensor', async () => {
    const m = model();
    const ours = await serializeModel(m);
    const theirs = await savedByTfjs(m);
    assert.equal(ours.weights.length, m.weights.length, 'one chunk per weight (batch normalization\'s moving statistics included)');
    assert.deepEqual(Buffer.concat(ours.weights), theirs.weights);
    assert.equal(ours.modelJson.toString(), theirs.modelJson.toString());
    const back = await deserializeModel(ours.modelJson, Buffer.concat(ours.weights));
    const x = tf.randomNormal([2, 8, 8, 1], 0, 1, 'float32', 7);
    assert.deepEqual(await (back.predict(x) as tf.Tensor).data(), await (m.predict(x) as tf.Tensor).data());
  });

  test('sha256Of chunks (sliced, across turns of the event loop) is the SHA-256 of their concatenation', async () => {
    const big = Buffer.alloc(9 << 20, 3);
    big.writeUInt32LE(0xdeadbeef, 5 << 20);
    const chunks = [Buffer.from('head'), Buffer.alloc(0), big, Buffer.from([1, 2, 3])];
    assert.equal(await sha256Of(chunks), sha256(Buffer.concat(chunks)));
    assert.equal(await sha256Of(big), sha256(big));
    assert.equal(await sha256Of(Buffer.from('small')), sha256('small'));
  });

  test('a checkpoint written from chunks verifies, and its manifest names the concatenation', async () => {
    const m = model();
    const { modelJson, weights } = await serializeModel(m);
    const store = openStore(pathToFileURL(path.join(root, 'run')).href);
    const lease = await acquireLease(store, { workflowId: 'wf', workflowRunId: 'r', activityId: '1', attempt: 1 });
    const objects = new Map<string, Buffer | Buffer[]>([['model.json', modelJson], [WEIGHTS_BIN, weights], ['state.json', Buffer.from('{"step":3}')]]);
    const written = await writeCheckpoint(store, 3, objects, { lease });
    assert.equal(written.written, true);
    const read = await readCheckpoint(store, 3);
    assert.ok(read.ok, read.ok ? '' : read.reason);
    assert.deepEqual(read.checkpoint.objects.get(WEIGHTS_BIN), Buffer.concat(weights));
    assert.equal(read.checkpoint.manifest.objects[WEIGHTS_BIN]!.sha256, sha256(Buffer.concat(weights)));
    // Written again (a retried attempt of the same step): committed already, and memory matches it.
    const again = await writeCheckpoint(store, 3, objects, { lease });
    assert.deepEqual([again.written, again.matches, again.manifestSha256], [false, true, written.manifestSha256]);
    // No temporary file left beside the objects.
    const dir = path.dirname(path.join(root, 'run', checkpointObjectKey(3, MANIFEST)));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.dt-')), []);
  });
});
