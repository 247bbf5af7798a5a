/**
 * The durable-train command line. Connection settings come from the same environment variables
 * and config profiles as the Temporal CLI.
 *
 * Exit codes: 0 success (for --wait/watch: the run completed or stopped early, the retrain
 * finished whether it promoted or not, the search finished), 1 the run failed, was cancelled or
 * terminated, 2 bad usage or a bad config file (nothing was started), 3 the Temporal server could
 * not be reached or the workflow or schedule was not found.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  Client,
  Connection,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type WorkflowHandle,
} from '@temporalio/client';
import { parseRetrainConfig } from '../config/retrain-config';
import { parseTrainConfig } from '../config/train-config';
import { ConfigError, describe, isObject } from '../config/validate';
import { connectionSettings, taskQueueFromEnv } from '../connection';
import {
  createRetrainSchedule,
  deleteRetrainSchedule,
  describeRetrainSchedule,
  listRetrainSchedules,
  pauseRetrainSchedule,
  triggerRetrainSchedule,
  unpauseRetrainSchedule,
} from '../schedules';
import type { RetrainProgress, RetrainResult } from '../workflows/retrain-model';
import type { TrainProgress } from '../workflows/train-model';
import { renderProgress, renderRetrainProgress, renderRetrainResult, renderScheduleRow, renderSearchProgress } from './render';

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
      const valued = ['workflow-id', 'task-queue', 'interval', 'query', 'limit', 'schedule-id', 'cron', 'every', 'timezone', 'note'];
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

  train <config.json> [--workflow-id ID] [--task-queue Q] [--wait]     start a trainModel run
  search <config.json> [--workflow-id ID] [--task-queue Q] [--wait]    start a hyperparameterSearch
  retrain <config.json> [--workflow-id ID] [--task-queue Q] [--wait]   start a retrainModel (warm start from the champion,
                                                                       train, compare, promote only if better)
  watch <workflowId> [--interval SECONDS]                              live progress until the run ends
  status <workflowId>                                                  one progress snapshot
  stop | pause | resume <workflowId>                                   control a run (a retrain passes them to its training)
  list [--query 'DurableTrainStatus="training"'] [--limit N]           runs, retrains and searches, through visibility

  schedule create <retrain.json> --schedule-id ID [--cron '0 3 * * *' | --every 24h] [--timezone TZ]
                  [--workflow-id BASE] [--task-queue Q] [--paused] [--note TEXT]
                                                                       retrain on a schedule (overlap policy: skip)
  schedule list | describe <scheduleId>                                retraining schedules
  schedule pause | unpause <scheduleId> [--note TEXT]
  schedule trigger <scheduleId>                                        retrain now (skipped while one of it runs)
  schedule delete <scheduleId>

  --json   machine-readable output (every read command, and the start commands)
Exit codes: 0 done, 1 the run failed, 2 bad usage or a bad config file (nothing was started),
3 the server, the workflow or the schedule was not found.
Connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE, ... as for the Temporal CLI.`;

export type ConfigKind = 'train' | 'retrain' | 'search';

/**
 * Reads and validates a config file; every problem names the file and the field. `search` inputs
 * are only checked to be a JSON object here: the workflow validates them field by field.
 */
