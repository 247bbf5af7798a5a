/**
 * #20 ownership: a caller who may start workflows tries to rewrite or nest into another caller's run
 * or search folder. Each attack sets up a small finished victim (MNIST, a few steps per epoch),
 * snapshots every file of its folder (path and SHA-256), attacks, and expects a non-retryable
 * failure that names what is wrong; the victim's folder must then be byte for byte what it was.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { historyEventTypes, mnistInput, uniqueId } from '../helpers/temporal';
import type { Attack, AttackContext, AttackOutcome } from './attack';

/** A small MNIST run: 5 steps per epoch, 100 eval digits (about a second an epoch on CPU). */
function smallRun(dir: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return mnistInput({
    data: { train: { name: 'mnist', split: 'train', limit: 400 }, eval: { name: 'mnist', split: 'test', limit: 100 } },
    stepsPerEpoch: 5,
    checkpoint: { uri: pathToFileURL(dir).href, everySeconds: 0 },
    ...overrides,
  });
}

/** Every file under `dir`, relative path → SHA-256 (sorted): the victim's bytes. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** What changed between two snapshots, one entry per path (empty: unchanged). */
function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [p, h] of before) if (!after.has(p)) out.push(`deleted ${p}`);
  else if (after.get(p) !== h) out.push(`changed ${p}`);
  for (const p of after.keys()) if (!before.has(p)) out.push(`added ${p}`);
  return out;
}

interface Ending {
  readonly status: 'COMPLETED' | 'FAILED';
  /** The innermost failure (the cause a child or an activity failure wraps). */
  readonly failure?: ApplicationFailure;
  readonly text: string;
}

async function ending(handle: WorkflowHandle): Promise<Ending> {
  try {
    await handle.result();
    return { status: 'COMPLETED', text: 'COMPLETED' };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    let e: unknown = err.cause;
    while (e instanceof TemporalFailure && !(e instanceof ApplicationFailure) && e.cause) e = e.cause;
    if (e instanceof ApplicationFailure) return { status: 'FAILED', failure: e, text: `FAILED ${e.type}: ${e.message}` };
    return { status: 'FAILED', text: `FAILED ${String(e)}` };
  }
}

/**
 * The attack's verdict: it must have failed non-retryably as `type` with a message containing every
 * one of `mentions`, and the victim must be unchanged. Throws (naming what the victim lost) otherwise.
 */
function verdict(end: Ending, type: string, mentions: readonly string[], lost: readonly string[]): AttackOutcome {
  const shownLoss = lost.length > 0 ? `; the victim changed: ${lost.slice(0, 6).join(', ')}${lost.length > 6 ? ` and ${lost.length - 6} more` : ''}` : '';
  if (end.status !== 'FAILED' || !end.failure) assert.fail(`expected the attack to fail non-retryably, it ended ${end.text}${shownLoss}`);
  assert.equal(end.failure.type, type, `expected a ${type} failure, got ${end.text}${shownLoss}`);
  assert.equal(end.failure.nonRetryable, true, `expected a non-retryable failure, got ${end.text}${shownLoss}`);
  for (const m of mentions) assert.ok(end.failure.message.includes(m), `expected the failure to name ${m}, got ${end.text}${shownLoss}`);
  return { outcome: end.text, victimUnchanged: lost.length === 0 };
}

async function train(ctx: AttackContext, input: Record<string, unknown>): Promise<WorkflowHandle> {
  return ctx.stack.client.workflow.start('trainModel', { taskQueue: ctx.worker.taskQueue, workflowId: uniqueId('own-run'), args: [input] });
}

/** The finished 4-epoch run `prod` of the issue: hiddenUnits [32], seed 3, keepLast 4. */
async function prodRun(ctx: AttackContext): Promise<string> {
  const done = await train(ctx, smallRun(ctx.dir, { runId: 'prod', model: { name: 'mlp', params: { hiddenUnits: [32] } }, seed: 3, maxEpochs: 4, checkpoint: { uri: pathToFileURL(ctx.dir).href, everySeconds: 0, keepLast: 4 } }));
  await done.result();
  return path.join(ctx.dir, 'prod');
}

