/**
 * The worker's MLflow credentials go to its own server only, and no redirect is followed: against
 * real loopback HTTP servers (node:http) that record the Authorization header they receive, through
 * MlflowClient and through the tracking activities a worker runs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import { FileCheckpointStore } from '../src/checkpoints/fs-store';
import { MlflowClient, MlflowError } from '../src/observability/mlflow';
import { createTrackingActivities } from '../src/activities/tracking';
import { removeDirs, tempDir } from './helpers/cleanup';
import { startRecordingMlflow, startRedirector, type RecordingServer } from './helpers/recording-mlflow';

const TOKEN = `tok${randomBytes(16).toString('hex')}`;

describe('MLflow credentials', () => {
  let own: RecordingServer;
  let other: RecordingServer;
  let target: RecordingServer;
  let redirector: RecordingServer;
  const dir = tempDir('dt-mlflow-cred-');

  before(async () => {
    own = await startRecordingMlflow();
    other = await startRecordingMlflow();
    target = await startRecordingMlflow();
    redirector = await startRedirector(target.uri);
  });
  after(async () => {
    for (const s of [own, other, target, redirector]) await s?.close();
    removeDirs(dir);
  });
  const reset = () => {
    for (const s of [own, other, target, redirector]) s.requests.length = 0;
  };
  const auths = (s: RecordingServer) => s.requests.map((r) => r.authorization);

  test('the token goes to the server it was configured for, and to no other', async () => {
    reset();
    const env = { MLFLOW_TRACKING_URI: own.uri, MLFLOW_TRACKING_TOKEN: TOKEN };
    await new MlflowClient(own.uri, { env }).experimentId('e');
    await new MlflowClient(`${own.uri}/some/path`, { env }).experimentId('e');
    await new MlflowClient(other.uri, { env }).experimentId('e');
    assert.deepEqual(auths(own), [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`], 'the configured server gets the token (same origin, any path)');
    assert.deepEqual(auths(other), [undefined], 'another server gets no Authorization header');
    // The same with user name and password, and with the owner given explicitly.
    reset();
    const basic = { MLFLOW_TRACKING_USERNAME: 'u', MLFLOW_TRACKING_PASSWORD: TOKEN };
    await new MlflowClient(own.uri, { env: basic, credentialsFor: own.uri }).experimentId('e');
    await new MlflowClient(other.uri, { env: basic, credentialsFor: own.uri }).experimentId('e');
    await new MlflowClient(own.uri, { env: { ...basic, MLFLOW_TRACKING_URI: own.uri }, credentialsFor: null }).experimentId('e');
    assert.deepEqual(auths(own), [`Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`, undefined]);
    assert.deepEqual(auths(other), [undefined]);
  });

  test('a redirect is refused, not followed, and the message names the server without the token', async () => {
    reset();
    const env = { MLFLOW_TRACKING_URI: redirector.uri, MLFLOW_TRACKING_TOKEN: TOKEN };
    const err = await new MlflowClient(redirector.uri, { env }).experimentId('e').then(
      () => assert.fail('a redirect should fail the call'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MlflowError, String(err));
    assert.equal(err.retryable, false);
    assert.match(err.message, new RegExp(`MLflow at ${redirector.uri} answered experiments/get-by-name with a redirect \\(307 to ${target.uri}\\): redirects are refused`));
    assert.ok(!err.message.includes(TOKEN));
    assert.equal(redirector.requests.length, 1);
    assert.equal(target.requests.length, 0, 'the redirect target got nothing');
    // A POST (runs/create, log-batch) is not re-sent either, whatever the status.
    for (const status of [301, 302, 303, 308]) {
      const r = await startRedirector(target.uri, status);
      await assert.rejects(new MlflowClient(r.uri, { env: { MLFLOW_TRACKING_TOKEN: TOKEN, MLFLOW_TRACKING_URI: r.uri } }).setStatus('x', 'FINISHED'), (e: MlflowError) => !e.retryable && e.message.includes(`(${status} to`));
      await r.close();
    }
    assert.equal(target.requests.length, 0);
  });

  describe('through the tracking activities (the worker: MLFLOW_TRACKING_URI and DT_ALLOWED_TRACKING_URIS)', () => {
    const saved = process.env.MLFLOW_TRACKING_TOKEN;
    before(() => {
      process.env.MLFLOW_TRACKING_TOKEN = TOKEN;
    });
    after(() => {
      if (saved === undefined) delete process.env.MLFLOW_TRACKING_TOKEN;
      else process.env.MLFLOW_TRACKING_TOKEN = saved;
    });
    const openStore = (uri: string) => new FileCheckpointStore(uri);
    const runUri = () => `${pathToFileURL(dir).href}/run-${randomBytes(4).toString('hex')}`;
    const start = (uri?: string) => ({ runUri: runUri(), runName: 'r', params: {}, startTime: 1, ...(uri && { tracking: { mlflow: { uri } } }) });

    test("a run that names another allowed server gets its metrics there, without the worker's token", async () => {
      reset();
      const activities = createTrackingActivities({ openStore, mlflowTrackingUri: own.uri, allowedTrackingUris: [other.uri, redirector.uri] });
      const mine = await activities.startTracking(start());
      await activities.syncTracking({ runUri: runUri(), tracking: mine!, final: { status: 'FINISHED', endTime: 2 } });
      const theirs = await activities.startTracking(start(other.uri));
      assert.equal(theirs?.mlflow.uri, other.uri);
      await activities.syncTracking({ runUri: runUri(), tracking: theirs!, final: { status: 'FINISHED', endTime: 2 } });
      assert.ok(own.requests.length >= 4 && auths(own).every((a) => a === `Bearer ${TOKEN}`), 'the worker\'s own server gets the token');
      assert.ok(other.requests.length >= 4, `the other server was called: ${other.requests.length}`);
      assert.deepEqual(new Set(auths(other)), new Set([undefined]), 'and never with the token');
    });

    test('a redirecting server fails tracking non-retryably; the target gets nothing', async () => {
      reset();
      const viaOwn = createTrackingActivities({ openStore, mlflowTrackingUri: redirector.uri });
      const viaInput = createTrackingActivities({ openStore, mlflowTrackingUri: own.uri, allowedTrackingUris: [redirector.uri] });
      for (const [activities, input] of [[viaOwn, start()], [viaInput, start(redirector.uri)]] as const) {
        const err = await activities.startTracking(input).then(
          () => assert.fail('should fail'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof ApplicationFailure && err.nonRetryable && err.type === 'MlflowRejected', String(err));
        assert.match(err.message, /with a redirect \(307 to http:\/\/127\.0\.0\.1:\d+\): redirects are refused/);
        assert.ok(!err.message.includes(TOKEN));
      }
      assert.equal(redirector.requests.length, 2);
      assert.deepEqual(auths(redirector), [`Bearer ${TOKEN}`, undefined], 'the token only where it was configured');
      assert.equal(target.requests.length, 0);
    });
  });
});
