/**
 * Trust attacks for the hostile-caller suite (contract: ./attack.ts): the earlier trust work's
 * (URIs outside the allow-list, a symlink that leads outside, a planted secret) and issue #20's
 * smaller items (the worker's MLflow token sent to another server, a redirecting tracking server,
 * a run folder's subfolder swapped for a symlink between two checkpoint writes).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { createActivities } from '../../src/activities';
import { tinyInput } from '../e2e-support';
import { SANDBOX } from '../helpers/cleanup';
import { startRecordingMlflow, startRedirector, type RecordingServer } from '../helpers/recording-mlflow';
import { historyEventTypes, startWorkerWithActivities, uniqueId } from '../helpers/temporal';
import type { Attack, AttackContext } from './attack';

/** How a workflow ended: `COMPLETED`, or `FAILED <type>: <message>` of its innermost application failure. */
interface Ended {
  readonly handle: WorkflowHandle;
  readonly failure?: ApplicationFailure;
  readonly line: string;
}

async function runToEnd(ctx: AttackContext, input: Record<string, unknown>, options: { taskQueue?: string; type?: string } = {}): Promise<Ended> {
  const handle = await ctx.stack.client.workflow.start(options.type ?? 'trainModel', {
    taskQueue: options.taskQueue ?? ctx.worker.taskQueue,
    workflowId: uniqueId('hostile'),
    args: [input],
    // A fault that is still retried (not classified as the input's) is cut off, and shows as a timeout.
    workflowRunTimeout: '90s',
  });
  try {
    await handle.result();
    return { handle, line: 'COMPLETED' };
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    let failure: ApplicationFailure | undefined;
    for (let e: unknown = err.cause; e instanceof TemporalFailure || e instanceof Error; e = (e as Error).cause) {
      if (e instanceof ApplicationFailure) failure = e;
    }
    const line = failure ? `FAILED ${failure.type ?? 'Error'}: ${failure.message}` : `FAILED: ${String(err.cause)}`;
    return { handle, ...(failure && { failure }), line };
  }
}

function expectFailed(ended: Ended, type: string, ...patterns: RegExp[]): ApplicationFailure {
  assert.ok(ended.failure, `expected FAILED ${type}, got ${ended.line}`);
  assert.equal(ended.failure.type, type, ended.line);
  assert.equal(ended.failure.nonRetryable, true, ended.line);
  for (const p of patterns) assert.match(ended.failure.message, p);
  return ended.failure;
}

/** Refused at the start: InvalidConfig, and no activity task or child workflow was ever scheduled. */
async function refusedAtStart(ended: Ended, ...patterns: RegExp[]): Promise<void> {
  expectFailed(ended, 'InvalidConfig', ...patterns);
  const events = await historyEventTypes(ended.handle);
  assert.ok(!events.includes('EVENT_TYPE_ACTIVITY_TASK_SCHEDULED'), `no activity task: ${events.join(' ')}`);
}

/** Every string of a history, byte fields (payloads) decoded as UTF-8. */
function textOf(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) for (const v of value) textOf(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) textOf(v, out);
  return out;
}
const historyText = async (handle: WorkflowHandle): Promise<string> => textOf(await handle.fetchHistory()).join('\n');

/** Any 20-character piece of `secret` in `text` (an excerpt may show up to 16). */
const leaks = (text: string, secret: string): boolean => Array.from({ length: secret.length - 19 }, (_, i) => secret.slice(i, i + 20)).some((p) => text.includes(p));

/** Every entry under `dir` with its bytes: what "the victim is unchanged" compares. */
function snapshot(dir: string): string {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const full = path.join(e.parentPath, e.name);
    out.push(`${path.relative(dir, full)}=${e.isFile() ? fs.readFileSync(full).toString('base64') : e.isDirectory() ? '<dir>' : '<other>'}`);
  }
  return out.sort().join('\n');
}

/** The names in /etc (a victim's listing, not its bytes: most are not readable). */
const etcNames = (): string => fs.readdirSync('/etc').sort().join('\n');

/** A folder outside the test allow-list (which is this process's sandbox): beside the sandbox. */
const outsideFolder = (): string => fs.mkdtempSync(path.join(path.dirname(SANDBOX), 'dt-hostile-outside-'));

const small = (overrides: Record<string, unknown> = {}) => tinyInput({ maxEpochs: 1, ...overrides });
const csv = (uri: string, label = 'label') => ({ name: 'csv', params: { uri, label } });

/** Runs `fn` with MLFLOW_TRACKING_TOKEN set in this process (the in-process workers' environment), then restores it. */
async function withToken<T>(token: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.MLFLOW_TRACKING_TOKEN;
  process.env.MLFLOW_TRACKING_TOKEN = token;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.MLFLOW_TRACKING_TOKEN;
    else process.env.MLFLOW_TRACKING_TOKEN = saved;
  }
}

/**
 * A second worker on the suite's server, for a tracking configuration the suite's worker does not
 * have: the real workflows and activities, sharing the suite worker's trainer.
 */
