/** `durable-train schedule …`: retraining on a Temporal Schedule, through src/schedules.ts. */
import { ServiceError, isGrpcServiceError } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { formatIssue } from '../config/validate';
import { taskQueueFromEnv } from '../connection';
import {
  createRetrainSchedule,
  deleteRetrainSchedule,
  describeRetrainSchedule,
  listRetrainSchedules,
  pauseRetrainSchedule,
  scheduleSpecIssues,
  triggerRetrainSchedule,
  unpauseRetrainSchedule,
} from '../schedules';
import { EXIT, UsageError, type Flags } from './args';
import { readConfigFile } from './config-file';
import type { Io, LazyClient } from './context';
import { renderScheduleDescription, renderScheduleRow } from './render';
import { forTerminal, jsonForTerminal } from './terminal';

/** gRPC's status code for a request the server refuses as malformed. */
const INVALID_ARGUMENT = 3;

export async function scheduleCommand(positional: readonly string[], flags: Flags, io: Io, client: LazyClient): Promise<number> {
  const json = flags.json ?? false;
  const [sub, arg] = positional;
  const needScheduleId = (): string => {
    if (!arg) throw new UsageError(`schedule ${sub} needs a schedule id`);
    return arg;
  };
  switch (sub) {
    case 'create': {
      if (!arg) throw new UsageError('schedule create needs a retrain config file: durable-train schedule create <retrain.json> --schedule-id ID --cron EXPR | --every DURATION | --manual');
      const { cron, every, timezone, note, manual } = flags;
      const scheduleId = flags['schedule-id'];
      // When it runs is never a default: a schedule with no spec only runs when triggered, which
      // nobody who typed `schedule create` without one meant.
      const when = [cron !== undefined && '--cron', every !== undefined && '--every', manual && '--manual'].filter(Boolean);
      if (when.length === 0) throw new UsageError('schedule create needs when to run: --cron EXPR (e.g. --cron \'0 3 * * *\'), --every DURATION (e.g. --every 24h) or --manual (only when triggered)');
      if (when.length > 1) throw new UsageError(`schedule create takes one of --cron, --every and --manual, got ${when.join(' and ')}`);
      if (timezone !== undefined && cron === undefined) throw new UsageError('Expected `--timezone` only with `--cron` (it says in which zone the cron times are), got it with ' + String(when[0]));
      if (!scheduleId) throw new UsageError('schedule create needs --schedule-id ID');
      const issues = scheduleSpecIssues({ ...(cron !== undefined && { cron: [cron] }), ...(every !== undefined && { every: [every as Duration] }), ...(timezone !== undefined && { timezone }) });
      if (issues.length > 0) throw new UsageError(issues.map((i) => formatIssue({ ...i, field: `--${i.field}` })).join('\n'));
      const input = readConfigFile(arg, 'retrain') as Record<string, unknown>;
      const taskQueue = flags['task-queue'] ?? taskQueueFromEnv();
      const workflowId = flags['workflow-id'];
      try {
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
      } catch (err) {
        // What the server refuses in the spec (a cron form our check let through) is still bad usage:
        // the SDK throws the server's `Invalid schedule spec: …` as a TypeError, other refusals as a
        // ServiceError around gRPC's INVALID_ARGUMENT.
        const cause = err instanceof ServiceError ? err.cause : undefined;
        const refused = err instanceof TypeError ? err.message : isGrpcServiceError(cause) && cause.code === INVALID_ARGUMENT ? cause.details : undefined;
        if (refused === undefined) throw err;
        const flag = cron !== undefined ? `--cron ${JSON.stringify(cron)}` : every !== undefined ? `--every ${JSON.stringify(every)}` : '--schedule-id, --workflow-id or --task-queue';
        throw new UsageError(`The server refused the schedule's ${forTerminal(flag, { max: 200 })}: ${forTerminal(refused, { max: 300 })}`);
      }
      const shown = cron ? `cron ${cron}${timezone ? ` ${timezone}` : ''}` : every ? `every ${every}` : 'only when triggered';
      io.out(
        json
          ? jsonForTerminal({ scheduleId, taskQueue, cron: cron ?? null, every: every ?? null, timezone: timezone ?? null, manual: manual ?? false })
          : `Created schedule ${forTerminal(scheduleId)} (${forTerminal(shown)}) on task queue ${forTerminal(taskQueue)}`,
      );
      return EXIT.ok;
    }
    case 'list': {
      const rows = await listRetrainSchedules(await client());
      if (json) io.out(jsonForTerminal(rows));
      else if (rows.length === 0) io.out('No retraining schedules');
      else for (const r of rows) io.out(renderScheduleRow(r));
      return EXIT.ok;
    }
    case 'describe': {
      const d = await describeRetrainSchedule(await client(), needScheduleId());
      io.out(json ? jsonForTerminal(d) : renderScheduleDescription(d));
      return EXIT.ok;
    }
    case 'pause':
    case 'unpause': {
      const id = needScheduleId();
      await (sub === 'pause' ? pauseRetrainSchedule : unpauseRetrainSchedule)(await client(), id, flags.note);
      io.out(json ? jsonForTerminal({ scheduleId: id, paused: sub === 'pause' }) : `${sub === 'pause' ? 'Paused' : 'Unpaused'} schedule ${forTerminal(id)}`);
      return EXIT.ok;
    }
    case 'trigger': {
      const id = needScheduleId();
      await triggerRetrainSchedule(await client(), id);
      io.out(json ? jsonForTerminal({ scheduleId: id, triggered: true }) : `Triggered schedule ${forTerminal(id)} (skipped if a retrain of it is running)`);
      return EXIT.ok;
    }
    case 'delete': {
      const id = needScheduleId();
      await deleteRetrainSchedule(await client(), id);
      io.out(json ? jsonForTerminal({ scheduleId: id, deleted: true }) : `Deleted schedule ${forTerminal(id)}`);
      return EXIT.ok;
    }
    default:
      throw new UsageError(`Unknown schedule command \`${forTerminal(sub ?? '', { max: 60 })}\`: expected create, list, describe, pause, unpause, trigger or delete`);
  }
}
