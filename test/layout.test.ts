import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_STEP,
  checkpointKey,
  checkpointUri,
  decisionKey,
  epochRecordKey,
  exportedModelUri,
  joinUri,
  modelFolderOf,
  parseCheckpointUri,
  stepOfManifestKey,
} from '../src/checkpoints/layout';

test('step keys are 12 digits and round-trip through manifest keys and URIs', () => {
  assert.equal(checkpointKey(120), 'checkpoints/000000000120');
  assert.equal(stepOfManifestKey('checkpoints/000000000120/manifest.json'), 120);
  assert.equal(stepOfManifestKey('checkpoints/000000000120/state.json'), undefined);
  assert.equal(stepOfManifestKey('checkpoints/0000000001200/manifest.json'), undefined);
  assert.equal(checkpointUri('gs://b/p/run-1/', 7), 'gs://b/p/run-1/checkpoints/000000000007');
  assert.deepEqual(parseCheckpointUri('gs://b/p/run-1/checkpoints/000000000007'), { runUri: 'gs://b/p/run-1', step: 7 });
  assert.equal(parseCheckpointUri('gs://b/p/run-1/model'), undefined);
  assert.equal(checkpointKey(MAX_STEP).length, 'checkpoints/'.length + 12);
});

test('a step or an epoch outside what a key can hold is refused, not truncated', () => {
  for (const bad of [-1, 1.5, MAX_STEP + 1, Number.NaN]) {
    assert.throws(() => checkpointKey(bad), /checkpoint step/);
  }
  assert.throws(() => epochRecordKey(1e8), /epoch/);
  assert.throws(() => decisionKey('m', 1e6), /decision number/);
});

test('URIs join with single slashes and model folders strip model.json', () => {
  assert.equal(joinUri('file:///a/', '/b/', 'c'), 'file:///a/b/c');
  assert.equal(exportedModelUri('file:///r/run'), 'file:///r/run/model/model.json');
  assert.equal(modelFolderOf('file:///r/run/model/model.json'), 'file:///r/run/model');
  assert.equal(modelFolderOf('file:///r/run/model/'), 'file:///r/run/model');
  assert.equal(epochRecordKey(3), 'metrics/epoch-00000003.json');
  assert.equal(decisionKey('m', 2), 'champions/m/decisions/000002.json');
});
