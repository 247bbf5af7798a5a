/**
 * `durable-train search-edit <workflowId> …`: one live edit of a running hyperparameterSearch,
 * sent as its `editSearch` Update. The search validates it (a refused edit changes nothing and
 * exits 2 with the search's reason) and replies with what changed.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { TrialParams } from '../config/search-types';
import type { SearchEdit } from '../workflows/search/edits';
import { EXIT, UsageError } from './args';
import type { Io, LazyClient } from './context';
import { forTerminal, jsonForTerminal } from './terminal';

const shown = (text: string): string => forTerminal(text, { newlines: true, max: 20_000 });

export const SEARCH_EDIT = 'search-edit';

export const SEARCH_EDIT_USAGE = `Usage: durable-train search-edit <workflowId> <one edit> [--json]
  --max-parallel N        run at most N trials at once from now on
  --max-trials N          let the searcher suggest up to N trials (random, grid, asha)
  --max-epochs N          train trials started from now on to N epochs (grid, random)
  --stop-trial N          stop trial N (a running one stops now and is pruned)
  --pause-trial N         hold trial N (a running one pauses after its epoch; a waiting one does not start)
  --resume-trial N        release a trial held by --pause-trial
  --add-trial JSON|@FILE  add a trial with these values, keyed by searched path (repeatable)`;

const NUMBER_EDITS = {
  'max-parallel': (value: number): SearchEdit => ({ op: 'maxParallel', value }),
  'max-trials': (value: number): SearchEdit => ({ op: 'maxTrials', value }),
  'max-epochs': (value: number): SearchEdit => ({ op: 'maxEpochs', value }),
  'stop-trial': (trial: number): SearchEdit => ({ op: 'stop', trial }),
  'pause-trial': (trial: number): SearchEdit => ({ op: 'pause', trial }),
  'resume-trial': (trial: number): SearchEdit => ({ op: 'resume', trial }),
} as const;
type NumberFlag = keyof typeof NUMBER_EDITS;

const OPTIONS = {
  ...(Object.fromEntries(Object.keys(NUMBER_EDITS).map((k) => [k, { type: 'string' }])) as Record<NumberFlag, { type: 'string' }>),
  'add-trial': { type: 'string', multiple: true },
  json: { type: 'boolean' },
} as const;

function trialValues(text: string): unknown {
  const source = text.startsWith('@') ? fs.readFileSync(text.slice(1), 'utf8') : text;
  try {
    return JSON.parse(source);
  } catch (err) {
    throw new UsageError(`Expected \`--add-trial\` to be a JSON object or @file, got \`${text}\` (${(err as Error).message})`);
  }
}

/** The workflow id and the one edit an argv asks for; a UsageError otherwise. */
export function parseSearchEdit(argv: readonly string[]): { workflowId: string; edit: SearchEdit; json: boolean } {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    if (String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) throw new UsageError(`${(err as Error).message}\n\n${SEARCH_EDIT_USAGE}`);
    throw err;
  }
  const { values, positionals } = parsed;
  const [workflowId, ...extra] = positionals;
  if (!workflowId || extra.length > 0) throw new UsageError(`search-edit needs exactly one workflow id, got ${positionals.length}\n\n${SEARCH_EDIT_USAGE}`);
  const given = (Object.keys(NUMBER_EDITS) as NumberFlag[]).filter((k) => values[k] !== undefined);
  const edits = given.length + (values['add-trial'] ? 1 : 0);
  if (edits !== 1) throw new UsageError(`search-edit takes exactly one edit, got ${edits}\n\n${SEARCH_EDIT_USAGE}`);
  const json = values.json ?? false;
  const flag = given[0];
  if (flag === undefined) return { workflowId, edit: { op: 'addTrials', trials: values['add-trial']!.map(trialValues) as TrialParams[] }, json };
  const text = values[flag]!;
  if (!/^\d+$/.test(text)) throw new UsageError(`Expected \`--${flag}\` to be a whole number, got \`${text}\``);
  return { workflowId, edit: NUMBER_EDITS[flag](Number(text)), json };
}

export async function searchEditCommand(argv: readonly string[], io: Io, client: LazyClient): Promise<number> {
  try {
    if (argv.includes('--help') || argv.includes('-h')) {
      io.out(SEARCH_EDIT_USAGE);
      return EXIT.ok;
    }
    const { workflowId, edit, json } = parseSearchEdit(argv);
    const handle = (await client()).workflow.getHandle(workflowId);
    const reply = await handle.executeUpdate<{ edit: number; changes: string[] }, [SearchEdit]>('editSearch', { args: [edit] });
    io.out(json ? jsonForTerminal({ workflowId, ...reply }) : `Edit ${reply.edit} of ${forTerminal(workflowId)}:\n${reply.changes.map((c) => `  ${forTerminal(c, { max: 500 })}`).join('\n')}`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(shown(err.message));
      return EXIT.usage;
    }
    if (err instanceof WorkflowUpdateFailedError) {
      // The search refused the edit: nothing changed.
      io.err(shown((err.cause as Error | undefined)?.message ?? err.message));
      return EXIT.usage;
    }
    if (err instanceof WorkflowNotFoundError) {
      io.err(shown(err.message));
      return EXIT.unreachable;
    }
    io.err(shown(String((err as Error).message)));
    return (err as { exitCode?: number }).exitCode ?? EXIT.runFailed;
  } finally {
    await client.close();
  }
}