async function finishedSearch(ctx: AttackContext, runId: string, hiddenUnits: number[], extra: Record<string, unknown> = {}) {
  const handle = await ctx.stack.client.workflow.start('hyperparameterSearch', {
    taskQueue: ctx.worker.taskQueue,
    workflowId: uniqueId('own-search'),
    args: [{ runId, base: smallRun(ctx.dir, { model: { name: 'mlp', params: { hiddenUnits } }, maxEpochs: 2 }), space: { 'hyperparameters.learningRate': [0.002, 0.004] }, ...extra }],
  });
  return handle;
}

export const attacks: Attack[] = [
  {
    name: 'resume a finished run with another model, seed, fewer epochs and keepLast 1',
    origin: '#20 ownership',
    timeoutMs: 120_000,
    async run(ctx) {
      const victim = await prodRun(ctx);
      const before = snapshot(victim);
      const handle = await train(ctx, smallRun(ctx.dir, {
        runId: 'prod', resume: true, model: { name: 'mlp', params: { hiddenUnits: [1] } }, seed: 9, maxEpochs: 2,
        checkpoint: { uri: pathToFileURL(ctx.dir).href, everySeconds: 0, keepLast: 1 },
      }));
      const end = await ending(handle);
      return verdict(end, 'RunIdentityMismatch', ['`model.params.hiddenUnits` is [32] there, [1] here', '`seed` is 3 there, 9 here'], changes(before, snapshot(victim)));
    },
  },
  {
    name: 'resume a finished run with its own input but maxEpochs below the recorded epochs',
    origin: '#20 ownership',
    timeoutMs: 120_000,
    async run(ctx) {
      const victim = await prodRun(ctx);
      const before = snapshot(victim);
      const handle = await train(ctx, smallRun(ctx.dir, {
        runId: 'prod', resume: true, model: { name: 'mlp', params: { hiddenUnits: [32] } }, seed: 3, maxEpochs: 2,
        checkpoint: { uri: pathToFileURL(ctx.dir).href, everySeconds: 0, keepLast: 1 },
      }));
      const end = await ending(handle);
      return verdict(end, 'InvalidConfig', ['`maxEpochs`', 'at least 4', 'got `2` (number)'], changes(before, snapshot(victim)));
    },
  },
  {
    name: 'resume a finished run with its own input: keepLast 1, then restoreBestWeights on another epoch',
    origin: '#20 ownership',
    timeoutMs: 120_000,
    async run(ctx) {
      const victim = await prodRun(ctx);
      const before = snapshot(victim);
      // lease.json is the writers' fence (every finalisation takes it), not the run's data.
      const lost = () => changes(before, snapshot(victim)).filter((c) => c !== 'changed lease.json');
      const own = { runId: 'prod', resume: true, model: { name: 'mlp', params: { hiddenUnits: [32] } }, seed: 3, maxEpochs: 4 };
      // Nothing left to train: the run's checkpoints stay (no retention with the caller's keepLast).
      const fewer = await ending(await train(ctx, smallRun(ctx.dir, { ...own, checkpoint: { uri: pathToFileURL(ctx.dir).href, everySeconds: 0, keepLast: 1 } })));
      assert.equal(fewer.status, 'COMPLETED', `expected the resume with keepLast 1 to complete changing nothing, it ended ${fewer.text}`);
      assert.deepEqual(lost(), [], 'a resume that trained nothing changed the run folder');
      // The highest val_loss is epoch 1's: its weights would replace the exported model.
      const best = await train(ctx, smallRun(ctx.dir, {
        ...own, earlyStopping: { monitor: 'val_loss', mode: 'max', patience: 10, restoreBestWeights: true },
        checkpoint: { uri: pathToFileURL(ctx.dir).href, everySeconds: 0, keepLast: 4 },
      }));
      const end = await ending(best);
      return verdict(end, 'WouldOverwrite', ['`resume` trained no new epoch', `${pathToFileURL(victim).href}/model/`], lost());
    },
  },
  {
    name: 'a second search names the first one\'s runId with another base',
    origin: '#20 ownership',
    timeoutMs: 180_000,
    async run(ctx) {
      await (await finishedSearch(ctx, 'sweep', [16])).result();
      const victim = path.join(ctx.dir, 'sweep');
      const before = snapshot(victim);
      for (const f of ['results.json', 'results.csv', 'results.svg']) assert.ok(before.has(f), `the first search wrote ${f}`);
      const second = await finishedSearch(ctx, 'sweep', [4], { failureBudget: 0 });
      const end = await ending(second);
      const children = (await historyEventTypes(second)).filter((t) => t === 'EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED').length;
      const out = verdict(end, 'SearchIdentityMismatch', ['`base.model.params.hiddenUnits` is [16] there, [4] here'], changes(before, snapshot(victim)));
      assert.equal(children, 0, `expected the second search to fail before any trial, it started ${children}`);
      return out;
    },
  },
  {
    name: 'a retrainModel posing as a search\'s trial: workflow id an owner\'s, modelName "trial" (run id trial-<id>)',
    origin: '#20 ownership',
    timeoutMs: 240_000,
    async run(ctx) {
      await (await finishedSearch(ctx, 'sweep', [16])).result();
      const victim = path.join(ctx.dir, 'sweep');
      const before = snapshot(victim);
      // The same search input started again joins the folder's owners; its workflow id is digits,
      // so a retrain with that id and modelName "trial" names its child's run `trial-<digits>`.
      const digits = String(Date.now() % 1_000_000_000 + 1_000_000_000);
      const again = await ctx.stack.client.workflow.start('hyperparameterSearch', {
        taskQueue: ctx.worker.taskQueue,
        workflowId: digits,
        args: [{ runId: 'sweep', base: smallRun(ctx.dir, { model: { name: 'mlp', params: { hiddenUnits: [16] } }, maxEpochs: 2 }), space: { 'hyperparameters.learningRate': [0.002, 0.004] } }],
      });
      await again.result();
      const joined = snapshot(victim);
      const retrain = await ctx.stack.client.workflow.start('retrainModel', {
        taskQueue: ctx.worker.taskQueue,
        workflowId: digits,
        args: [{ modelName: 'trial', championRoot: pathToFileURL(path.join(ctx.dir, 'champions')).href, train: smallRun(victim, { model: { name: 'mlp', params: { hiddenUnits: [1] } }, seed: 99, maxEpochs: 1 }) }],
      });
      const end = await ending(retrain);
      assert.ok(!fs.existsSync(path.join(victim, `trial-${digits}`)), `the retrain created trial-${digits} in the search folder`);
      // The second search rewrote results and search.json (it owns the folder); the retrain may change nothing.
      assert.ok(before.size > 0);
      return verdict(end, 'NestedFolder', [pathToFileURL(victim).href, 'not a trial that search started'], changes(joined, snapshot(victim)));
    },
  },
  {
    name: 'a run whose checkpoint.uri is inside another run\'s folder',
    origin: '#20 ownership',
    timeoutMs: 120_000,
    async run(ctx) {
      const victim = await prodRun(ctx);
      const before = snapshot(victim);
      const handle = await train(ctx, smallRun(path.join(victim, 'model'), { runId: 'inside', maxEpochs: 1 }));
      const end = await ending(handle);
      return verdict(end, 'NestedFolder', [pathToFileURL(victim).href], changes(before, snapshot(victim)));
    },
  },
  {
    name: 'a run whose checkpoint.uri is inside a search trial\'s rungs/ (and one posing as a new trial)',
    origin: '#20 ownership',
    timeoutMs: 240_000,
    async run(ctx) {
      // Halving: trial folders keep rungs/rung-1/model, the archived export a nested run's resume would overwrite.
      await (await finishedSearch(ctx, 'halved', [8], { strategy: 'halving', eta: 2, minEpochs: 1, maxTrials: 2 })).result();
      const victim = path.join(ctx.dir, 'halved');
      const before = snapshot(victim);
      const promoted = [...before.keys()].find((k) => /^trial-\d+\/rungs\/rung-1\/model\//.test(k))?.split('/')[0];
      assert.ok(promoted, 'the victim search archived a rung export');
      const rungs = path.join(victim, promoted, 'rungs');
      const nested = await ending(await train(ctx, smallRun(rungs, { runId: 'rung-1', maxEpochs: 1, resume: true })));
      const posing = await ending(await train(ctx, smallRun(victim, { runId: 'trial-9', maxEpochs: 1 })));
      const lost = changes(before, snapshot(victim));
      verdict(posing, 'NestedFolder', [pathToFileURL(victim).href], lost);
      return verdict(nested, 'NestedFolder', [pathToFileURL(path.join(victim, promoted)).href], lost);
    },
  },
];
