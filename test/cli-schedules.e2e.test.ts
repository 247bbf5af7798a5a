/**
 * `durable-train schedule …` cannot be mis-set: every flag of another command, every missing or
 * conflicting spec and every bad cron, interval or time zone (the server's own refusals included)
 * exits 2 with a message naming the flag and creates nothing. `schedule describe` shows the spec,
 * the next fire times and the champion with its decision; `status` and `list` of a retrain say what
 * was promoted over what. Against a real dev server and worker.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { RetrainResult } from '../src/workflows';
import { tinyInput } from './e2e-support';
import { runDurableTrain, tempDir, uniqueId, useStackAndWorker, waitFor } from './helpers/temporal';

const cli = runDurableTrain;

function retrainFile(modelName: string): string {
  const file = path.join(tempDir(), 'retrain.json');
  fs.writeFileSync(file, JSON.stringify({
    modelName,
    train: tinyInput({
      maxEpochs: 3,
      data: {
        train: { name: 'synthetic', params: { size: 256, noise: 1.5, seed: 7 } },
        eval: { name: 'synthetic', split: 'test', params: { size: 128, noise: 1.5, seed: 7 } },
      },
    }),
  }));
  return file;
}

describe('schedules that cannot be mis-set', () => {
  const harness = useStackAndWorker();

  test('schedule create: each mis-set exits 2 naming the flag, and creates nothing', async () => {
    const file = retrainFile(uniqueId('m'));
    const cases: Array<[string[], RegExp]> = [
      [['--interval', '24h'], /Unknown option '--interval' for `schedule create` \(it is a flag of `watch`\)/],
      [['--limit', '3'], /Unknown option '--limit' for `schedule create` \(it is a flag of `list`\)/],
      [[], /schedule create needs when to run: --cron EXPR .*, --every DURATION .* or --manual/],
      [['--cron', '0 3 * * *', '--every', '24h'], /schedule create takes one of --cron, --every and --manual, got --cron and --every/],
      [['--manual', '--every', '24h'], /takes one of --cron, --every and --manual, got --every and --manual/],
      [['--cron', 'daily'], /Expected `--cron` to be a cron expression of 5 fields .* \(it has 1 field\), got `"daily"` \(string\)/],
      [['--cron', '0 25 * * *'], /Expected `--cron` to be .*\(its hour field `25` is not a number from 0 to 23/],
      [['--cron', '0 3 * * 5-1'], /Expected `--cron` to be .*day-of-week field `5-1` has a range that ends before it starts/],
      [['--cron', '@nightly'], /Expected `--cron` to be .*`@nightly`/],
      // A form our check leaves to the server (Quartz's L): the server's refusal, as our usage error.
      [['--cron', '0 3 L * *'], /The server refused the schedule's --cron "0 3 L \* \*": DayOfMonth is not in range \[1-31\]/],
      [['--every', 'nightly'], /Expected `--every` to be a duration such as 24h, 30m or 1d \(it is not a number followed by ms, s, m, h or d\), got `"nightly"`/],
      [['--every', '0s'], /Expected `--every` to be a duration .*\(it is shorter than one second\)/],
      [['--cron', '0 3 * * *', '--timezone', 'Mars/Base'], /Expected `--timezone` to be a time zone .*, got `"Mars\/Base"`/],
      [['--every', '24h', '--timezone', 'UTC'], /Expected `--timezone` only with `--cron`/],
    ];
    const ids: string[] = [];
    for (const [flags, message] of cases) {
      const scheduleId = uniqueId('missed');
      ids.push(scheduleId);
      const r = await cli(['schedule', 'create', file, '--schedule-id', scheduleId, ...flags], harness.cliEnv);
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, flags.join(' '));
      assert.doesNotMatch(r.stdout, /Created/);
    }
    for (const scheduleId of ids) assert.equal((await cli(['schedule', 'describe', scheduleId], harness.cliEnv)).code, 3, `${scheduleId} must not exist`);
    // --manual is the explicit way to a schedule that only runs when triggered.
    const manual = uniqueId('manual');
    const created = await cli(['schedule', 'create', file, '--schedule-id', manual, '--manual'], harness.cliEnv);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /\(only when triggered\)/);
    assert.match((await cli(['schedule', 'describe', manual], harness.cliEnv)).stdout, /runs +only when triggered/);
    assert.equal((await cli(['schedule', 'delete', manual], harness.cliEnv)).code, 0);
  });

  test('describe shows spec, next times, champion and decision; status and list say what was promoted over what', { timeout: 300_000 }, async () => {
    const modelName = uniqueId('sched-m');
    const scheduleId = uniqueId('yearly');
    const file = retrainFile(modelName);
    const created = await cli(['schedule', 'create', file, '--schedule-id', scheduleId, '--cron', '0 3 1 1 *', '--timezone', 'Europe/Berlin'], harness.cliEnv);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /\(cron 0 3 1 1 \* Europe\/Berlin\)/);
    try {
      const fresh = await cli(['schedule', 'describe', scheduleId], harness.cliEnv);
      console.log(fresh.stdout);
      assert.equal(fresh.code, 0, fresh.stderr);
      assert.match(fresh.stdout, /\nruns +cron 0 3 1 1 \* \(Europe\/Berlin\)\n/);
      // 03:00 in Berlin on 1 January is 02:00 UTC.
      assert.match(fresh.stdout, /\nnext +20\d\d-01-01T02:00:00\.000Z {2}20\d\d-01-01T02:00:00\.000Z/);
      assert.match(fresh.stdout, /\nchampion +none yet/);

      const runs: Array<{ workflowId: string; result: RetrainResult }> = [];
      for (let n = 1; n <= 2; n++) {
        assert.equal((await cli(['schedule', 'trigger', scheduleId], harness.cliEnv)).code, 0);
        const workflowId = await waitFor(async () => {
          const d = JSON.parse((await cli(['schedule', 'describe', scheduleId, '--json'], harness.cliEnv)).stdout);
          return d.recentRuns[n - 1]?.workflowId as string | undefined;
        }, 60_000, `retrain ${n}`);
        runs.push({ workflowId, result: (await harness.stack.client.workflow.getHandle(workflowId).result()) as RetrainResult });
      }
      const [first, second] = runs as [(typeof runs)[0], (typeof runs)[0]];
      assert.equal(first.result.promoted, true);
      const champion = second.result.promoted ? second.result.train.runId : first.result.train.runId;

      const described = await cli(['schedule', 'describe', scheduleId], harness.cliEnv);
      console.log(described.stdout);
      assert.match(described.stdout, new RegExp(`\\nchampion +${champion} val_loss \\d\\.\\d{4} +since \\S+ +model file:`));
      assert.match(described.stdout, new RegExp(`\\ndecision +#2 ${second.result.promoted ? 'promoted' : 'rejected'} ${second.result.train.runId} \\(retrain ${second.workflowId}, `));

      const status = await cli(['status', second.workflowId], harness.cliEnv);
      console.log(status.stdout);
      assert.equal(status.code, 0, status.stderr);
      const words = second.result.promoted
        ? `${second.result.train.runId} \\(val_loss \\d\\.\\d{4}\\) over ${first.result.train.runId} \\(val_loss \\d\\.\\d{4}\\)`
        : `${second.result.train.runId} \\(val_loss \\d\\.\\d{4}\\); champion ${first.result.train.runId} \\(val_loss \\d\\.\\d{4}\\) kept`;
      assert.match(status.stdout, new RegExp(`\\nretrain ${modelName}: ${second.result.promoted ? 'promoted' : 'rejected'} {2}${words}`));
      const firstStatus = await cli(['status', first.workflowId], harness.cliEnv);
      assert.match(firstStatus.stdout, new RegExp(`retrain ${modelName}: promoted {2}${first.result.train.runId} \\(val_loss \\d\\.\\d{4}\\), the first champion`));

      const listed = await waitFor(async () => {
        const r = await cli(['list', '--query', `WorkflowId="${second.workflowId}"`], harness.cliEnv);
        return r.stdout.includes(second.workflowId) && r.stdout;
      }, 30_000, 'the retrain in list');
      console.log(listed);
      const decided = second.result.promoted ? `promoted ${second.result.train.runId} over ${first.result.train.runId}` : `rejected ${second.result.train.runId}, kept ${first.result.train.runId}`;
      assert.ok(listed.includes(`\t${decided}\ttook `), listed);
      assert.doesNotMatch(listed, /best -/);
    } finally {
      await cli(['schedule', 'delete', scheduleId], harness.cliEnv);
    }
  });
});
