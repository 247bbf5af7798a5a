/** The commands about runs: train, search, retrain, watch, status, stop/pause/resume, list. */
import path from 'node:path';
import { taskQueueFromEnv } from '../connection';
import { EXIT, UsageError, type Flags } from './args';
import { readConfigFile } from './config-file';
import type { Io, LazyClient } from './context';
import { renderListRow, type ListRow } from './render';
import { snapshot, watch } from './watch';

export const WORKFLOW_TYPES = { train: 'trainModel', search: 'hyperparameterSearch', retrain: 'retrainModel' } as const;
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
      io.out(json ? JSON.stringify({ workflowId, runId: handle.firstExecutionRunId, taskQueue, type }) : `Started ${workflowId} (${type}) on task queue ${taskQueue}`);
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
      const line = await snapshot(handle, description.type, json);
      if (json) {
        io.out(JSON.stringify({ workflowId: id, type: description.type, status: description.status.name, progress: line === undefined ? null : JSON.parse(line) }));
      } else {
        io.out(`${id} (${description.type}): ${description.status.name}${line !== undefined ? `\n${line}` : ''}`);
      }
      return EXIT.ok;
    }
    case 'stop':
    case 'pause':
    case 'resume': {
      const id = needId();
      await (await client()).workflow.getHandle(id).signal(command);
      io.out(json ? JSON.stringify({ workflowId: id, signal: command }) : `Sent ${command} to ${id}`);
      return EXIT.ok;
    }
    case 'list': {
      const query = flags.query ?? `WorkflowType IN (${Object.values(WORKFLOW_TYPES).map((t) => `"${t}"`).join(', ')})`;
      const limit = Number(flags.limit ?? 20);
      if (!(Number.isInteger(limit) && limit > 0)) throw new UsageError(`Expected \`--limit\` to be a whole number from 1 and up, got ${String(flags.limit)}`);
      const rows: ListRow[] = [];
      for await (const w of (await client()).workflow.list({ query })) {
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
        });
        if (rows.length >= limit) break;
      }
      if (json) io.out(JSON.stringify(rows));
      else for (const r of rows) io.out(renderListRow(r, Date.now()));
      return EXIT.ok;
    }
  }
}
