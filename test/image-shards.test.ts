/**
 * Image shards, pure (no trainer, no server): WebDataset tar shards written by our generator and by
 * GNU tar (committed fixtures), image folders, the `image` params check, and the bad inputs that must fail naming the
 * shard and the field. Decoding is the real sharp/libvips on real PNG and JPEG bytes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { encodeDigit, mnistDigits, tarOf, writeImageFolder, writeImageTarShards } from '../scripts/make-image-shards';
import type { ImageParams } from '../src/config/image-params';
import { checkShardedParams, type ShardedParams } from '../src/config/sharded-data';
import { Checker } from '../src/config/validate';
import { keyAndExtension, tarSamples } from '../src/data/formats/tar';
import { decodeShardBytes } from '../src/data/records';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-image-shards-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const image: ImageParams = { height: 28, width: 28, channels: 1, resize: 'stretch', scale: { range: [0, 1] } };
const params = (extra: Partial<ShardedParams> = {}): ShardedParams => ({
  uri: 'file:///x/shard-*.tar',
  manifest: false,
  format: 'tar',
  label: 'cls',
  features: [],
  task: 'classification',
  classes: CLASSES,
  shuffleWindow: 64,
  image,
  ...extra,
});
const decode = async (bytes: Buffer, uri: string, p: ShardedParams = params()) => (await decodeShardBytes(bytes, uri, p)).shard!;

function failure(fn: () => Promise<unknown>): Promise<string> {
  return fn().then(
    () => assert.fail('expected a failure'),
    (err: Error) => {
      assert.equal(err.name, 'NonRetryableTrainingError', err.message);
      return err.message;
    },
  );
}

test('a PNG tar shard decodes to the digits: pixels p/255 exactly, one-hot classes, member order', async () => {
  const [name] = await writeImageTarShards(dir, { count: 30, perShard: 30 });
  const uri = pathToFileURL(path.join(dir, name!)).href;
  const d = await decode(fs.readFileSync(path.join(dir, name!)), uri);
  const digits = mnistDigits(30);
  assert.equal(d.records, 30);
  assert.equal(d.x.length, 30 * 784);
  for (let n = 0; n < 30; n++) {
    const want = Float32Array.from(digits[n]!.pixels, (p) => p / 255);
    assert.deepEqual(d.x.subarray(n * 784, (n + 1) * 784), want, `digit ${n}`);
    assert.deepEqual([...d.y.subarray(n * 10, (n + 1) * 10)], CLASSES.map((_, k) => (k === digits[n]!.label ? 1 : 0)));
  }
});

test('shards written by GNU tar (gnu and pax formats, gzip; a folder, `./` prefixes, an extra member) decode as ours do', async () => {
  // test/fixtures/image-shards/ is written by scripts/make-image-fixtures.ts (GNU tar 1.34).
  const digits = mnistDigits(6);
  const ours = await decode(await tarFor(digits), 'file:///ours.tar');
  for (const file of ['gnu.tar', 'pax.tar', 'gnu.tar.gz']) {
    const at = path.join(__dirname, 'fixtures/image-shards', file);
    const d = await decode(fs.readFileSync(at), pathToFileURL(at).href);
    assert.equal(d.records, 6, file);
    assert.deepEqual(d.x, ours.x, file);
    assert.deepEqual(d.y, ours.y, file);
  }
});

async function tarFor(digits: ReturnType<typeof mnistDigits>): Promise<Buffer> {
  const members: Array<readonly [string, Buffer]> = [];
  for (const [n, d] of digits.entries()) members.push([`${n}.png`, await encodeDigit(d)], [`${n}.cls`, Buffer.from(String(d.label))]);
  return tarOf(members);
}

test('WebDataset keys: the path up to the first dot of the base name', () => {
  assert.deepEqual(keyAndExtension('train/00042.seg.PNG'), { key: 'train/00042', extension: 'seg.png' });
  assert.deepEqual(keyAndExtension('./a.b/c.cls'), { key: 'a.b/c', extension: 'cls' });
  assert.equal(keyAndExtension('README'), undefined);
});

test('an image folder: each file one record, its class the folder; JPEG, RGB, resize and mean/std', async () => {
  const root = path.join(dir, 'folder');
  const files = await writeImageFolder(root, { count: 3, size: 40, channels: 3, encoding: 'jpg' });
  const rgb: ImageParams = { height: 20, width: 30, channels: 3, resize: 'crop', scale: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } };
  for (const [n, file] of files.entries()) {
    const uri = pathToFileURL(path.join(root, file)).href;
    const d = await decode(fs.readFileSync(path.join(root, file)), uri, params({ format: 'imagefolder', label: '', image: rgb }));
    assert.equal(d.records, 1);
    assert.equal(d.x.length, 20 * 30 * 3);
    assert.equal(d.y[mnistDigits(3)[n]!.label], 1);
    const min = d.x.reduce((a, b) => Math.min(a, b));
    const max = d.x.reduce((a, b) => Math.max(a, b));
    assert.ok(min >= -2 && min < -1.5 && max > 1 && max <= 2, `(p/255 - 0.5)/0.25 spans [-2, 2]: ${min}..${max}`);
    // grey repeated into RGB: the three channels of every pixel are equal
    for (let k = 0; k < d.x.length; k += 3) assert.ok(d.x[k] === d.x[k + 1] && d.x[k] === d.x[k + 2], `pixel ${k / 3}`);
  }
  const padded = await decode(fs.readFileSync(path.join(root, files[0]!)), pathToFileURL(path.join(root, files[0]!)).href, params({ format: 'imagefolder', label: '', image: { ...image, height: 10, width: 20, resize: 'pad' } }));
  assert.equal(padded.x.length, 200);
  assert.ok(padded.x.subarray(0, 5).every((v) => v === 0) && padded.x.subarray(15, 20).every((v) => v === 0), 'pad: black borders left and right');
});

test('bad shards fail non-retryably naming the shard and what is wrong', async () => {
  const digits = mnistDigits(2);
  const png = await encodeDigit(digits[0]!);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['an image that does not decode', await tarOf([['a.png', Buffer.from('not a png at all')], ['a.cls', Buffer.from('1')]]), /the image of sample `a` of shard file:\/\/\/bad\.tar.*JPEG or PNG image that decodes/],
    ['a truncated PNG', await tarOf([['a.png', png.subarray(0, png.length / 2)], ['a.cls', Buffer.from('1')]]), /the image of sample `a`.*decodes/],
    ['a label outside classes', await tarOf([['a.png', png], ['a.cls', Buffer.from('7')]]), /class of sample `a` of shard file:\/\/\/bad\.tar.*`params\.classes` \(0, 1, 2\), got "7"/],
    ['an image without its class', await tarOf([['a.png', png], ['a.txt', Buffer.from('x')]]), /sample `a` of shard file:\/\/\/bad\.tar.*`\.cls` member \(`params\.label`\), got no such member/],
    ['a class without its image', await tarOf([['a.cls', Buffer.from('1')]]), /sample `a`.*one image member.*got none/],
    ['two images in one sample', await tarOf([['a.png', png], ['a.jpg', png], ['a.cls', Buffer.from('1')]]), /sample `a`.*one image member.*got 2/],
    ['a member twice', await tarOf([['a.png', png], ['a.png', png], ['a.cls', Buffer.from('1')]]), /member `a\.png`.*second one/],
    ['not a tar', Buffer.from('{"pixels": [1, 2, 3], "y": 1}\n'.repeat(40)), /shard file:\/\/\/bad\.tar of `params\.uri` \(`params\.format` tar\) to be a tar archive/],
  ];
  const classes = params({ classes: ['0', '1', '2'] });
  for (const [name, bytes, re] of cases) assert.match(await failure(() => decode(bytes, 'file:///bad.tar', classes)), re, name);
  assert.match(await failure(() => decode(Buffer.from('x'), 'file:///bad.tar.gz')), /gzip/);
  assert.match(
    await failure(() => decode(png, 'file:///root/7/a.png', params({ format: 'imagefolder', label: '', classes: ['0', '1'] }))),
    /class of image file:\/\/\/root\/7\/a\.png \(its folder\).*got "7"/,
  );
});

test('`image` params are checked with the other sharded params, naming the field', () => {
  const check = (p: Record<string, unknown>) => {
    const c = new Checker();
    const out = checkShardedParams(c, 'data.train', undefined, p);
    return { out, fields: c.issues.map((i) => i.field) };
  };
  const good = { uri: 'gs://b/shard-*.tar', format: 'tar', classes: [0, 1], image: { height: 28, width: 28, channels: 1 } };
  assert.deepEqual(check(good).fields, []);
  assert.deepEqual(check(good).out?.image, { height: 28, width: 28, channels: 1, resize: 'stretch', scale: { range: [0, 1] } });
  assert.equal(check(good).out?.label, 'cls');
  assert.deepEqual(check({ ...good, format: 'imagefolder', uri: 'file:///data/digits' }).fields, []);
  const bad: Array<[Record<string, unknown>, string[]]> = [
    [{ ...good, image: undefined }, ['data.train.params.image']],
    [{ ...good, image: { ...good.image, height: 0 } }, ['data.train.params.image.height']],
    [{ ...good, image: { ...good.image, width: 5000 } }, ['data.train.params.image.width']],
    [{ ...good, image: { ...good.image, channels: 2 } }, ['data.train.params.image.channels']],
    [{ ...good, image: { ...good.image, resize: 'squash' } }, ['data.train.params.image.resize']],
    [{ ...good, image: { ...good.image, scale: { range: [1, 0] } } }, ['data.train.params.image.scale.range']],
    [{ ...good, image: { ...good.image, scale: { mean: [0.5, 0.5], std: [1, 1] } } }, ['data.train.params.image.scale.mean', 'data.train.params.image.scale.std']],
    [{ ...good, image: { ...good.image, scale: { mean: [0.5], std: [0] } } }, ['data.train.params.image.scale.std']],
    [{ ...good, image: { ...good.image, scale: [0, 1] } }, ['data.train.params.image.scale']],
    [{ ...good, image: { ...good.image, depth: 8 } }, ['data.train.params.image.depth']],
    [{ ...good, features: ['pixels'] }, ['data.train.params.features']],
    [{ ...good, label: 'cls/../x' }, ['data.train.params.label']],
    [{ ...good, format: 'imagefolder', label: 'cls' }, ['data.train.params.label']],
    [{ ...good, task: 'regression', classes: undefined }, ['data.train.params.task']],
    [{ ...good, classes: undefined }, ['data.train.params.classes']],
    [{ uri: 'gs://b/x-*.jsonl', format: 'jsonl', label: 'y', features: ['p'], classes: [0], image: good.image }, ['data.train.params.image']],
  ];
  for (const [p, fields] of bad) assert.deepEqual(check(p).fields, fields, JSON.stringify(p));
});

test('tar parsing keeps samples in member order', async () => {
  const tar = await tarOf([['b.cls', Buffer.from('1')], ['b.png', Buffer.from('x')], ['a.png', Buffer.from('y')], ['a.cls', Buffer.from('0')]]);
  const samples = await tarSamples(tar, 'file:///t.tar');
  assert.deepEqual(samples.map((s) => [s.key, [...s.members.keys()]]), [['b', ['cls', 'png']], ['a', ['png', 'cls']]]);
});

test('an image folder lists its class folders’ images in name order, within the bound and the allow-list', async () => {
  const { listShards } = await import('../src/data/source');
  const root = path.join(dir, 'listed');
  await writeImageFolder(root, { count: 12 });
  fs.writeFileSync(path.join(root, 'README.txt'), 'skipped');
  fs.writeFileSync(path.join(root, '3', 'notes.txt'), 'skipped');
  fs.mkdirSync(path.join(root, '3', 'deeper'));
  fs.writeFileSync(path.join(root, '3', 'deeper', 'x.png'), 'skipped: one level of class folders');
  const allowAll = () => undefined;
  const list = (uri: string, maxShards?: number) => listShards({ uri, manifest: false, format: 'imagefolder' }, { assertAllowed: allowAll, ...(maxShards !== undefined && { maxShards }) });
  const shards = await list(pathToFileURL(root).href);
  assert.deepEqual(
    shards.map((s) => path.relative(root, new URL(s.uri).pathname)),
    ['0/000000.png', '0/000010.png', '1/000001.png', '1/000011.png', ...[2, 3, 4, 5, 6, 7, 8, 9].map((c) => `${c}/00000${c}.png`)],
  );
  assert.ok(shards.every((s) => s.size === fs.statSync(new URL(s.uri)).size));
  assert.match(await failure(() => list(pathToFileURL(root).href, 11)), /at most 11 images.*tar shards/);
  assert.match(await failure(() => list(`${pathToFileURL(root).href}/*`)), /root folder \(no wildcards/);
  assert.match(await failure(() => list(pathToFileURL(path.join(root, 'nothing')).href)), /existing folder.*ENOENT/);
  const refused = listShards({ uri: pathToFileURL(root).href, manifest: false, format: 'imagefolder' }, { assertAllowed: (f, u) => { if (u.endsWith('.png')) throw new Error(`${f} refused ${u}`); } });
  await assert.rejects(refused, /params\.uri refused file:.*\.png/);
});
