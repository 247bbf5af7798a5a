/**
 * Hostile image shards (pure, in process; real sharp and tar-stream): a small tar shard of tiny PNGs
 * that claims a huge decoded size through `params.image`, and image-folder class folders whose names
 * are not valid percent-encoding on gs:// (object names are listed raw).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { tarOf } from '../scripts/make-image-shards';
import type { ImageParams } from '../src/config/image-params';
import type { ShardedParams } from '../src/config/sharded-data';
import { decodeShardBytes, MAX_SHARD_TEXT_BYTES } from '../src/data/records';

const params = (extra: Partial<ShardedParams>): ShardedParams => ({
  uri: 'gs://b/x/shard-*.tar',
  manifest: false,
  format: 'tar',
  label: 'cls',
  features: [],
  task: 'classification',
  classes: ['0', '1'],
  shuffleWindow: 64,
  image: { height: 28, width: 28, channels: 1, resize: 'stretch', scale: { range: [0, 1] } },
  ...extra,
});

const tinyPng = (): Promise<Buffer> => sharp(Buffer.from([7]), { raw: { width: 1, height: 1, channels: 1 } }).png().toBuffer();

test('a tar shard of 400 one-pixel PNGs at image 2048×2048×3 (20 GB decoded) fails non-retryably before allocating, naming the shard', async () => {
  const png = await tinyPng();
  const members: Array<readonly [string, Buffer]> = [];
  for (let n = 0; n < 400; n++) members.push([`${n}.png`, png], [`${n}.cls`, Buffer.from('1')]);
  const bytes = await tarOf(members);
  console.log(`shard: ${bytes.length} bytes`);
  const big: ImageParams = { height: 2048, width: 2048, channels: 3, resize: 'stretch', scale: { range: [0, 1] } };
  const started = Date.now();
  await assert.rejects(decodeShardBytes(bytes, 'gs://b/x/shard-0.tar', params({ image: big })), (err: Error) => {
    assert.equal(err.name, 'NonRetryableTrainingError', `${err.name}: ${err.message}`);
    assert.match(err.message, /gs:\/\/b\/x\/shard-0\.tar/);
    assert.match(err.message, new RegExp(`at most ${MAX_SHARD_TEXT_BYTES} bytes`));
    assert.match(err.message, /params\.image/);
    return true;
  });
  assert.ok(Date.now() - started < 10_000, 'within 10 s');
  // the same shard at 28×28×1 decodes (the bound is on the decoded size, not on the count)
  const ok = (await decodeShardBytes(bytes, 'gs://b/x/shard-0.tar', params({}))).shard!;
  assert.equal(ok.records, 400);
});

test('image folder on gs://: a class folder is the raw object-name segment (`%zz` is no URIError, `%33` is not class 3)', async () => {
  const png = await tinyPng();
  const p = params({ format: 'imagefolder', label: '', uri: 'gs://b/imgs/*/*.png', classes: ['3', '%33', '%zz'] });
  const bad = (await decodeShardBytes(png, 'gs://b/imgs/%zz/a.png', p)).shard!;
  assert.deepEqual([...bad.y], [0, 0, 1]);
  const raw = (await decodeShardBytes(png, 'gs://b/imgs/%33/a.png', p)).shard!;
  assert.deepEqual([...raw.y], [0, 1, 0]);
  // file:// URIs are percent-encoded by pathToFileURL: their folders are decoded
  const file = (await decodeShardBytes(png, 'file:///tmp/imgs/%2533/a.png', p)).shard!;
  assert.deepEqual([...file.y], [0, 1, 0]);
});
