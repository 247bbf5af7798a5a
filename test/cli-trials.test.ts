/**
 * `durable-train trials <search folder URI>`: pages through a search's log on the file store,
 * as the CLI prints it and as --json. (A workflow id is resolved through the search's query: the
 * search tests that start a server cover it.)
 *
 *   node --import tsx --test test/cli-trials.test.ts
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { openStore } from '../src/checkpoints/open-store';
import { appendSearchLogSegment } from '../src/checkpoints/search-log';
// tiers: starts nothing: `trials` reads the store; run() reaches a spawn only through other commands.
import { run } from '../src/cli/main';
import type { Io } from '../src/cli/context';
import { tempDir } from './helpers/cleanup';

function capture(): Io & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(...l.split('\n')), err: (l) => errors.push(l), tty: false };
}

const trial = (n: number, status: string, value: number | null) => ({ kind: 'trial', trial: n, id: `trial-${n}`, status, rung: 1, epochs: 2, step: 20, value, params: { 'hyperparameters.learningRate': 0.001 * n } });

async function searchWithLog(): Promise<string> {
  const uri = `${pathToFileURL(tempDir()).href}/search`;
  const store = openStore(uri);
  await appendSearchLogSegment(store, 0, [trial(1, 'running', null), trial(2, 'running', null)]);
  await appendSearchLogSegment(store, 1, [trial(1, 'completed', 0.25), { kind: 'edit', edit: 1, op: 'maxParallel', value: 3 }]);
  await appendSearchLogSegment(store, 2, [trial(2, 'failed', null), { ...trial(3, 'running', null), error: 'x\u001b[31m' }]);
  return uri;
}

test('trials prints a page of the log, row by row, and where the next page starts', async () => {
  const uri = await searchWithLog();
  const io = capture();
  assert.equal(await run(['trials', uri, '--max-rows', '4'], io), 0, io.errors.join('\n'));
  assert.equal(io.lines[0], `${uri}: segments 0–1, 4 rows`);
  assert.match(io.lines[1]!, /^ {2}trial 1 +running +rung 1 +epochs 2 +value - +hyperparameters\.learningRate=0\.001$/);
  assert.match(io.lines[3]!, /^ {2}trial 1 +completed +rung 1 +epochs 2 +value 0\.25 /);
  assert.match(io.lines[4]!, /^ {2}edit +\{"kind":"edit","edit":1,"op":"maxParallel","value":3\}$/);
  assert.equal(io.lines.at(-1), 'more: --from-seq 2');

  const next = capture();
  assert.equal(await run(['trials', uri, '--from-seq', '2'], next), 0);
  assert.equal(next.lines[0], `${uri}: segments 2–2, 2 rows`);
  // What a row carries is escaped for the terminal.
  assert.ok(!next.lines.join('\n').includes('\u001b'), 'no raw escape reaches the terminal');
  assert.equal(next.lines.at(-1), 'end of the log so far (next segment 3 not written yet)');
});

test('trials --json gives the rows as stored and the next sequence number', async () => {
  const uri = await searchWithLog();
  const io = capture();
  assert.equal(await run(['trials', uri, '--json'], io), 0);
  const page = JSON.parse(io.lines.join('\n'));
  assert.equal(page.searchUri, uri);
  assert.deepEqual(page.rows.map((r: { kind: string; trial?: number }) => `${r.kind}${r.trial ?? ''}`), ['trial1', 'trial2', 'trial1', 'edit', 'trial2', 'trial3']);
  assert.deepEqual([page.nextSeq, page.segments, page.end], [3, 3, true]);
});

test('trials refuses bad usage with exit 2, naming the flag', async () => {
  for (const [argv, message] of [
    [['trials'], /exactly one search workflow id or folder URI, got 0/],
    [['trials', 'file:///x', '--max-rows', '0'], /`--max-rows` to be a whole number from 1/],
    [['trials', 'file:///x', '--from-seq', '-3'], /--from-seq/],
    [['trials', 'file:///x', '--interval', '3'], /Unknown option '--interval'/],
  ] as const) {
    const io = capture();
    assert.equal(await run([...argv], io), 2, argv.join(' '));
    assert.match(io.errors.join('\n'), message);
  }
});
