/** `durable-train schedule …`: retraining on a Temporal Schedule, through src/schedules.ts. */
import type { Duration } from '@temporalio/common';
import { taskQueueFromEnv } from '../connection';
import {
  createRetrainSchedule,
  deleteRetrainSchedule,
  describeRetrainSchedule,
  listRetrainSchedules,
  pauseRetrainSchedule,
  triggerRetrainSchedule,
  unpauseRetrainSchedule,
} from '../schedules';
import { EXIT, UsageError, type Flags } from './args';
import { readConfigFile } from './config-file';
import type { Io, LazyClient } from './context';
import { renderScheduleRow } from './render';

const DURATION = /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/;

export async function scheduleCommand(positional: readonly string[], flags: Flags, io: Io, client: LazyClient): Promise<number> {
  const json = flags.json ?? false;
  const [sub, arg] = positional;
  const needScheduleId = (): string => {
    if (!arg) throw new UsageError(`schedule ${sub} needs a schedule id`);
    return arg;
  };
  switch (sub) {
    case 'create': {
      if (!arg) throw new UsageError('schedule create needs a retrain config file: durable-train schedule create <retrain.json> --schedule-id ID');
      const input = readConfigFile(arg, 'retrain') as Record<string, unknown>;
      const scheduleId = flags['schedule-id'];
      if (!scheduleId) throw new UsageError('schedule create needs --schedule-id ID');
      const { cron, every, timezone, note } = flags;
      if (every !== undefined && !DURATION.test(every)) throw new UsageError(`Expected \`--every\` to be a duration such as 24h, 30m or 1d, got ${JSON.stringify(every)}`);
      const taskQueue = flags['task-queue'] ?? taskQueueFromEnv();
      const workflowId = flags['workflow-id'];
      await createRetrainSchedule(await client(), {
        scheduleId,
        input,
        taskQueue,
        ...(cron !== undefined && { cron: [cron] }),
        ...(every !== undefined && { every: [every as Duration] }),
        ...(timezone !== undefined && { timezone }),
        ...(workflowId !== undefined && { workflowId }),
        ...(note !== undefined && { note }),
        paused: flags.paused ?? false,
      });
      const when = cron ? `cron ${cron}` : every ? `every ${every}` : 'only when triggered';
      io.out(json ? JSON.stringify({ scheduleId, taskQueue, cron: cron ?? null, every: every ?? null }) : `Created schedule ${scheduleId} (${when}) on task queue ${taskQueue}`);
      return EXIT.ok;
    }
    case 'list': {
      const rows = await listRetrainSchedules(await client());
      if (json) io.out(JSON.stringify(rows));
      else if (rows.length === 0) io.out('No retraining schedules');
      else for (const r of rows) io.out(renderScheduleRow(r));
      return EXIT.ok;
    }
    case 'describe': {
      const d = await describeRetrainSchedule(await client(), needScheduleId());
      io.out(json ? JSON.stringify(d) : `${renderScheduleRow(d)}\ninput ${JSON.stringify(d.input)}`);
      return EXIT.ok;
    }
    case 'pause':
    case 'unpause': {
      const id = needScheduleId();
      await (sub === 'pause' ? pauseRetrainSchedule : unpauseRetrainSchedule)(await client(), id, flags.note);
      io.out(json ? JSON.stringify({ scheduleId: id, paused: sub === 'pause' }) : `${sub === 'pause' ? 'Paused' : 'Unpaused'} schedule ${id}`);
      return EXIT.ok;
    }
    case 'trigger': {
      const id = needScheduleId();
      await triggerRetrainSchedule(await client(), id);
      io.out(json ? JSON.stringify({ scheduleId: id, triggered: true }) : `Triggered schedule ${id} (skipped if a retrain of it is running)`);
      return EXIT.ok;
    }
    case 'delete': {
      const id = needScheduleId();
      await deleteRetrainSchedule(await client(), id);
      io.out(json ? JSON.stringify({ scheduleId: id, deleted: true }) : `Deleted schedule ${id}`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`Unknown schedule command \`${sub ?? ''}\`: expected create, list, describe, pause, unpause, trigger or delete`);
  }
}
