/**
 * The malformed-input table: every input in it is started as a real workflow on a real dev server
 * with one real worker process (started once, trainer and all). Each must end FAILED within 10 s
 * with a message naming the field — from the parser before any activity, or from the worker at
 * the first attempt (no retry) — and the worker must still be up at the end: one more valid run
 * completes. Prints the table (input, outcome, seconds, message).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { badInputs, parserInputs, withField } from './bad-inputs';
import { tinyInput } from './e2e-support';
import { startStack, startWorkerProcess, tempCheckpointRoot, tempDir, uniqueId, type Stack, type WorkerProcess } from './helpers/temporal';

const LIMIT_SECONDS = 10;
const BATCH = 8;

interface Case {
  readonly name: string;
  readonly workflow: 'trainModel' | 'retrainModel' | 'hyperparameterSearch';
  readonly input: unknown;
  /** The message must contain this (the field, as the message spells it). */
  readonly names: string;
}

interface Row {
  readonly name: string;
  readonly outcome: string;
  readonly seconds: number;
  readonly message: string;
  readonly attempts: number;
}

const mnist = { train: { name: 'mnist', split: 'train', limit: 64 }, eval: { name: 'mnist', split: 'test', limit: 64 } };
const layer = (className: string) => ({ class_name: 'Sequential', config: { layers: [{ class_name: className, config: { units: 4, batch_input_shape: [null, 16] } }] } });

/** Inputs only the worker can refuse: registry names, dataset shapes, files, metric names. */
function lateCases(dir: string): Case[] {
  const csvUri = pathToFileURL(path.join(dir, 'table.csv')).href;
  fs.writeFileSync(path.join(dir, 'table.csv'), 'a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n');
  const emptyUri = pathToFileURL(fs.mkdtempSync(path.join(dir, 'empty-'))).href;
  fs.symlinkSync('/etc', path.join(dir, 'link-to-etc'));
  const linkUri = pathToFileURL(path.join(dir, 'link-to-etc')).href;
  const t = (name: string, input: unknown, names: string): Case => ({ name, workflow: 'trainModel', input, names });
  return [
    t('unknown dataset (local activity)', withField('data.eval.name', 'imagenet'), '`data.eval.name`'),
    t('unknown model (local activity)', withField('model.name', 'resnet'), '`model.name`'),
    t('hiddenUnits [1e7] on MNIST (memory estimate)', { ...tinyInput({ model: { name: 'mlp', params: { hiddenUnits: [1e7] } } }), data: mnist }, '`model.params.hiddenUnits`'),
    t('cnn imageShape not the input size', withField('model', { name: 'cnn', params: { imageShape: [10, 10, 1] } }), '`model.params.imageShape`'),
    t('cnn deeper than its image', { ...withField('model', { name: 'cnn', params: { filters: [2, 2, 2, 2] } }), data: mnist }, '`model.params.filters`'),
    t('topology with an unknown layer class', withField('model', { topology: layer('NoSuchLayer') }), '`model.topology`'),
    t('earlyStopping.monitor val_acc (a typo)', withField('earlyStopping', { monitor: 'val_acc' }), '`earlyStopping.monitor`'),
    t('earlyStopping.monitor constructor', withField('earlyStopping', { monitor: 'constructor' }), '`earlyStopping.monitor`'),
    t('reduceLrOnPlateau.monitor __proto__', withField('reduceLrOnPlateau', { monitor: '__proto__' }), '`reduceLrOnPlateau.monitor`'),
    t('csv file that does not exist', withField('data.train', { name: 'csv', params: { uri: `${emptyUri}/none.csv`, label: 'y' } }), '`params.uri`'),
    t('csv label not a column', withField('data.train', { name: 'csv', params: { uri: csvUri, label: 'zz' } }), '`params.label`'),
    t('warmStartFrom an empty folder', withField('warmStartFrom', emptyUri), 'warmStartFrom'),
    // Well-formed but outside the worker's allow-list (src/trust): refused before anything is read or written.
    t('refused: csv at file:///proc/self/environ', withField('data.train', { name: 'csv', params: { uri: 'file:///proc/self/environ', label: 'zz' } }), 'data.train.params.uri'),
    t('refused: checkpoint.uri file:///etc/dt-runs', withField('checkpoint.uri', 'file:///etc/dt-runs'), 'checkpoint.uri'),
    t('refused: checkpoint.uri through a symlink to /etc', withField('checkpoint.uri', `${linkUri}/dt-runs`), 'checkpoint.uri'),
    t('refused: warmStartFrom file:///etc/x', withField('warmStartFrom', 'file:///etc/x'), 'warmStartFrom'),
    t('refused: tracking.mlflow.uri the worker does not allow', withField('tracking', { mlflow: { uri: 'http://169.254.169.254/latest' } }), 'tracking.mlflow.uri'),
    t('refused: savedmodel in a bucket not allowed', withField('model', { kind: 'savedmodel', uri: 'gs://not-allowed-bucket/m' }), 'model.uri'),
    { name: 'refused: retrain championRoot file:///etc/champions', workflow: 'retrainModel', input: { modelName: 'm', train: tinyInput(), championRoot: 'file:///etc/champions' }, names: 'championRoot' },
  ];
}