export function readConfigFile(file: string, kind: ConfigKind = 'train'): unknown {
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
    if (kind === 'train') parseTrainConfig(input);
    else if (kind === 'retrain') parseRetrainConfig(input);
    else if (!isObject(input)) throw new UsageError(`${file}: Expected the file to hold a hyperparameterSearch input (a JSON object), got ${describe(input)}`);
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

/** One line (or a few) describing where a workflow of any of our types is. */
async function snapshot(handle: WorkflowHandle, type: string, json: boolean): Promise<string | undefined> {
  if (type === 'retrainModel') {
    const retrain = await handle.query<RetrainProgress>('retrainProgress').catch(() => undefined);
    if (!retrain) return undefined;
    const train =
      retrain.phase === 'training'
        ? await handle.client.getHandle(retrain.trainWorkflowId).query<TrainProgress>('progress').catch(() => undefined)
        : undefined;
    return json ? JSON.stringify({ retrain, train: train ?? null }) : renderRetrainProgress(retrain, train);
  }
  if (type === 'hyperparameterSearch') {
    const board = await handle.query<unknown>('leaderboard').catch(() => undefined);
    if (board === undefined) return undefined;
    return json ? JSON.stringify(board) : renderSearchProgress(board);
  }
  const progress = await handle.query<TrainProgress>('progress').catch(() => undefined);
  if (!progress) return undefined;
  return json ? JSON.stringify(progress) : renderProgress(progress);
}

function finishedLine(workflowId: string, type: string, result: unknown): string {
  if (type === 'retrainModel') return renderRetrainResult(workflowId, result as RetrainResult);
  const r = (isObject(result) ? result : {}) as { status?: unknown; modelUri?: unknown; best?: { modelUri?: unknown; metric?: unknown; value?: unknown } };
  if (type === 'hyperparameterSearch' && r.best) {
    return `Search ${workflowId} finished: best ${String(r.best.metric)} ${String(r.best.value)}; model ${String(r.best.modelUri)}`;
  }
  return `Run ${workflowId} finished: ${String(r.status ?? 'completed')}${r.modelUri ? `; model ${String(r.modelUri)}` : ''}`;
}

/** Follows a run: prints a line (or redraws on a terminal) whenever progress changes; returns the exit code. */
export async function watch(handle: WorkflowHandle, io: Io, intervalMs: number, json: boolean): Promise<number> {
  let lastShown = '';
  for (;;) {
    const description = await handle.describe();
    const status = description.status.name;
    const line = await snapshot(handle, description.type, json);
    if (line !== undefined && line !== lastShown) {
      io.out(line);
      lastShown = line;
    }
    if (status !== 'RUNNING') {
      if (status === 'COMPLETED' || status === 'CONTINUED_AS_NEW') {
        if (status === 'CONTINUED_AS_NEW') {
          handle = handle.client.getHandle(handle.workflowId);
          continue;
        }
        const result = await handle.result();
        io.out(json ? JSON.stringify(result) : finishedLine(handle.workflowId, description.type, result));
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

const WORKFLOW_TYPES = { train: 'trainModel', search: 'hyperparameterSearch', retrain: 'retrainModel' } as const;

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
      case 'train':
      case 'search':
      case 'retrain': {
        const file = positional[0];
        if (!file) throw new UsageError(`${command} needs a config file: durable-train ${command} <config.json>`);
        const input = readConfigFile(file, command);
        conn = await connect();
        const workflowId = (flags.get('workflow-id') as string | undefined) ?? `${path.basename(file, '.json')}-${Date.now().toString(36)}`;
        const taskQueue = (flags.get('task-queue') as string | undefined) ?? taskQueueFromEnv();
        const type = WORKFLOW_TYPES[command];
        const handle = await conn.client.workflow.start(type, { taskQueue, workflowId, args: [input] });
        io.out(json ? JSON.stringify({ workflowId, runId: handle.firstExecutionRunId, taskQueue, type }) : `Started ${workflowId} (${type}) on task queue ${taskQueue}`);
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
        const description = await handle.describe();
        if (json) {
          const line = await snapshot(handle, description.type, true);
          io.out(JSON.stringify({ workflowId: id, type: description.type, status: description.status.name, progress: line === undefined ? null : JSON.parse(line) }));
        } else {
          const line = await snapshot(handle, description.type, false);
          io.out(`${id} (${description.type}): ${description.status.name}${line !== undefined ? `\n${line}` : ''}`);
        }
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
        const query = (flags.get('query') as string | undefined) ?? `WorkflowType IN (${Object.values(WORKFLOW_TYPES).map((t) => `"${t}"`).join(', ')})`;
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
        else for (const r of rows) io.out(`${r.workflowId}\t${r.type}\t${r.status}\t${r.trainStatus ?? '-'}\tepoch ${r.epoch ?? '-'}\tbest ${r.bestMetric ?? '-'}`);
        return EXIT.ok;
      }
      case 'schedule':
        conn = await connect();
        return await scheduleCommand(conn.client, positional, flags, io, json);
      default:
        throw new UsageError(`Unknown command \`${command}\`\n\n${USAGE}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(err.message);
      return EXIT.usage;
    }
    if (err instanceof ScheduleAlreadyRunning) {
      io.err(`A schedule with id ${err.scheduleId} already exists`);
      return EXIT.usage;
    }
    if (err instanceof WorkflowNotFoundError || err instanceof ScheduleNotFoundError) {
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

const DURATION = /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/;

async function scheduleCommand(
  client: Client,
  positional: readonly string[],
  flags: ReadonlyMap<string, string | true>,
  io: Io,
  json: boolean,
): Promise<number> {
  const [sub, arg] = positional;
  const str = (name: string): string | undefined => {
    const v = flags.get(name);
    if (v === true) throw new UsageError(`--${name} needs a value`);
    return v;
  };
  const needScheduleId = (): string => {
    if (!arg) throw new UsageError(`schedule ${sub} needs a schedule id`);
    return arg;
  };
  switch (sub) {
    case 'create': {
      if (!arg) throw new UsageError('schedule create needs a retrain config file: durable-train schedule create <retrain.json> --schedule-id ID');
      const input = readConfigFile(arg, 'retrain') as Record<string, unknown>;
      const scheduleId = str('schedule-id');
      if (!scheduleId) throw new UsageError('schedule create needs --schedule-id ID');
      const cron = str('cron');
      const every = str('every');
      if (every !== undefined && !DURATION.test(every)) throw new UsageError(`Expected \`--every\` to be a duration such as 24h, 30m or 1d, got ${JSON.stringify(every)}`);
      const taskQueue = str('task-queue') ?? taskQueueFromEnv();
      const workflowId = str('workflow-id');
      const timezone = str('timezone');
      const note = str('note');
      await createRetrainSchedule(client, {
        scheduleId,
        input,
        taskQueue,
        ...(cron !== undefined && { cron: [cron] }),
        ...(every !== undefined && { every: [every as `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`] }),
        ...(timezone !== undefined && { timezone }),
        ...(workflowId !== undefined && { workflowId }),
        ...(note !== undefined && { note }),
        paused: flags.has('paused'),
      });
      const when = cron ? `cron ${cron}` : every ? `every ${every}` : 'only when triggered';
      io.out(json ? JSON.stringify({ scheduleId, taskQueue, cron: cron ?? null, every: every ?? null }) : `Created schedule ${scheduleId} (${when}) on task queue ${taskQueue}`);
      return EXIT.ok;
    }
    case 'list': {
      const rows = await listRetrainSchedules(client);
      if (json) io.out(JSON.stringify(rows));
      else if (rows.length === 0) io.out('No retraining schedules');
      else for (const r of rows) io.out(renderScheduleRow(r));
      return EXIT.ok;
    }
    case 'describe': {
      const d = await describeRetrainSchedule(client, needScheduleId());
      io.out(json ? JSON.stringify(d) : `${renderScheduleRow(d)}\ninput ${JSON.stringify(d.input)}`);
      return EXIT.ok;
    }
    case 'pause':
    case 'unpause': {
      const id = needScheduleId();
      const note = str('note');
      await (sub === 'pause' ? pauseRetrainSchedule : unpauseRetrainSchedule)(client, id, note);
      io.out(json ? JSON.stringify({ scheduleId: id, paused: sub === 'pause' }) : `${sub === 'pause' ? 'Paused' : 'Unpaused'} schedule ${id}`);
      return EXIT.ok;
    }
    case 'trigger': {
      const id = needScheduleId();
      await triggerRetrainSchedule(client, id);
      io.out(json ? JSON.stringify({ scheduleId: id, triggered: true }) : `Triggered schedule ${id} (skipped if a retrain of it is running)`);
      return EXIT.ok;
    }
    case 'delete': {
      const id = needScheduleId();
      await deleteRetrainSchedule(client, id);
      io.out(json ? JSON.stringify({ scheduleId: id, deleted: true }) : `Deleted schedule ${id}`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`Unknown schedule command \`${sub ?? ''}\`: expected create, list, describe, pause, unpause, trigger or delete`);
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
