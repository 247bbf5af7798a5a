/**
 * The trust boundary's pure parts and its worker-side checker on the real file system: URI
 * normal form, the allow-list with symlinks resolved, the guarded store openers, excerpts of data
 * in messages, and the trainer's minimal environment.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { guardedOpenStore, openAllowedStore, openStore } from '../src/checkpoints/open-store';
import { trainerEnvironment } from '../src/training/trainer-client';
import { AllowList, UriRefusedError, workerAllowList } from '../src/trust/allow-list';
import { createTrustActivities } from '../src/trust/activities';
import { activityOpener } from '../src/activities/failures';
import { ConfigError, describe as describeValue } from '../src/config/validate';
import { describeData, excerpt, excerptList, jsonErrorPosition } from '../src/trust/excerpt';
import { isUnder, normaliseUri } from '../src/config/normal-uri';

const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'dt-trust-')));
const A = path.join(base, 'allowed');
const B = path.join(base, 'elsewhere');
fs.mkdirSync(A);
fs.mkdirSync(B);
fs.mkdirSync(`${A}-evil`);
fs.symlinkSync('/etc', path.join(A, 'link-to-etc'));
fs.symlinkSync(path.join(base, 'no-such-dir'), path.join(A, 'dangling'));
fs.symlinkSync('/proc/self/environ', path.join(A, 'environ.csv'));
fs.symlinkSync(B, path.join(A, 'link-to-b'));
fs.writeFileSync(path.join(A, 'data.csv'), 'a,b\n1,2\n');
const a = pathToFileURL(A).href;
const allow = AllowList.of([a, 'gs://bucket-ok/ok']);
after(() => fs.rmSync(base, { recursive: true, force: true }));

/** [uri, allowed?, what the refusal says]: the cases the report lists. */
const CASES: Array<[string, true | RegExp]> = [
  [`${a}/data.csv`, true],
  [a, true],
  [`${a}/`, true],
  [`${a}/not-yet/created/run-1`, true],
  [`${a}/a%20b`, true],
  ['gs://bucket-ok/ok/runs/x', true],
  ['gs://bucket-ok/ok', true],
  ['file:///proc/self/environ', /under one of the worker's allowed prefixes \(file:\/\/\/.*allowed, gs:\/\/bucket-ok\/ok;/],
  ['file:///../../etc', /a `\.\.` segment/],
  [`${a}/../elsewhere`, /a `\.\.` segment/],
  [`${a}/./data.csv`, /a `\.` segment/],
  [`${a}/r?x`, /a query/],
  [`${a}/r#`, /a fragment/],
  [`${a}/r#x`, /a fragment/],
  [`${a}/%2F..%2Fetc`, /an encoded path separator \(`%2F`\)/],
  [`${a}/x%5cy`, /an encoded path separator/],
  [`${a}/%2e%2e/etc`, /an encoded dot \(`%2e`\)/],
  [`${a}/%41`, /`A` percent-encoded/],
  [`${a}/%zz`, /does not start a two-digit hex escape/],
  [`${a}/%FF`, /not valid UTF-8/],
  [`${a}/%00`, /encoded control character/],
  [`${a}//x`, /an empty path segment/],
  [`file://localhost${A}`, /a host in a file URI/],
  [`file:${A}`, /a scheme other than/],
  [A, /a scheme other than/],
  ['s3://bucket/x', /a scheme other than/],
  [`${a}\\x`, /a backslash/],
  [`${a}/x\u0000`, /a control character/],
  [`${a}/x\n`, /a control character/],
  [`${a}/report\u202egpj.csv`, /an invisible or text-direction character \(U\+202E\)/],
  [`${a}/data\u200b.csv`, /an invisible or text-direction character \(U\+200B\)/],
  [`${a}/x\u2066y`, /an invisible or text-direction character \(U\+2066\)/],
  ['file:///', /under one of the worker's allowed prefixes/],
  [`${a}-evil/x`, /under one of the worker's allowed prefixes/],
  [`${a}/link-to-etc`, /which resolves to `file:\/\/\/etc`/],
  [`${a}/link-to-etc/passwd`, /which resolves to `file:\/\/\/etc\/passwd`/],
  [`${a}/environ.csv`, /which resolves to `file:\/\/\/proc\//],
  [`${a}/dangling/x`, /passes through a dangling symlink/],
  [`${a}/link-to-b/x`, /which resolves to `file:\/\/\/.*elsewhere\/x`/],
  ['gs://bucket-ok/okay', /under one of the worker's allowed prefixes/],
  ['gs://bucket-other/ok', /under one of the worker's allowed prefixes/],
  ['gs://bucket-ok/ok/%2F', /percent-encoding in a gs:\/\/ URI/],
  ['gs://bucket-ok/ok/../x', /a `\.\.` segment/],
  ['gs://ab/x', /invalid GCS bucket name `ab`/],
  ['gs://bucket-ok/ok?x', /a query/],
  ['x'.repeat(3000), /longer than 2048/],
];

describe('URI normal form and the allow-list', () => {
  for (const [uri, outcome] of CASES) {
    test(`${JSON.stringify(uri.length > 90 ? `${uri.slice(0, 40)}…` : uri.replace(base, '<tmp>'))} is ${outcome === true ? 'allowed' : 'refused'}`, () => {
      const r = allow.check(uri);
      if (outcome === true) {
        assert.equal(r.ok, true, r.ok ? '' : `${r.expected} / ${r.received}`);
        return;
      }
      assert.equal(r.ok, false, `${uri} should be refused`);
      if (!r.ok) assert.match(`Expected it to be ${r.expected}, got ${r.received}`, outcome);
    });
  }

  test('trailing slashes and decoding give one normal form', () => {
    const x = normaliseUri(`${a}/a%20b/`);
    assert.ok(x.ok);
    assert.equal(x.canonical, `file://${A}/a b`);
    const y = normaliseUri('gs://bucket-ok/ok/');
    assert.ok(y.ok && y.canonical === 'gs://bucket-ok/ok');
  });

  test('prefixes match whole segments', () => {
    const p = normaliseUri('file:///a/b');
    const under = normaliseUri('file:///a/b/c');
    const sibling = normaliseUri('file:///a/bc');
    assert.ok(p.ok && under.ok && sibling.ok);
    assert.equal(isUnder(under.uri, p.uri), true);
    assert.equal(isUnder(sibling.uri, p.uri), false);
  });

  test('an allowed prefix that is a symlink allows where it leads', () => {
    const viaLink = AllowList.of([`${a}/link-to-b`]);
    assert.equal(viaLink.check(`${pathToFileURL(B).href}/x`).ok, true);
    assert.equal(viaLink.check(`${a}/link-to-b/x`).ok, true);
    assert.equal(viaLink.check(`${a}/data.csv`).ok, false);
  });

  test('the whole file system and malformed prefixes are configuration errors', () => {
    assert.throws(() => AllowList.of(['file:///']), /the whole file system is never allowed/);
    assert.throws(() => AllowList.of([`${a}?x`]), /DT_ALLOWED_URIS.*a query/);
    assert.throws(() => AllowList.of(['/tmp']), /a scheme other than/);
  });

  test("the worker's list is its checkpoint root plus DT_ALLOWED_URIS; an empty list allows nothing", () => {
    const w = workerAllowList({ checkpointRoot: `${a}/runs`, env: { DT_ALLOWED_URIS: ` gs://bucket-ok/data , ${pathToFileURL(B).href},` } });
    assert.deepEqual(w.prefixes, [`${a}/runs`, 'gs://bucket-ok/data', pathToFileURL(B).href]);
    const plain = workerAllowList({ checkpointRoot: path.join(A, 'runs'), env: {} });
    assert.deepEqual(plain.prefixes, [`${a}/runs`]);
    assert.equal(plain.check(`${a}/data.csv`).ok, false);
    assert.equal(AllowList.fromEnv({}).check(`${a}/data.csv`).ok, false);
  });
});

describe('guarded store openers', () => {
  test('a refused URI never reaches the store: UriRefusedError naming the URI and the prefixes', () => {
    let opened = 0;
    const open = guardedOpenStore(allow, (uri) => {
      opened++;
      return openStore(uri);
    });
    assert.throws(() => open('file:///../../etc'), (err: unknown) => err instanceof UriRefusedError && /`\.\.` segment/.test(err.message) && /file:\/\/\/\.\.\/\.\.\/etc/.test(err.message));
    assert.throws(() => open('file:///etc'), (err: unknown) => err instanceof UriRefusedError && err.message.includes(a) && err.message.includes('gs://bucket-ok/ok'));
    assert.equal(opened, 0);
    assert.equal(open(`${a}/runs/r1`).uri, `${a}/runs/r1`);
    assert.equal(opened, 1);
  });

  test('openAllowedStore follows DT_ALLOWED_URIS of the process', () => {
    const saved = process.env.DT_ALLOWED_URIS;
    try {
      process.env.DT_ALLOWED_URIS = a;
      assert.ok(openAllowedStore(`${a}/r`));
      assert.throws(() => openAllowedStore('file:///etc'), UriRefusedError);
      delete process.env.DT_ALLOWED_URIS;
      assert.throws(() => openAllowedStore(`${a}/r`), /allowed prefixes \(none;/);
    } finally {
      if (saved === undefined) delete process.env.DT_ALLOWED_URIS;
      else process.env.DT_ALLOWED_URIS = saved;
    }
  });

  test("activities' opener fails non-retryably, type UriRefused", () => {
    const open = activityOpener(guardedOpenStore(allow, (uri) => openStore(uri)));
    assert.throws(
      () => open('file:///proc/self'),
      (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable === true && err.type === 'UriRefused',
    );
  });

  test('checkUris reports one issue per refused URI, by field', async () => {
    const { checkUris } = createTrustActivities({ allow });
    const { issues } = await checkUris({
      uris: [
        { field: 'checkpoint.uri', uri: `${a}/runs/r` },
        { field: 'data.train.params.uri', uri: 'file:///proc/self/environ' },
        { field: 'warmStartFrom', uri: `${a}/r?x` },
      ],
    });
    assert.deepEqual(issues.map((i) => i.field), ['data.train.params.uri', 'warmStartFrom']);
    assert.match(issues[0]!.received, /file:\/\/\/proc\/self\/environ/);
  });

  test("checkUris checks MLflow servers against the worker's tracking servers, not its store prefixes", async () => {
    const { checkUris } = createTrustActivities({ allow, tracking: { mlflowTrackingUri: 'http://mlflow:5000', allowedTrackingUris: ['https://ml.example.com/team-a'] } });
    const uris = ['http://mlflow:5000', 'https://ml.example.com/team-a/x', 'https://ml.example.com/team-ab', 'http://169.254.169.254/latest', `${a}/data.csv`];
    const { issues } = await checkUris({ uris: uris.map((uri, i) => ({ field: `u${i}`, uri, kind: 'tracking' as const })) });
    assert.deepEqual(issues.map((i) => i.field), ['u2', 'u3', 'u4']);
    assert.match(issues[1]!.expected, /the worker's MLflow server or under DT_ALLOWED_TRACKING_URIS \(http:\/\/mlflow:5000, https:\/\/ml\.example\.com\/team-a\)/);
    // An operator's server URL may carry credentials: a refusal shows scheme, host and path only.
    const secret = await createTrustActivities({ allow, tracking: { mlflowTrackingUri: 'https://admin:s3cr3t@mlflow.corp:5000/x?token=abc123#f' } }).checkUris({
      uris: [{ field: 'tracking.mlflow.uri', uri: 'https://attacker.example/', kind: 'tracking' }],
    });
    assert.match(secret.issues[0]!.expected, /\(https:\/\/mlflow\.corp:5000\/x\)/);
    assert.doesNotMatch(JSON.stringify(secret.issues), /s3cr3t|admin|abc123/);
    const none = await createTrustActivities({ allow }).checkUris({ uris: [{ field: 'tracking.mlflow.uri', uri: 'http://mlflow:5000', kind: 'tracking' }] });
    assert.match(none.issues[0]!.expected, /none configured/);
  });
});

describe('excerpts of data in messages', () => {
  test('bounded, escaped, and lists cut short', () => {
    const secret = 's'.repeat(100);
    assert.equal(excerpt(secret), `${'s'.repeat(16)}…`);
    assert.equal(excerpt('a"b\n`c'), 'a\\"b\\n\\`c');
    assert.equal(excerptList(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']), 'a, b, c, d, e, f and 2 more');
    assert.equal(describeData(secret), `"${'s'.repeat(16)}…"`);
    assert.equal(describeData({ [secret]: 1 }), 'an object with 1 keys');
    assert.ok(excerptList(Array.from({ length: 1000 }, () => secret)).length < 200);
  });

  test('text-direction and invisible characters are shown escaped, in data, values and field names', () => {
    assert.equal(excerpt('a\u202eb\u200bc'), 'a\\u202eb\\u200bc');
    // Unicode tags (text no reader sees), soft hyphen, variation selector, Hangul filler.
    assert.equal(excerpt('x\u{E0069}\u00ad\ufe0f\u3164y', 40), 'x\\u{e0069}\\u00ad\\ufe0f\\u3164y');
    assert.equal(describeValue('x\u202ey'), '`"x\\u202ey"` (string)');
    const err = new ConfigError([{ field: `k\u202e${'e'.repeat(300)}`, expected: 'one of the known fields', received: describeValue({ ['\u2067'.repeat(50)]: 1, b: 2 }) }]);
    assert.doesNotMatch(err.message, /[\u202e\u2067]/);
    assert.match(err.message, /Expected `k\\u202ee+…` to be one of the known fields, got an object with keys \[(\\u2067)+…, b\]/);
    assert.ok(err.message.length < 400, `bounded: ${err.message.length} characters`);
    const refused = allow.check(`file:///etc/\u202epasswd`);
    assert.equal(refused.ok, false);
    if (!refused.ok) assert.doesNotMatch(refused.received, /\u202e/);
  });

  test("JSON.parse's quoted input is dropped, its position kept", () => {
    let err: unknown;
    try {
      JSON.parse('{"a": SECRET-SECRET-SECRET}');
    } catch (e) {
      err = e;
    }
    assert.match(jsonErrorPosition(err), /^( at position \d+)?$/);
    assert.doesNotMatch(jsonErrorPosition(err), /SECRET/);
  });
});

describe("the trainer's environment", () => {
  test('keeps what TensorFlow, GCS and the trainer need; drops Temporal credentials and the rest', () => {
    const env = trainerEnvironment({
      PATH: '/usr/bin',
      HOME: '/root',
      TMPDIR: '/tmp',
      LANG: 'C.UTF-8',
      LC_ALL: 'C',
      TF_CPP_MIN_LOG_LEVEL: '2',
      DT_BACKEND: 'cpu',
      DT_ALLOWED_URIS: a,
      GOOGLE_APPLICATION_CREDENTIALS: '/keys/sa.json',
      STORAGE_EMULATOR_HOST: 'http://127.0.0.1:1',
      GCLOUD_PROJECT: 'p',
      TEMPORAL_API_KEY: 'k',
      TEMPORAL_TLS_CLIENT_KEY_DATA: 'k',
      TEMPORAL_TLS_CLIENT_CERT_PATH: '/c',
      TEMPORAL_ADDRESS: 'x:1',
      AWS_SECRET_ACCESS_KEY: 'k',
      DATABASE_URL: 'postgres://u:p@h/d',
      NODE_OPTIONS: '--require /x.js',
    });
    assert.deepEqual(Object.keys(env).sort(), [
      'DT_ALLOWED_URIS', 'DT_BACKEND', 'GCLOUD_PROJECT', 'GOOGLE_APPLICATION_CREDENTIALS', 'HOME', 'LANG', 'LC_ALL', 'PATH',
      'STORAGE_EMULATOR_HOST', 'TF_CPP_MIN_LOG_LEVEL', 'TMPDIR',
    ]);
  });
});