/** The other workflows parse with the same checks. */
const otherWorkflows: Case[] = [
  { name: 'retrain: championRoot gs://ab', workflow: 'retrainModel', input: { modelName: 'm', train: tinyInput(), championRoot: 'gs://ab' }, names: '`championRoot`' },
  { name: 'retrain: train.stepsPerEpoch 1e12', workflow: 'retrainModel', input: { modelName: 'm', train: tinyInput({ stepsPerEpoch: 1e12 }) }, names: '`train.stepsPerEpoch`' },
  { name: 'retrain: metric of 1000 characters', workflow: 'retrainModel', input: { modelName: 'm', train: tinyInput(), metric: 'm'.repeat(1000) }, names: '`metric`' },
  { name: 'search: maxTrials 1e9', workflow: 'hyperparameterSearch', input: { base: tinyInput(), space: { seed: [1, 2] }, maxTrials: 1e9 }, names: '`maxTrials`' },
  { name: 'search: maxParallel 1e6', workflow: 'hyperparameterSearch', input: { base: tinyInput(), space: { seed: [1, 2] }, maxParallel: 1e6 }, names: '`maxParallel`' },
  { name: 'search: base.checkpoint.uri file:///tmp/r?x', workflow: 'hyperparameterSearch', input: { base: tinyInput({ checkpoint: { uri: 'file:///tmp/r?x' } }), space: { seed: [1, 2] } }, names: 'checkpoint.uri`' },
];

/** Every message of a failure's cause chain, outermost first. */
function messages(err: unknown): string {
  const out: string[] = [];
  for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) out.push(e.message ?? String(e));
  return out.join(' <- ');
}

describe('malformed inputs fail fast, name their field, and leave the worker up', () => {
  let stack: Stack;
  let worker: WorkerProcess;
  let dir: string;
  const taskQueue = uniqueId('tq-malformed');

  before(async () => {
    stack = await startStack();
    dir = tempDir('dt-malformed-');
    worker = startWorkerProcess({
      TEMPORAL_ADDRESS: stack.address,
      TEMPORAL_NAMESPACE: 'default',
      DT_TASK_QUEUE: taskQueue,
      DT_CHECKPOINT_URI: tempCheckpointRoot(),
    });
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const valid = (id: string) =>
    stack.client.workflow.execute('trainModel', { taskQueue, workflowId: uniqueId(id), args: [tinyInput({ maxEpochs: 2 })], workflowExecutionTimeout: '2 minutes' });

  test('the table', { timeout: 10 * 60_000 }, async () => {
    // The worker and its trainer are warm before the clock starts for the table (startup is not an input's fault).
    await valid('warmup');
    const cases: Case[] = [
      ...badInputs.map((b) => ({ name: b.name, workflow: 'trainModel' as const, input: b.input, names: `\`${b.issue.field}\`` })),
      ...parserInputs.map((b) => ({ name: b.name, workflow: 'trainModel' as const, input: b.input, names: `\`${b.field}\`` })),
      ...lateCases(dir),
      ...otherWorkflows,
    ];
    assert.ok(cases.length >= 60, `${cases.length} cases`);

    const run = async (c: Case): Promise<Row> => {
      const started = Date.now();
      const handle = await stack.client.workflow.start(c.workflow, { taskQueue, workflowId: uniqueId('bad'), args: [c.input], workflowExecutionTimeout: '2 minutes' });
      const outcome = await handle.result().then(
        () => ({ status: 'COMPLETED', message: '' }),
        (err: unknown) => ({ status: err instanceof WorkflowFailedError ? 'FAILED' : `ERROR ${String(err)}`, message: messages(err instanceof WorkflowFailedError ? err.cause : err) }),
      );
      const seconds = (Date.now() - started) / 1000;
      // Retries show up as activity attempts above 1 in the history.
      const events = (await handle.fetchHistory()).events ?? [];
      const attempts = Math.max(1, ...events.map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1));
      return { name: c.name, outcome: outcome.status, seconds, message: outcome.message, attempts };
    };

    const rows: Row[] = [];
    for (let i = 0; i < cases.length; i += BATCH) rows.push(...(await Promise.all(cases.slice(i, i + BATCH).map(run))));

    const cell = (s: string, n: number) => s.replace(/\s+/g, ' ').replace(/\|/g, '\\|').slice(0, n);
    const table = ['| input | outcome | seconds | message |', '|---|---|---|---|'];
    for (const r of rows) table.push(`| ${cell(r.name, 60)} | ${r.outcome} | ${r.seconds.toFixed(1)} | ${cell(r.message, 220)} |`);
    console.log(table.join('\n'));

    const problems: string[] = [];
    cases.forEach((c, i) => {
      const r = rows[i]!;
      if (r.outcome !== 'FAILED') problems.push(`${c.name}: ${r.outcome}`);
      if (r.seconds > LIMIT_SECONDS) problems.push(`${c.name}: ${r.seconds.toFixed(1)} s`);
      if (r.attempts > 1) problems.push(`${c.name}: ${r.attempts} attempts (retried)`);
      if (!r.message.includes(c.names)) problems.push(`${c.name}: message does not name ${c.names}: ${r.message.slice(0, 300)}`);
    });
    assert.deepEqual(problems, []);
  });

  test('the worker is still up: its process lives and a valid run completes', { timeout: 3 * 60_000 }, async () => {
    assert.equal(worker.child.exitCode, null, worker.output().slice(-2000));
    const result = (await valid('after')) as { status: string };
    assert.equal(result.status, 'completed');
  });
});
