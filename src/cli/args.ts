/** What the command line accepts: the usage text, the flags, and the exit codes. */
import { parseArgs } from 'node:util';
import { forTerminal } from './terminal';

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
  status <workflowId>                                                  one progress snapshot (exit 1 if the run failed)
  stop | pause | resume <workflowId>                                   control a run (a retrain passes them to its training)
  list [--query 'DurableTrainStatus="training"'] [--limit N]           runs, retrains and searches, through visibility
  search-edit <workflowId> --max-parallel N | --max-trials N | --max-epochs N | --stop-trial N | --pause-trial N
              | --resume-trial N | --add-trial JSON ...                edit a running search (durable-train search-edit --help)
  trials <search workflowId | folder URI> [--from-seq N] [--max-rows N]  a page of a search's log of trial rows
                                                                       (durable-train trials --help)
  setup-native [--gpu]                                                 build the native TensorFlow backend for this install

  schedule create <retrain.json> --schedule-id ID --cron '0 3 * * *' [--timezone TZ] | --every 24h | --manual
                  [--workflow-id BASE] [--task-queue Q] [--paused] [--note TEXT]
                                                                       retrain on a schedule (overlap policy: skip);
                                                                       --manual: only when triggered
  schedule list                                                        retraining schedules
  schedule describe <scheduleId>                                       its spec, next times, champion and last decision
  schedule pause | unpause <scheduleId> [--note TEXT]
  schedule trigger <scheduleId>                                        retrain now (skipped while one of it runs)
  schedule delete <scheduleId>

  --json   machine-readable output (every read command, and the start commands)
  --help   this text
Each command takes only its own flags; another command's flag is refused (exit 2).
Exit codes: 0 done, 1 the run failed, 2 bad usage or a bad config file (nothing was started),
3 the server, the workflow or the schedule was not found.
Connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE, ... as for the Temporal CLI.`;

/** Every flag the CLI knows, with its type. Which command takes which is COMMAND_FLAGS's business. */
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
  manual: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type FlagName = keyof typeof OPTIONS;

export type Flags = { readonly [K in FlagName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

const START: readonly FlagName[] = ['workflow-id', 'task-queue', 'wait'];
const CONTROL: readonly FlagName[] = [];

/**
 * The flags each command takes (besides --json and --help), keyed by `command` or `schedule <sub>`,
 * and how many positional arguments it takes at most. A flag of another command is refused: it was
 * a typo or a misunderstanding (`schedule create … --interval 24h` meant `--every`), never ignored.
 */
const COMMAND_FLAGS: Readonly<Record<string, { readonly flags: readonly FlagName[]; readonly positionals: number }>> = {
  train: { flags: START, positionals: 1 },
  search: { flags: START, positionals: 1 },
  retrain: { flags: START, positionals: 1 },
  watch: { flags: ['interval'], positionals: 1 },
  status: { flags: [], positionals: 1 },
  stop: { flags: CONTROL, positionals: 1 },
  pause: { flags: CONTROL, positionals: 1 },
  resume: { flags: CONTROL, positionals: 1 },
  list: { flags: ['query', 'limit'], positionals: 0 },
  help: { flags: [], positionals: 0 },
  'schedule create': { flags: ['schedule-id', 'cron', 'every', 'manual', 'timezone', 'workflow-id', 'task-queue', 'paused', 'note'], positionals: 1 },
  'schedule list': { flags: [], positionals: 0 },
  'schedule describe': { flags: [], positionals: 1 },
  'schedule pause': { flags: ['note'], positionals: 1 },
  'schedule unpause': { flags: ['note'], positionals: 1 },
  'schedule trigger': { flags: [], positionals: 1 },
  'schedule delete': { flags: [], positionals: 1 },
};

export interface ParsedArgs {
  readonly command: string | undefined;
  readonly positional: readonly string[];
  readonly flags: Flags;
}

/** The commands (as `schedule create`) that take this flag, for the message that refuses it elsewhere. */
function takenBy(flag: string): string[] {
  return Object.entries(COMMAND_FLAGS).flatMap(([command, c]) => ((c.flags as readonly string[]).includes(flag) ? [command] : []));
}

function parse(argv: readonly string[], options: Partial<typeof OPTIONS>, strict: boolean) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict, tokens: true });
  } catch (err) {
    // node:util reports usage problems as TypeErrors with an ERR_PARSE_ARGS_* code.
    if (String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) throw new UsageError((err as Error).message);
    throw err;
  }
}

/**
 * Parses argv (without node and the script) for the command it names: a flag that command does not
 * take, a flag without its value or a positional too many is a UsageError naming it.
 */
export function parseCliArgs(argv: readonly string[]): ParsedArgs {
  // First pass, every flag known and none refused: which command is this?
  const { positionals } = parse(argv, OPTIONS, false);
  const [command, sub] = positionals;
  const key = command === 'schedule' ? `schedule ${sub ?? ''}` : (command ?? '');
  const spec = COMMAND_FLAGS[key];
  if (!spec) {
    // Unknown commands are reported by run(); --help still works anywhere.
    const { values, positionals: all } = parse(argv, OPTIONS, true);
    const [c, ...positional] = all;
    return { command: c, positional, flags: values as Flags };
  }
  const allowed = new Set<string>([...spec.flags, 'json', 'help']);
  const options = Object.fromEntries(Object.entries(OPTIONS).filter(([k]) => allowed.has(k))) as Partial<typeof OPTIONS>;
  const loose = parse(argv, OPTIONS, false);
  for (const token of loose.tokens ?? []) {
    if (token.kind !== 'option' || allowed.has(token.name)) continue;
    const elsewhere = takenBy(token.name);
    const takes = [...spec.flags].map((f) => `--${f}`).join(', ');
    throw new UsageError(
      `Unknown option '${forTerminal(token.rawName)}' for \`${key}\`${elsewhere.length > 0 ? ` (it is a flag of ${elsewhere.map((c) => `\`${c}\``).join(', ')})` : ''}; ` +
        `${takes ? `\`${key}\` takes ${takes}, --json and --help` : `\`${key}\` takes only --json and --help`}`,
    );
  }
  const { values, positionals: all } = parse(argv, options, true);
  const [c, ...positional] = all;
  // `schedule <sub>`: the subcommand is the first positional.
  const max = spec.positionals + (command === 'schedule' ? 1 : 0);
  if (positional.length > max && !values.help) {
    const extra = positional.slice(max).map((p) => `\`${forTerminal(p, { max: 60 })}\``).join(' ');
    throw new UsageError(`\`${key}\` takes ${spec.positionals === 0 ? 'no arguments' : `at most ${spec.positionals}`}; got ${extra} too`);
  }
  return { command: c, positional, flags: values as Flags };
}