async function trackingWorker(ctx: AttackContext, tracking: { mlflowTrackingUri: string; allowedTrackingUris?: string[] }) {
  const activities = createActivities({ trainer: ctx.worker.plugin.trainer, checkpointRoot: pathToFileURL(ctx.dir).href, ...tracking });
  return startWorkerWithActivities(ctx.stack.address, activities);
}

async function closeAll(...servers: Array<RecordingServer | undefined>): Promise<void> {
  for (const s of servers) await s?.close();
}

export const attacks: Attack[] = [
  {
    name: 'checkpoint.uri = file:///../../etc',
    origin: 'earlier trust work',
    async run(ctx) {
      const before = etcNames();
      const ended = await runToEnd(ctx, small({ checkpoint: { uri: 'file:///../../etc' } }));
      await refusedAtStart(ended, /`checkpoint\.uri`/, /`\.\.` segment/);
      return { outcome: ended.line, victimUnchanged: etcNames() === before };
    },
  },
  {
    name: 'a csv at file:///proc/self/environ',
    origin: 'earlier trust work',
    async run(ctx) {
      const ended = await runToEnd(ctx, small({ data: { train: csv('file:///proc/self/environ'), eval: csv('file:///proc/self/environ') } }));
      await refusedAtStart(ended, /`data\.train\.params\.uri`/, /file:\/\/\/proc\/self\/environ/, /allowed prefixes/);
      return { outcome: ended.line, victimUnchanged: 'n/a' };
    },
  },
  {
    name: 'a symlink in an allowed folder that leads outside (checkpoints to /etc, data to /proc/self/environ)',
    origin: 'earlier trust work',
    async run(ctx) {
      fs.symlinkSync('/etc', path.join(ctx.dir, 'etc-link'));
      fs.symlinkSync('/proc/self/environ', path.join(ctx.dir, 'environ.csv'));
      const before = etcNames();
      const root = pathToFileURL(ctx.dir).href;
      const ckpt = await runToEnd(ctx, small({ checkpoint: { uri: `${root}/etc-link` } }));
      await refusedAtStart(ckpt, /`checkpoint\.uri`/, /which resolves to `file:\/\/\/etc\//);
      const data = await runToEnd(ctx, small({ data: { train: csv(`${root}/environ.csv`), eval: csv(`${root}/environ.csv`) } }));
      await refusedAtStart(data, /`data\.train\.params\.uri`/, /which resolves to `file:\/\/\/proc\//);
      return { outcome: `${ckpt.line} | ${data.line}`, victimUnchanged: etcNames() === before };
    },
  },
  {
    name: "a secret planted in the worker's environment and a CSV header reaches no history",
    origin: 'earlier trust work',
    timeoutMs: 240_000,
    async run(ctx) {
      const token = `dtplanted${randomBytes(20).toString('hex')}`;
      const rows = Array.from({ length: 40 }, (_, i) => `${i % 3},${(i * 7) % 5},${i % 2 === 0 ? 'a' : 'b'}`);
      fs.writeFileSync(path.join(ctx.dir, 'header.csv'), [`f1,f2,${token}`, ...rows].join('\n'));
      fs.symlinkSync('/proc/self/environ', path.join(ctx.dir, 'environ.csv'));
      const uri = (name: string) => `${pathToFileURL(ctx.dir).href}/${name}`;
      const tabular = (train: unknown) => ({
        model: { name: 'mlp', params: { hiddenUnits: [4] } },
        data: { train, eval: train },
        hyperparameters: { batchSize: 8 },
        stepsPerEpoch: 2,
        maxEpochs: 1,
        timeouts: { heartbeatSeconds: 10 },
      });
      process.env.DT_HOSTILE_PLANTED_SECRET = token;
      try {
        // The check must be able to fail: the token is where the attacker hopes to read it from.
        assert.ok(leaks(fs.readFileSync(path.join(ctx.dir, 'header.csv'), 'utf8'), token));
        assert.ok(leaks(process.env.DT_HOSTILE_PLANTED_SECRET, token));
        const header = await runToEnd(ctx, tabular(csv(uri('header.csv'), 'zz')));
        assert.ok(header.failure?.nonRetryable && /zz/.test(header.failure.message), header.line);
        const environ = await runToEnd(ctx, tabular(csv(uri('environ.csv'), 'zz')));
        await refusedAtStart(environ, /which resolves to `file:\/\/\/proc\//);
        for (const ended of [header, environ]) {
          assert.equal(leaks(await historyText(ended.handle), token), false, `the history of ${ended.handle.workflowId} carries the token`);
          assert.equal(leaks(ended.line, token), false);
        }
        return { outcome: `${header.line} | ${environ.line} | token in neither history`, victimUnchanged: 'n/a' };
      } finally {
        delete process.env.DT_HOSTILE_PLANTED_SECRET;
      }
    },
  },
  {
    name: "tracking.mlflow.uri names another allowed server: the worker's MLflow token must not go there",
    origin: '#20 smaller',
    timeoutMs: 180_000,
    async run(ctx) {
      const token = `mlflowtok${randomBytes(16).toString('hex')}`;
      let own: RecordingServer | undefined;
      let other: RecordingServer | undefined;
      let worker: Awaited<ReturnType<typeof trackingWorker>> | undefined;
      try {
        own = await startRecordingMlflow();
        other = await startRecordingMlflow();
        worker = await trackingWorker(ctx, { mlflowTrackingUri: own.uri, allowedTrackingUris: [other.uri] });
        const taskQueue = worker.taskQueue;
        const checkpoint = { uri: `${pathToFileURL(ctx.dir).href}/runs`, keepLast: 1000, everySeconds: 0 };
        const [mine, theirs] = await withToken(token, async () => [
          await runToEnd(ctx, small({ checkpoint }), { taskQueue }),
          await runToEnd(ctx, small({ checkpoint, tracking: { mlflow: { uri: other!.uri } } }), { taskQueue }),
        ]);
        assert.equal(mine!.line, 'COMPLETED');
        assert.equal(theirs!.line, 'COMPLETED');
        // Control: the worker's own server gets the token, so the attack could have worked.
        assert.ok(own.requests.length > 0 && own.requests.every((r) => r.authorization === `Bearer ${token}`), 'the worker\'s own server gets its token');
        assert.ok(other.requests.length > 0, 'the run tracked to the other server');
        const carrying = other.requests.filter((r) => r.authorization !== undefined).length;
        assert.equal(carrying, 0, `${carrying} of ${other.requests.length} requests to the other server carried credentials`);
        return { outcome: `COMPLETED; the other server got ${other.requests.length} requests, none with credentials (the worker's own: ${own.requests.length}, all with its token)`, victimUnchanged: 'n/a' };
      } finally {
        await worker?.stop();
        await closeAll(own, other);
      }
    },
  },
  {
    name: "the worker's MLflow server redirects elsewhere: the redirect must not be followed",
    origin: '#20 smaller',
    timeoutMs: 180_000,
    async run(ctx) {
      const token = `mlflowtok${randomBytes(16).toString('hex')}`;
      let target: RecordingServer | undefined;
      let redirector: RecordingServer | undefined;
      let worker: Awaited<ReturnType<typeof trackingWorker>> | undefined;
      try {
        target = await startRecordingMlflow();
        redirector = await startRedirector(target.uri);
        worker = await trackingWorker(ctx, { mlflowTrackingUri: redirector.uri });
        const checkpoint = { uri: `${pathToFileURL(ctx.dir).href}/runs`, keepLast: 1000, everySeconds: 0 };
        const ended = await withToken(token, () => runToEnd(ctx, small({ checkpoint }), { taskQueue: worker!.taskQueue }));
        // Tracking never fails a run: the run completes, the tracking activity failed non-retryably.
        assert.equal(ended.line, 'COMPLETED');
        assert.ok(redirector.requests.length > 0, 'the run tried to track');
        assert.equal(target.requests.length, 0, `the redirect target got ${target.requests.length} requests`);
        const history = await historyText(ended.handle);
        const refusal = new RegExp(`MLflow at ${redirector.uri} answered [a-z/-]+ with a redirect \\(307 to ${target.uri}\\): redirects are refused[^\\n]*`);
        const shown = refusal.exec(history);
        assert.ok(shown, 'the history records the refused redirect');
        assert.equal(leaks(history, token), false, 'the token is in the history');
        return { outcome: `COMPLETED; tracking FAILED MlflowRejected: ${shown[0]}; the target got 0 requests`, victimUnchanged: 'n/a' };
      } finally {
        await worker?.stop();
        await closeAll(target, redirector);
      }
    },
  },
  {
    name: "a run's checkpoints folder swapped for a symlink outside the allow-list between two checkpoint writes",
    origin: '#20 smaller',
    timeoutMs: 180_000,
    async run(ctx) {
      const runs = path.join(ctx.dir, 'runs');
      const runId = uniqueId('victim');
      const input = (overrides: Record<string, unknown>) => small({ runId, checkpoint: { uri: pathToFileURL(runs).href, keepLast: 1000, everySeconds: 0 }, ...overrides });
      assert.equal((await runToEnd(ctx, input({}))).line, 'COMPLETED');
      const outside = outsideFolder();
      try {
        // The attacker (who can write in the allowed folder) moves the checkpoints out and links them back.
        const checkpoints = path.join(runs, runId, 'checkpoints');
        fs.renameSync(checkpoints, path.join(outside, 'checkpoints'));
        fs.symlinkSync(path.join(outside, 'checkpoints'), checkpoints);
        const before = snapshot(outside);
        const ended = await runToEnd(ctx, input({ resume: true, maxEpochs: 2 }));
        expectFailed(ended, 'PermanentStoreError', /checkpoints is not the folder the store was opened on/, /never follow a symlink below the allow-listed real path/);
        return { outcome: ended.line, victimUnchanged: snapshot(outside) === before };
      } finally {
        fs.rmSync(outside, { recursive: true, force: true });
      }
    },
  },
];
