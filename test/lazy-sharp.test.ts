/**
 * sharp (native libvips) is loaded by the first image decoded, not by every process that imports
 * the record formats (the trainer, the decode workers and tools reading tabular shards).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../src/data/records';
import { decodePixels } from '../src/data/formats/images';

const sharpLoaded = (): boolean => Object.keys(require.cache).some((file) => /[\\/]node_modules[\\/]sharp[\\/]/.test(file));

test('importing the record formats does not load sharp; decoding an image does', async () => {
  assert.equal(sharpLoaded(), false, 'sharp is loaded by importing src/data/records.ts');
  const image = { height: 2, width: 2, channels: 1, resize: 'stretch', scale: { range: [0, 1] } } as const;
  await assert.rejects(decodePixels(Buffer.from('not an image'), image, 'sample x'), /Expected sample x to be a JPEG or PNG image that decodes/);
  assert.equal(sharpLoaded(), true);
});
