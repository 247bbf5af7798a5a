/**
 * A search that keeps its trial rows in the store (search-store-rows, docs/search-log.md), end to
 * end on a real server, real workers and real (tiny) training: it writes its log as it goes, its
 * result names the log, and `durable-train trials` reads it back.
 *
 *   node --import tsx --test test/search-store-rows.e2e.test.ts
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openStore } from '../src/checkpoints/open-store';
import type { SearchLogRow } from '../src/checkpoints/search-log';
import type { SearchResult } from '../src/workflows';
import type { SearchLogRow as TypedRow } from '../src/workflows/search';
import { runDurableTrain, startStack, startWorker, tempCheckpointRoot, uniqueId, type InProcessWorker, type Stack } from './helpers/temporal';
import { tinyInput } from './e2e-support';
import { chainHistories, logRows } from './search-e2e-support';
import { tableOf } from './search-simulate';

const LR = 'hyperparameters.learningRate';
const BASE = tinyInput({ stepsPerEpoch: 2, maxEpochs: 1, model: { name: 'mlp', params: { hiddenUnits: [4] } } });

describe('a search with its trial rows in the store', () => {
  let stack: Stack;
  let worker: InProcessWorker;
  before(async () => {
    stack = await startStack();
    worker = await startWorker(stack.address);
  });
  after(async () => {
    await worker?.stop();
    await stack?.close();
  });

  test('a random search of 6 trials writes its log across continue-as-new; the log rebuilds its table; `durable-train trials` reads it', async () => {
    const workflowId = uniqueId('rows');
    const input = { base: { ...BASE, checkpoint: { uri: tempCheckpointRoot() } }, strategy: 'random', maxTrials: 6, maxParallel: 2, continueAsNewEvery: 3, space: { [LR]: { loguniform: [1e-3, 1e-1] } } };
    const handle = await stack.client.workflow.start('hyperparameterSearch', { taskQueue: worker.taskQueue, workflowId, args: [input] });
    const result = (await handle.result()) as SearchResult;
    assert.ok((await chainHistories(stack.client, workflowId, handle.firstExecutionRunId)).length >= 2, 'continued as new');

    const rows = await logRows(result.searchUri);
    const table = tableOf([rows as unknown as TypedRow[]]);
    assert.equal(table.length, 6);
    assert.ok(table.every((t) => t.status === 'completed' && t.value !== null));
    // The result names the log; a search this small gets its table back from the log whole, and its best few.
    assert.equal(result.logUri, `${result.searchUri}/log/`);
    assert.equal(result.trialCount, 6);
    assert.deepEqual(result.trials, table, 'the log\'s last row of each trial is the result\'s row, in trial order');
    assert.deepEqual(result.top!.map((t) => t.value), table.map((t) => t.value).sort((a, b) => a! - b!), 'the best few, best first');
    assert.deepEqual([...result.top!].sort((a, b) => a.trial - b.trial), table);
    assert.equal(result.best.trial, result.top![0]!.trial);
    assert.deepEqual(result.edits, []);
    // results.json: the summary and where the table is; results.csv: every trial, from the log.
    const store = openStore(result.searchUri);
    const summary = JSON.parse((await store.get('results.json'))!.toString()) as Record<string, unknown>;
    assert.equal(summary.logUri, result.logUri);
    assert.equal(summary.trialCount, 6);
    assert.deepEqual(summary.statuses, { completed: 6 });
    assert.equal((summary.best as { trial: number }).trial, result.best.trial);
    const csv = (await store.get('results.csv'))!.toString().trim().split('\n');
    assert.equal(csv.length, 7);
    assert.deepEqual(csv.slice(1).map((l) => Number(l.split(',')[0])), [1, 2, 3, 4, 5, 6]);
    // Each trial: a row when it started, and one when it ended (or one row if both fell in one segment).
    for (const t of table) assert.ok(rows.some((r) => r.kind === 'trial' && r.trial === t.trial && r.status === 'completed'));

    const cli = await runDurableTrain(['trials', workflowId, '--json', '--max-rows', '1000'], { TEMPORAL_ADDRESS: stack.address });
    assert.equal(cli.code, 0, cli.stderr);
    const page = JSON.parse(cli.stdout) as { searchUri: string; rows: SearchLogRow[]; end: boolean };
    assert.equal(page.searchUri, result.searchUri);
    assert.deepEqual(page.rows, rows);
    assert.equal(page.end, true);
  });
});
