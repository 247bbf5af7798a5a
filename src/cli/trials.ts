/**
 * `durable-train trials <search workflow id | search folder URI>`: pages through a search's log
 * (docs/search-log.md) straight from the store, with the CLI's own store access (the worker's
 * allow-list does not apply: the CLI reads what its user can read). A workflow id is resolved to
 * the search's folder by the search's `leaderboard` query, or its result once it has ended.
 */
import { parseArgs } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { openStore as defaultOpenStore } from '../checkpoints/open-store';
import { MAX_SEARCH_LOG_SEQ, readSearchLog, type SearchLogPage, type SearchLogRow } from '../checkpoints/search-log';
import type { CheckpointStore } from '../checkpoints/store';
import { EXIT, UsageError } from './args';
import type { Io, LazyClient } from './context';
import { queryWithin } from './heartbeat';
import { forTerminal, jsonForTerminal } from './terminal';

export const TRIALS = 'trials';

export const TRIALS_USAGE = `Usage: durable-train trials <search workflow id | search folder URI> [--from-seq N] [--max-rows N] [--json]

Prints a page of a hyperparameter search's log (<search folder>/log/<seq>.jsonl, docs/search-log.md):
one line per row, trial rows with their status, rung, epochs, metric value and parameters. Reads the
store directly (gs:// with your Google credentials, file://). A workflow id is resolved to its
search folder through the search's leaderboard query (a worker must be running) or its result.
  --from-seq N   first segment to read (default 0); each page ends with the --from-seq of the next
  --max-rows N   stop before the segment that would pass N rows (default 1000)
  --json         {"searchUri","rows","nextSeq","segments","end"}`;

const OPTIONS = {
  'from-seq': { type: 'string' },
  'max-rows': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface TrialsArgs {
  readonly target: string;
  readonly fromSeq: number;
  readonly maxRows: number;
  readonly json: boolean;
}

function wholeNumber(flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`Expected \`--${flag}\` to be a whole number from ${min} to ${max}, got \`${forTerminal(text, { max: 40 })}\``);
  return n;
}

export function parseTrialsArgs(argv: readonly string[]): TrialsArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    if (String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) throw new UsageError(`${(err as Error).message}\n\n${TRIALS_USAGE}`);
    throw err;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError(`trials needs exactly one search workflow id or folder URI, got ${positionals.length}\n\n${TRIALS_USAGE}`);
  return {
    target: positionals[0]!,
    fromSeq: wholeNumber('from-seq', values['from-seq'], 0, 0, MAX_SEARCH_LOG_SEQ),
    maxRows: wholeNumber('max-rows', values['max-rows'], 1000, 1, 1_000_000),
    json: values.json ?? false,
  };
}

const isUri = (target: string): boolean => /^(file|gs):\/\//.test(target);

/** The search folder of a search workflow: its leaderboard query (running), else its result (completed). */
export async function searchUriOf(handle: WorkflowHandle): Promise<string> {
  const board = await queryWithin<{ searchUri?: unknown }>(handle, 'leaderboard');
  if (typeof board?.searchUri === 'string') return board.searchUri;
  const description = await handle.describe();
  if (description.status.name === 'COMPLETED') {
    const result = (await handle.result()) as { searchUri?: unknown } | undefined;
    if (typeof result?.searchUri === 'string') return result.searchUri;
  }
  throw Object.assign(new Error(`Cannot tell where ${handle.workflowId} keeps its log (${description.type}, ${description.status.name}): no worker answered its leaderboard query. Name the search folder URI instead`), {
    exitCode: EXIT.unreachable,
  });
}

const cell = (v: unknown): string => (v === null || v === undefined ? '-' : typeof v === 'number' ? String(Number(v.toPrecision(6))) : forTerminal(v, { max: 60 }));

/** One row of the log as one line: trial rows as columns, other kinds as their compact JSON. */
export function renderLogRow(row: SearchLogRow): string {
  if (row.kind === 'trial') {
    const params = row.params && typeof row.params === 'object' ? Object.entries(row.params as Record<string, unknown>).map(([k, v]) => `${forTerminal(k, { max: 40 })}=${cell(v)}`).join(' ') : '';
    return [`trial ${cell(row.trial)}`.padEnd(11), cell(row.status).padEnd(10), `rung ${cell(row.rung)}`.padEnd(8), `epochs ${cell(row.epochs)}`.padEnd(11), `value ${cell(row.value)}`.padEnd(17), params, row.error ? ` error: ${cell(row.error)}` : ''].join(' ').trimEnd();
  }
  return `${cell(row.kind ?? 'row').padEnd(10)} ${forTerminal(JSON.stringify(row), { max: 300 })}`;
}

export async function trialsCommand(argv: readonly string[], io: Io, client: LazyClient, open: (uri: string) => CheckpointStore = defaultOpenStore): Promise<number> {
  try {
    if (argv.includes('--help') || argv.includes('-h')) {
      io.out(TRIALS_USAGE);
      return EXIT.ok;
    }
    const args = parseTrialsArgs(argv);
    const searchUri = isUri(args.target) ? args.target : await searchUriOf((await client()).workflow.getHandle(args.target));
    const page: SearchLogPage = await readSearchLog(open(searchUri), { fromSeq: args.fromSeq, maxRows: args.maxRows });
    if (args.json) {
      io.out(jsonForTerminal({ searchUri, ...page }));
      return EXIT.ok;
    }
    io.out(`${forTerminal(searchUri)}: ${page.segments === 0 ? `no segment from ${args.fromSeq}` : `segments ${args.fromSeq}–${page.nextSeq - 1}, ${page.rows.length} rows`}`);
    for (const row of page.rows) io.out(`  ${renderLogRow(row)}`);
    io.out(page.end ? `end of the log so far (next segment ${page.nextSeq} not written yet)` : `more: --from-seq ${page.nextSeq}`);
    return EXIT.ok;
  } catch (err) {
    const message = forTerminal((err as Error).message, { newlines: true, max: 20_000 });
    io.err(message);
    if (err instanceof UsageError) return EXIT.usage;
    if (err instanceof WorkflowNotFoundError) return EXIT.unreachable;
    return (err as { exitCode?: number }).exitCode ?? EXIT.runFailed;
  } finally {
    await client.close();
  }
}
