/** What the command line accepts: the usage text, the flags, and the exit codes. */
import { parseArgs } from 'node:util';

export const EXIT = { ok: 0, runFailed: 1, usage: 2, unreachable: 3 } as const;

/** Bad usage or a bad config file: exit 2, nothing was started. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const USAGE = `Usage: durable-train <command> [options]

  train <config.json> [--workflow-id ID] [--task-queue Q] [--wait]     start a trainModel run
  search <config.json> [--workflow-id ID] [--task-queue Q] [--wait]    start a hyperparameterSearch
  retrain <config.json> [--workflow-id ID] [--task-queue Q] [--wait]   start a retrainModel (warm start from the champion,
                                                                       train, compare, promote only if better)
  watch <workflowId> [--interval SECONDS]                              live progress until the run ends
  status <workflowId>                                                  one progress snapshot
  stop | pause | resume <workflowId>                                   control a run (a retrain passes them to its training)
  list [--query 'DurableTrainStatus="training"'] [--limit N]           runs, retrains and searches, through visibility
  search-edit <workflowId> --max-parallel N | --max-trials N | --max-epochs N | --stop-trial N | --pause-trial N
              | --resume-trial N | --add-trial JSON ...                edit a running search (durable-train search-edit --help)
  setup-native [--gpu]                                                 build the native TensorFlow backend for this install

  schedule create <retrain.json> --schedule-id ID [--cron '0 3 * * *' | --every 24h] [--timezone TZ]
                  [--workflow-id BASE] [--task-queue Q] [--paused] [--note TEXT]
                                                                       retrain on a schedule (overlap policy: skip)
  schedule list | describe <scheduleId>                                retraining schedules
  schedule pause | unpause <scheduleId> [--note TEXT]
  schedule trigger <scheduleId>                                        retrain now (skipped while one of it runs)
  schedule delete <scheduleId>

  --json   machine-readable output (every read command, and the start commands)
  --help   this text
Exit codes: 0 done, 1 the run failed, 2 bad usage or a bad config file (nothing was started),
3 the server, the workflow or the schedule was not found.
Connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE, ... as for the Temporal CLI.`;

const OPTIONS = {
  'workflow-id': { type: 'string' },
  'task-queue': { type: 'string' },
  interval: { type: 'string' },
  query: { type: 'string' },
  limit: { type: 'string' },
  'schedule-id': { type: 'string' },
  cron: { type: 'string' },
  every: { type: 'string' },
  timezone: { type: 'string' },
  note: { type: 'string' },
  json: { type: 'boolean' },
  wait: { type: 'boolean' },
  paused: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type Flags = { readonly [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

export interface ParsedArgs {
  readonly command: string | undefined;
  readonly positional: readonly string[];
  readonly flags: Flags;
}

/** Parses argv (without node and the script); an unknown flag or a flag without its value is a UsageError. */
export function parseCliArgs(argv: readonly string[]): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
    const [command, ...positional] = positionals;
    return { command, positional, flags: values };
  } catch (err) {
    // node:util reports usage problems as TypeErrors with an ERR_PARSE_ARGS_* code.
    if (String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) throw new UsageError((err as Error).message);
    throw err;
  }
}
