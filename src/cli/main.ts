/**
 * The durable-train command line. Connection settings come from the same environment variables
 * and config profiles as the Temporal CLI.
 *
 * Exit codes: 0 success (for --wait/watch: the run completed or stopped early, the retrain
 * finished whether it promoted or not, the search finished), 1 the run failed, was cancelled or
 * terminated, 2 bad usage or a bad config file (nothing was started), 3 the Temporal server could
 * not be reached or the workflow or schedule was not found.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, WorkflowNotFoundError } from '@temporalio/client';
import { EXIT, USAGE, UsageError, parseCliArgs, type ParsedArgs } from './args';
import { consoleIo, lazyClient, type Io } from './context';
import { forTerminal } from './terminal';
import { scheduleCommand } from './schedule-commands';
import { SEARCH_EDIT, searchEditCommand } from './search-edit';
import { SETUP_NATIVE, setupNativeCommand } from './setup-native';
import { TRIALS, trialsCommand } from './trials';
import { WORKFLOW_COMMANDS, workflowCommand, type WorkflowCommand } from './workflow-commands';

export { EXIT, USAGE, parseCliArgs } from './args';
export { readConfigFile, type ConfigKind } from './config-file';
export type { Io } from './context';
export { watch } from './watch';

const isWorkflowCommand = (c: string): c is WorkflowCommand => (WORKFLOW_COMMANDS as readonly string[]).includes(c);

/** Runs one command line (argv without node and the script); resolves to the exit code. */
export async function run(argv: readonly string[], io: Io = consoleIo): Promise<number> {
  if (argv[0] === SEARCH_EDIT) return searchEditCommand(argv.slice(1), io, lazyClient());
  if (argv[0] === SETUP_NATIVE) return setupNativeCommand(argv.slice(1), io);
  if (argv[0] === TRIALS) return trialsCommand(argv.slice(1), io, lazyClient());
  let parsed: ParsedArgs;
  try {
    parsed = parseCliArgs(argv);
  } catch (err) {
    io.err(`${forTerminal((err as Error).message, { newlines: true })}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const { command, positional, flags } = parsed;
  if (!command || command === 'help' || flags.help) {
    io.out(USAGE);
    return command || flags.help ? EXIT.ok : EXIT.usage;
  }
  const client = lazyClient();
  try {
    if (isWorkflowCommand(command)) return await workflowCommand(command, positional, flags, io, client);
    if (command === 'schedule') return await scheduleCommand(positional, flags, io, client);
    throw new UsageError(`Unknown command \`${forTerminal(command, { max: 60 })}\`\n\n${USAGE}`);
  } catch (err) {
    // Messages carry ids and the server's words: escaped, line breaks kept.
    const message = (err as Error).message;
    const shown = forTerminal(typeof message === 'string' ? message : String(err), { newlines: true, max: 20_000 });
    if (err instanceof UsageError) {
      io.err(shown);
      return EXIT.usage;
    }
    if (err instanceof ScheduleAlreadyRunning) {
      io.err(`A schedule with id ${forTerminal(err.scheduleId)} already exists`);
      return EXIT.usage;
    }
    if (err instanceof WorkflowNotFoundError || err instanceof ScheduleNotFoundError) {
      io.err(shown);
      return EXIT.unreachable;
    }
    const code = (err as { exitCode?: number }).exitCode;
    io.err(shown);
    return code ?? EXIT.runFailed;
  } finally {
    await client.close();
  }
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(EXIT.runFailed);
    },
  );
}
