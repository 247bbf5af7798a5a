/**
 * The durable-train command line. Connection settings come from the same environment variables
 * and config profiles as the Temporal CLI.
 *
 * Exit codes: 0 success (for --wait/watch: the run completed or stopped early), 1 the run failed,
 * was cancelled or terminated, 2 bad usage or a bad config file (nothing was started), 3 the
 * Temporal server could not be reached or the workflow was not found.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { parseTrainConfig } from '../config/train-config';
import { ConfigError } from '../config/validate';
import { connectionSettings, taskQueueFromEnv } from '../connection';
import type { TrainProgress } from '../workflows/train-model';
import { renderProgress } from './render';

export const EXIT = { ok: 0, runFailed: 1, usage: 2, unreachable: 3 } as const;

class UsageError extends Error {}

interface Parsed {
  readonly command: string | undefined;
  readonly positional: string[];
  readonly flags: Map<string, string | true>;
}

export function parseArgs(argv: readonly string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--')) {
      const [key, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
      const valued = ['workflow-id', 'task-queue', 'interval', 'query', 'limit'];
      if (inline !== undefined) flags.set(key, inline);
      else if (valued.includes(key)) {
        const value = argv[++i];
        if (value === undefined) throw new UsageError(`--${key} needs a value`);
        flags.set(key, value);
      } else flags.set(key, true);
    } else positional.push(arg);
  }
  const [command, ...rest] = positional;
  return { command, positional: rest, flags };
}

const USAGE = `Usage: durable-train <command> [options]

  train <config.json> [--workflow-id ID] [--task-queue Q] [--wait]   start a trainModel run
  watch <workflowId> [--interval SECONDS]                              live progress until the run ends
  status <workflowId>                                                  one progress snapshot
  stop | pause | resume <workflowId>                                   control a run
  list [--query 'DurableTrainStatus="training"'] [--limit N]           runs, through visibility

  --json   machine-readable output (status, list, train)
Connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE, ... as for the Temporal CLI.`;

/** Reads and validates a config file; every problem names the file and the field. */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: is not valid JSON (${(err as Error).message})`);
  }
  try {
    parseTrainConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`${file}: ${err.message}`);
    throw err;
  }
  return input;
}

export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** Rewrites the live view in place when the output is a terminal. */
  readonly tty: boolean;
}

const consoleIo: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
  tty: Boolean(process.stdout.isTTY),
};

async function connect(): Promise<{ client: Client; close(): Promise<void> }> {
  const settings = connectionSettings();
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...settings.connectionOptions, connectTimeout: 5000 } as any);
  } catch (err) {
    throw Object.assign(new Error(`Cannot reach Temporal at ${settings.address}: ${(err as Error).message}`), { exitCode: EXIT.unreachable });
  }
  return { client: new Client({ connection, namespace: settings.namespace }), close: () => connection.close() };
}

/** Follows a run: prints a line (or redraws on a terminal) whenever progress changes; returns the exit code. */
export async function watch(handle: WorkflowHandle, io: Io, intervalMs: number, json: boolean): Promise<number> {
  let lastShown = '';
  for (;;) {
    const description = await handle.describe();
    let progress: TrainProgress | undefined;
    try {
      progress = await handle.query<TrainProgress>('progress');
    } catch {
      progress = undefined;
    }
    const status = description.status.name;
    if (progress) {
      const line = json ? JSON.stringify(progress) : renderProgress(progress);
      if (line !== lastShown) {
        io.out(line);
        lastShown = line;
      }
    }
    if (status !== 'RUNNING') {
      if (status === 'COMPLETED' || status === 'CONTINUED_AS_NEW') {
        if (status === 'CONTINUED_AS_NEW') {
          handle = handle.client.getHandle(handle.workflowId);
          continue;
        }
        const result = await handle.result();
        io.out(json ? JSON.stringify(result) : `Run ${handle.workflowId} finished: ${(result as { status: string }).status}; model ${(result as { modelUri: string }).modelUri}`);
        return EXIT.ok;
      }
      io.err(`Run ${handle.workflowId} ended: ${status}`);
      await handle.result().catch((err: unknown) => {
        if (err instanceof WorkflowFailedError) io.err(String(err.cause?.message ?? err.message));
      });
      return EXIT.runFailed;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function run(argv: readonly string[], io: Io = consoleIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    io.err((err as Error).message);
    return EXIT.usage;
  }
  const { command, positional, flags } = parsed;
  const json = flags.has('json');
  if (!command || command === 'help' || flags.has('help')) {
    io.out(USAGE);
    return command ? EXIT.ok : EXIT.usage;
  }
  const needId = (): string => {
    const id = positional[0];
    if (!id) throw new UsageError(`${command} needs a workflow id`);
    return id;
  };
  let conn: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    switch (command) {
      case 'train': {
        const file = positional[0];
        if (!file) throw new UsageError('train needs a config file: durable-train train <config.json>');
        const input = readConfigFile(file);
        conn = await connect();
        const workflowId = (flags.get('workflow-id') as string | undefined) ?? `${path.basename(file, '.json')}-${Date.now().toString(36)}`;
        const taskQueue = (flags.get('task-queue') as string | undefined) ?? taskQueueFromEnv();
        const handle = await conn.client.workflow.start('trainModel', { taskQueue, workflowId, args: [input] });
        io.out(json ? JSON.stringify({ workflowId, runId: handle.firstExecutionRunId, taskQueue }) : `Started ${workflowId} on task queue ${taskQueue}`);
        if (flags.has('wait')) return await watch(handle, io, 1000, json);
        return EXIT.ok;
      }
      case 'watch': {
        const id = needId();
        conn = await connect();
        const seconds = Number(flags.get('interval') ?? 1);
        if (!(seconds > 0)) throw new UsageError(`Expected \`--interval\` to be a number of seconds above 0, got ${String(flags.get('interval'))}`);
        return await watch(conn.client.workflow.getHandle(id), io, seconds * 1000, json);
      }
      case 'status': {
        const id = needId();
        conn = await connect();
        const handle = conn.client.workflow.getHandle(id);
        const [description, progress] = await Promise.all([handle.describe(), handle.query<TrainProgress>('progress').catch(() => undefined)]);
        if (json) io.out(JSON.stringify({ workflowId: id, status: description.status.name, progress: progress ?? null }));
        else io.out(`${id}: ${description.status.name}${progress ? `\n${renderProgress(progress)}` : ''}`);
        return EXIT.ok;
      }
      case 'stop':
      case 'pause':
      case 'resume': {
        const id = needId();
        conn = await connect();
        await conn.client.workflow.getHandle(id).signal(command);
        io.out(json ? JSON.stringify({ workflowId: id, signal: command }) : `Sent ${command} to ${id}`);
        return EXIT.ok;
      }
      case 'list': {
        conn = await connect();
        const query = (flags.get('query') as string | undefined) ?? 'WorkflowType="trainModel"';
        const limit = Number(flags.get('limit') ?? 20);
        const rows: Array<Record<string, unknown>> = [];
        for await (const w of conn.client.workflow.list({ query })) {
          const sa = w.searchAttributes as Record<string, unknown[] | undefined>;
          rows.push({
            workflowId: w.workflowId,
            type: w.type,
            status: w.status.name,
            trainStatus: sa.DurableTrainStatus?.[0] ?? null,
            epoch: sa.DurableTrainEpoch?.[0] ?? null,
            bestMetric: sa.DurableTrainBestMetric?.[0] ?? null,
            startTime: w.startTime.toISOString(),
          });
          if (rows.length >= limit) break;
        }
        if (json) io.out(JSON.stringify(rows));
        else for (const r of rows) io.out(`${r.workflowId}\t${r.status}\t${r.trainStatus ?? '-'}\tepoch ${r.epoch ?? '-'}\tbest ${r.bestMetric ?? '-'}`);
        return EXIT.ok;
      }
      default:
        throw new UsageError(`Unknown command \`${command}\`\n\n${USAGE}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(err.message);
      return EXIT.usage;
    }
    if (err instanceof WorkflowNotFoundError) {
      io.err(err.message);
      return EXIT.unreachable;
    }
    const code = (err as { exitCode?: number }).exitCode;
    io.err((err as Error).message);
    return code ?? EXIT.runFailed;
  } finally {
    await conn?.close();
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
