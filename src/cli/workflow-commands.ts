/** The commands about runs: train, search, retrain, watch, status, stop/pause/resume, list. */
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { RetrainResult } from '../workflows/retrain-model';
import { taskQueueFromEnv } from '../connection';
import { EXIT, UsageError, type Flags } from './args';
import { readConfigFile } from './config-file';
import type { Io, LazyClient } from './context';
import { Observer } from './heartbeat';
import { renderListRow, type ListRow, type ListRetrain } from './render';
import { forTerminal, jsonForTerminal } from './terminal';
import { failureOf, observe, watch } from './watch';
import { WORKFLOW_TYPES } from '../workflow-types';

/** A finished retrain's decision for `list`, from its result (history: no worker needed). */
async function retrainDecision(client: Client, workflowId: string, runId: string): Promise<ListRetrain | null> {
  const result = (await client.workflow.getHandle(workflowId, runId).result().catch(() => undefined)) as Partial<RetrainResult> | undefined;
  if (!result?.decision || !result.train) return null;
  return { promoted: result.decision.promoted, challenger: result.train.runId, champion: result.decision.champion?.runId ?? null };
}

export const WORKFLOW_COMMANDS = ['train', 'search', 'retrain', 'watch', 'status', 'stop', 'pause', 'resume', 'list'] as const;
export type WorkflowCommand = (typeof WORKFLOW_COMMANDS)[number];

export async function workflowCommand(command: WorkflowCommand, positional: readonly string[], flags: Flags, io: Io, client: LazyClient): Promise<number> {
  const json = flags.json ?? false;
  const needId = (): string => {
    const id = positional[0];
    if (!id) throw new UsageError(`${command} needs a workflow id`);
    return id;
  };
  switch (command) {
    case 'train':
    case 'search':
    case 'retrain': {
      const file = positional[0];
      if (!file) throw new UsageError(`${command} needs a config file: durable-train ${command} <config.json>`);
      const input = readConfigFile(file, command);
      const c = await client();
      const workflowId = flags['workflow-id'] ?? `${path.basename(file, '.json')}-${Date.now().toString(36)}`;
      const taskQueue = flags['task-queue'] ?? taskQueueFromEnv();
      const type = WORKFLOW_TYPES[command];
      const handle = await c.workflow.start(type, { taskQueue, workflowId, args: [input] });
      io.out(json ? jsonForTerminal({ workflowId, temporalRunId: handle.firstExecutionRunId, taskQueue, type }) : `Started ${forTerminal(workflowId)} (${type}) on task queue ${forTerminal(taskQueue)}`);
      if (flags.wait) return await watch(handle, io, 1000, json);
      return EXIT.ok;
    }
    case 'watch': {
      const id = needId();
      const seconds = Number(flags.interval ?? 1);
      if (!(seconds > 0)) throw new UsageError(`Expected \`--interval\` to be a number of seconds above 0, got ${String(flags.interval)}`);
      return await watch((await client()).workflow.getHandle(id), io, seconds * 1000, json);
    }
    case 'status': {
      const id = needId();
      const handle = (await client()).workflow.getHandle(id);
      const description = await handle.describe();
      const status = description.status.name;
      const frame = await observe(handle, description, new Observer(), Infinity, 0);
      // A run that ended other than by completing: its cause, and exit 1 (as watch and --wait).
      const failed = status !== 'RUNNING' && status !== 'COMPLETED' && status !== 'CONTINUED_AS_NEW';
      const cause = failed ? await failureOf(handle) : null;
      if (json) {
        io.out(jsonForTerminal({ workflowId: id, type: description.type, status, progress: frame?.json ?? null, ...(failed && { failure: cause }) }));
      } else {
        io.out(`${forTerminal(id)} (${forTerminal(description.type)}): ${status}${frame ? `\n${frame.lines.join('\n')}` : ''}${cause ? `\ncause: ${cause}` : ''}`);
      }
      return failed ? EXIT.runFailed : EXIT.ok;
    }
    case 'stop':
    case 'pause':
    case 'resume': {
      const id = needId();
      await (await client()).workflow.getHandle(id).signal(command);
      io.out(json ? jsonForTerminal({ workflowId: id, signal: command }) : `Sent ${command} to ${forTerminal(id)}`);
      return EXIT.ok;
    }
    case 'list': {
      const query = flags.query ?? `WorkflowType IN (${Object.values(WORKFLOW_TYPES).map((t) => `"${t}"`).join(', ')})`;
      const limit = Number(flags.limit ?? 20);
      if (!(Number.isInteger(limit) && limit > 0)) throw new UsageError(`Expected \`--limit\` to be a whole number from 1 and up, got ${String(flags.limit)}`);
      const rows: ListRow[] = [];
      const c = await client();
      for await (const w of c.workflow.list({ query })) {
        const sa = w.searchAttributes as Record<string, unknown[] | undefined>;
        rows.push({
          workflowId: w.workflowId,
          type: w.type,
          status: w.status.name,
          trainStatus: sa.DurableTrainStatus?.[0] ?? null,
          epoch: sa.DurableTrainEpoch?.[0] ?? null,
          bestMetric: sa.DurableTrainBestMetric?.[0] ?? null,
          startTime: w.startTime.toISOString(),
          closeTime: w.closeTime?.toISOString() ?? null,
          ...(w.type === WORKFLOW_TYPES.retrain && w.status.name === 'COMPLETED' && { retrain: await retrainDecision(c, w.workflowId, w.runId) }),
        });
        if (rows.length >= limit) break;
      }
      if (json) io.out(jsonForTerminal(rows));
      else for (const r of rows) io.out(renderListRow(r, Date.now()));
      return EXIT.ok;
    }
  }
}
