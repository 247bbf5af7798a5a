/**
 * `durable-train watch`: the renderers as pure functions (exact lines, every width from 40 to 200,
 * terminal redraw versus plain lines), and one run watched end to end through a real dev server and
 * a real worker, piped and on a pseudo-terminal (`script` from util-linux).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { readBeat, StepRate } from '../src/cli/heartbeat';
import { duration, significant } from '../src/cli/human';
import { LiveOutput } from '../src/cli/live-output';
import { renderRetrainLines, renderSearchLines, renderTrainLine, type TrainView } from '../src/cli/live-view';
import { renderListRow } from '../src/cli/render';
import { forTerminal, jsonForTerminal } from '../src/cli/terminal';
import { lastWorkflowTaskFailure, pendingTrouble, rootCause, troubleDetails, type Trouble } from '../src/cli/trouble';
import type { WorkflowExecutionDescription, WorkflowHandle } from '@temporalio/client';
import { calendarToCron, cronProblem } from '../src/schedules';
import type { RetrainProgress } from '../src/workflows/retrain-model';
import type { TrainProgress } from '../src/workflows/train-model';
import { mnistInput, ROOT, runDurableTrain, uniqueId, useStackAndWorker } from './helpers/temporal';

const ESC = '\x1b';

function progress(overrides: Partial<TrainProgress> = {}): TrainProgress {
  return {
    runId: 'r', runUri: 'file:///tmp/r', status: 'training', pauseRequested: false, stopRequested: false,
    epoch: 2, maxEpochs: 5, step: 80, stepsPerEpoch: 40, totalSteps: 200, learningRate: 0.002, backend: 'tensorflow',
    latest: { epoch: 2, step: 80, learningRate: 0.002, metrics: { loss: 0.412345, val_loss: 0.38, val_accuracy: 0.8875 }, trainSeconds: 4 },
    best: { epoch: 2, step: 80, metric: 'val_loss', value: 0.38 },
    latestCheckpointUri: null, bestCheckpointUri: null, continuedRuns: 0, secondsPerEpoch: 4,
    ...overrides,
  };
}

const inEpoch = { step: 97, targetStep: 120, checkpointStep: 80, stepsPerSecond: 8.5 };
const live: TrainView = { progress: progress(), inEpoch };

const retrain: RetrainProgress = {
  modelName: 'digits', phase: 'training', trainWorkflowId: 'digits-retrain-000042', warmStartFrom: 'file:///tmp/champion/model',
  champion: { runId: 'digits-retrain-000041', metric: 'val_accuracy', metrics: { val_accuracy: 0.912345 } } as unknown as RetrainProgress['champion'],
  decision: { promoted: false, reason: 'val_accuracy 0.9012 is not better than the champion 0.9123 by 0.001' } as unknown as RetrainProgress['decision'],
};

const board = {
  status: 'searching', metric: 'val_loss', mode: 'min', running: 1, failed: 0, rung: 2,
  rungs: [{ rung: 1, trials: 4, epochs: 1 }, { rung: 2, trials: 2, epochs: 3 }],
  trials: [
    { trial: 2, id: 'trial-2', status: 'completed', rung: 2, value: 0.3012345, workflowId: 's-trial-2', params: { learningRate: 0.0031234, hiddenUnits: [64, 32] } },
    { trial: 1, id: 'trial-1', status: 'pruned', rung: 1, value: 0.41, workflowId: 's-trial-1', params: { learningRate: 0.01, hiddenUnits: [8] } },
    { trial: 3, id: 'trial-3', status: 'running', rung: 2, value: null, workflowId: 's-trial-3', params: { learningRate: 0.0005, hiddenUnits: [128] } },
  ],
};

describe('watch renderers', () => {
  test('a train line inside an epoch: running epoch, its step, steps/s, epoch and run ETAs', () => {
    assert.equal(
      renderTrainLine(live, 200),
      '[############............] epoch 3/5 step 97/200 training  8.5 steps/s  epoch ETA 2s  run ETA 10s' +
        '  loss 0.4123  val_loss 0.3800  val_accuracy 0.8875  best val_loss 0.3800 @ epoch 2  lr 0.0020',
    );
    // Narrower: lr, the metrics, the bar, the epoch ETA and the best go first; epoch, step, status, run ETA, speed stay.
    assert.equal(renderTrainLine(live, 80), 'epoch 3/5 step 97/200 training  8.5 steps/s  run ETA 10s  best val_loss 0.3800');
    assert.equal(renderTrainLine(live, 60), 'epoch 3/5 step 97/200 training  8.5 steps/s  run ETA 10s');
    assert.equal(renderTrainLine(live, 40), 'epoch 3/5 step 97/200 training  ETA 10s', 'the run ETA in its short form');
    assert.equal(renderTrainLine(live, 12), 'epoch 3/5');
    assert.equal(renderTrainLine(live, 6), 'epoch…');
  });

  test('between epochs and while evaluating; a heartbeat of an epoch already recorded is ignored', () => {
    const idle = renderTrainLine({ progress: progress(), inEpoch: null }, 200);
    assert.match(idle, /^\[#{10}\.{14}\] epoch 3\/5 step 80\/200 training  10 steps\/s  run ETA 12s  loss/);
    const stale = renderTrainLine({ progress: progress(), inEpoch: { ...inEpoch, step: 80, targetStep: 80 } }, 200);
    assert.equal(stale, idle);
    const evaluating = renderTrainLine({ progress: progress({ status: 'evaluating', step: 120 }), inEpoch }, 200);
    assert.match(evaluating, /epoch 3\/5 step 120\/200 evaluating  10 steps\/s  run ETA 8s/);
    const done = renderTrainLine({ progress: progress({ status: 'completed', epoch: 5, step: 200 }), inEpoch }, 200);
    assert.match(done, /^\[#{24}\] epoch 5\/5 step 200\/200 completed  loss/);
    assert.doesNotMatch(done, /steps\/s|ETA/);
    const first = renderTrainLine({ progress: progress({ epoch: 0, step: 0, latest: null, best: null, secondsPerEpoch: null }), inEpoch: { ...inEpoch, step: 12, targetStep: 40, stepsPerSecond: null } }, 200);
    assert.equal(first, '[#.......................] epoch 1/5 step 12/200 training  no epoch finished yet  lr 0.0020');
  });

  test('retrain and search blocks', () => {
    assert.deepEqual(renderRetrainLines(retrain, live, 200), [
      'retrain digits: training  champion digits-retrain-000041 (val_accuracy 0.9123)  training run digits-retrain-000042',
      `  ${renderTrainLine(live, 198)}`,
      '  rejected: val_accuracy 0.9012 is not better than the champion 0.9123 by 0.001',
    ]);
    assert.deepEqual(renderRetrainLines(retrain, null, 50), [
      'retrain digits: training',
      '  rejected: val_accuracy 0.9012 is not better tha…',
    ]);
    const running = new Map([['s-trial-3', live]]);
    assert.deepEqual(renderSearchLines(board, running, 200, 0), ['search searching  trials 3  running 1  failed 0  best val_loss 0.3012 (trial-2)  rung 2/2']);
    const table = renderSearchLines(board, running, 120, 8);
    assert.equal(table.length, 4);
    assert.equal(table[1], '  trial-2  completed  val_loss 0.3012  rung 2  learningRate=0.003123 hiddenUnits=[64,32]');
    assert.match(table[3]!, /^ {2}trial-3 {2}running {2}epoch 3\/5 step 97\/200 training {2}8\.5 steps\/s/);
  });

  test('no line is wider than the width, for every width from 40 to 200', () => {
    const views: TrainView[] = [
      live,
      { progress: progress({ status: 'paused', pauseRequested: true }), inEpoch: null },
      { progress: progress({ stopRequested: true, latest: null, best: null }), inEpoch },
      { progress: progress({ status: 'evaluating', step: 120 }), inEpoch: null },
      { ...live, trouble: { retrying: null, silent: { activity: 'trainEpoch', seconds: 120, timeoutSeconds: 30 }, noWorker: null } },
      { ...live, trouble: { retrying: null, silent: null, noWorker: { taskQueue: 'a-long-task-queue-name-'.repeat(3), what: 'workflow' } } },
    ];
    const running = new Map([['s-trial-3', live]]);
    for (let width = 40; width <= 200; width++) {
      const lines = [
        ...views.map((v) => renderTrainLine(v, width)),
        ...renderRetrainLines(retrain, live, width),
        ...renderSearchLines(board, running, width, 8),
        ...renderSearchLines({ trials: 'not a list' }, running, width, 8),
      ];
      for (const line of lines) {
        assert.ok(line.length <= width, `width ${width}: ${JSON.stringify(line)} is ${line.length} wide`);
        assert.ok(!line.includes('\n'), `width ${width}: a line break in ${JSON.stringify(line)}`);
      }
      assert.match(renderTrainLine(live, width), /^(\[[#.]+\] )?epoch 3\/5 step 97\/200 training/, `width ${width}`);
    }
  });

  test('on a terminal frames are redrawn in place; piped, each changed frame is printed plainly', () => {
    const printed: string[] = [];
    const piped = new LiveOutput({ out: (l) => printed.push(l), tty: false });
    piped.show(['a']);
    piped.show(['a']);
    piped.show(['b', '  c']);
    assert.deepEqual(printed, ['a', 'b\n  c']);

    const drawn: string[] = [];
    const terminal = new LiveOutput({ out: (l) => drawn.push(l), tty: true });
    terminal.show(['a']);
    terminal.show(['b', '  c']);
    terminal.show(['b', '  c']);
    terminal.show(['d']);
    terminal.release();
    terminal.show(['e']);
    assert.deepEqual(drawn, ['a', `${ESC}[1A\r${ESC}[Jb\n  c`, `${ESC}[2A\r${ESC}[Jd`, 'e']);
  });

  test('heartbeat details are read loosely; steps/s comes from heartbeats of one attempt', () => {
    assert.deepEqual(readBeat({ step: 5, targetStep: 40, checkpointStep: 0 }), { step: 5, targetStep: 40, checkpointStep: 0 });
    assert.deepEqual(readBeat({ step: 5, targetStep: 40, loss: 1, epochStartedAt: 'x', stepsPerSecond: 3 }), { step: 5, targetStep: 40, checkpointStep: 5, stepsPerSecond: 3 });
    for (const bad of [undefined, null, 7, 'step', { step: 5 }, { step: '5', targetStep: 40 }, { step: Number.NaN, targetStep: 40 }]) {
      assert.equal(readBeat(bad), null, JSON.stringify(bad));
    }
    const rates = new StepRate();
    assert.equal(rates.observe('a/1', 10, 1000), null);
    assert.equal(rates.observe('a/1', 10, 1000), null, 'the same heartbeat again');
    assert.equal(rates.observe('a/1', 30, 3000), 10);
    assert.equal(rates.observe('a/1', 50, 5000), 10);
    assert.equal(rates.observe('a/2', 40, 6000), null, 'a new attempt starts over');
    assert.equal(rates.observe('a/1', 5, 7000), null, 'a step going back starts over');
  });

  test('a workflow task that keeps failing is reported with its attempt and the last failure, from the history', async () => {
    const description = { raw: { pendingActivities: [], pendingWorkflowTask: { attempt: 4 } } } as unknown as WorkflowExecutionDescription;
    const pending = pendingTrouble(description, Date.now());
    assert.deepEqual(pending.workflowTask, { attempt: 4, cause: null });
    assert.equal(pendingTrouble({ raw: { pendingActivities: [], pendingWorkflowTask: { attempt: 1 } } } as unknown as WorkflowExecutionDescription, Date.now()).workflowTask, null, 'a first attempt is no trouble');
    // The newest WorkflowTaskFailed event, read from the end of the history.
    const events = [
      { eventType: 'WORKFLOW_TASK_SCHEDULED' },
      { workflowTaskFailedEventAttributes: { failure: { message: 'Workflow task failed', cause: { message: 'Nondeterminism: \x1b[2J expected ScheduleActivityTask', applicationFailureInfo: { type: 'DeterminismViolationError' } } } } },
      { workflowTaskFailedEventAttributes: { failure: { message: 'older' } } },
    ];
    const handle = {
      workflowId: 'w',
      client: { options: { namespace: 'default' }, workflowService: { getWorkflowExecutionHistoryReverse: async () => ({ history: { events } }) } },
    } as unknown as WorkflowHandle;
    const cause = await lastWorkflowTaskFailure(handle);
    assert.equal(cause, 'DeterminismViolationError: Nondeterminism: \\u001b[2J expected ScheduleActivityTask');
    const t: Trouble = { retrying: null, silent: null, noWorker: null, workflowTask: { attempt: 4, cause } };
    assert.equal(renderTrainLine({ ...live, trouble: t }, 200), '[############............] epoch 3/5 step 97/200 training  workflow task failing: attempt 4 (the run does not move until it passes)  loss 0.4123  val_loss 0.3800  best val_loss 0.3800 @ epoch 2');
    assert.match(troubleDetails(t)[0]!, /^ {2}workflow task attempt 3 failed: DeterminismViolationError: Nondeterminism/);
  });

  test('trouble: no pace or ETA, the last failure under the line; a closed run shows how it ended', () => {
    const retrying: Trouble = { retrying: { activity: 'trainEpoch', attempt: 3, maximumAttempts: 20, cause: 'TrainerCrashed: exited' }, silent: null, noWorker: null };
    assert.equal(renderTrainLine({ ...live, trouble: retrying }, 200), '[############............] epoch 3/5 step 97/200 training  retrying: attempt 3/20  loss 0.4123  val_loss 0.3800  val_accuracy 0.8875  best val_loss 0.3800 @ epoch 2  lr 0.0020');
    assert.deepEqual(troubleDetails(retrying), ['  attempt 2 of trainEpoch failed: TrainerCrashed: exited']);
    const silent: Trouble = { retrying: null, silent: { activity: 'trainEpoch', seconds: 12, timeoutSeconds: 3 }, noWorker: null };
    assert.equal(renderTrainLine({ ...live, trouble: silent }, 100), 'epoch 3/5 step 97/200 training  waiting for a worker: no heartbeat for 12 s (timeout 3 s)');
    assert.equal(renderTrainLine({ ...live, trouble: silent }, 80), 'epoch 3/5 step 97/200 training  waiting for a worker: no heartbeat for 12 s', 'a shorter form when narrow');
    assert.equal(renderTrainLine({ ...live, trouble: silent }, 53), 'epoch 3/5 step 97/200 training  no heartbeat for 12 s');
    const failed = renderTrainLine({ progress: progress(), inEpoch, closed: 'failed' }, 200);
    assert.match(failed, /^\[#+\.+\] epoch 2\/5 step 80\/200 failed  loss/);
    assert.doesNotMatch(failed, /training|ETA|steps\/s/);
    // The root cause of a failure chain, escaped and bounded.
    const chain = { message: 'Activity task failed', cause: { message: `bad \x1b[31m${'x'.repeat(400)}`, applicationFailureInfo: { type: 'InvalidConfig' } } };
    const cause = rootCause(chain);
    assert.ok(cause.startsWith('InvalidConfig: bad \\u001b[31mxxx'), cause);
    assert.ok(cause.endsWith('…') && cause.length < 320, `${cause.length}`);
  });

  test('retrain lines once decided say what was promoted over what (not the old champion as champion)', () => {
    const decided = {
      ...retrain, phase: 'promoted',
      decision: { promoted: true, reason: 'r', metric: 'val_loss', champion: { runId: 'old-run', metrics: { val_loss: 0.5 } }, challenger: { runId: 'new-run', metrics: { val_loss: 0.25 } } },
    } as unknown as RetrainProgress;
    assert.equal(renderRetrainLines(decided, null, 200)[0], 'retrain digits: promoted  new-run (val_loss 0.2500) over old-run (val_loss 0.5000)  training run digits-retrain-000042');
    const rejected = { ...decided, phase: 'rejected', decision: { ...decided.decision!, promoted: false } } as unknown as RetrainProgress;
    assert.match(renderRetrainLines(rejected, null, 200)[0]!, /^retrain digits: rejected {2}new-run \(val_loss 0\.2500\); champion old-run \(val_loss 0\.5000\) kept/);
  });

  test('terminal escaping: control and invisible characters escaped, quotes kept; --json means the same', () => {
    assert.equal(forTerminal('id-\x1b[31m\u009b2J\u202e\u200b"q"\\\t\n'), 'id-\\u001b[31m\\u009b2J\\u202e\\u200b"q"\\\\t\\n');
    assert.equal(forTerminal('a\nb', { newlines: true }), 'a\nb');
    assert.equal(forTerminal('abcdef', { max: 3 }), 'abc…');
    const value = { id: 'a\x1b[31m\u009b\u202e\u{e0041}\u2028' };
    const json = jsonForTerminal(value);
    assert.doesNotMatch(json, /[\u0000-\u001f\u007f-\u009f\u202e\u2028]|\u{e0041}/u);
    assert.deepEqual(JSON.parse(json), value);
    assert.equal(renderListRow({ workflowId: 'w\x1b]0;t\x07', type: 'trainModel', status: 'RUNNING', trainStatus: null, epoch: null, bestMetric: null, startTime: '2026-01-01T00:00:00Z', closeTime: null }, Date.parse('2026-01-01T00:00:05Z')),
      'w\\u001b]0;t\\u0007\ttrainModel\tRUNNING\t-\tepoch -\tbest -\tstarted 5s ago');
  });

  test('cron expressions are checked as Temporal reads them; calendars read back as cron', () => {
    for (const ok of ['0 3 * * *', '*/15 * * * *', '0 3 * * MON-FRI', '0 3 1 1 * 2027', '0 0 3 * * * *', '@daily', '@every 2h/30m', 'CRON_TZ=Europe/Berlin 0 3 * * *', '0 3 * * * # nightly']) {
      assert.equal(cronProblem(ok), null, ok);
    }
    assert.match(cronProblem('daily')!, /has 1 field/);
    assert.match(cronProblem('0 24 * * *')!, /hour field `24`/);
    assert.match(cronProblem('0 3 * 13 *')!, /month field `13`/);
    assert.match(cronProblem('0 3 * * 5-1')!, /ends before it starts/);
    assert.match(cronProblem('@every 1h 2h')!, /shorthand/);
    assert.match(cronProblem('0 3 * * * *  * *')!, /has 8 fields/);
    // The server's form of `0 3 * * MON-FRI` and of `*/15 * * * *`.
    assert.equal(calendarToCron({ second: [{ step: 1 }], minute: [{ step: 1 }], hour: [{ start: 3, end: 3, step: 1 }], dayOfMonth: [{ start: 1, end: 31, step: 1 }], month: [{ start: 1, end: 12, step: 1 }], dayOfWeek: [{ start: 1, end: 5, step: 1 }] }), '0 3 * * 1-5');
    assert.equal(calendarToCron({ minute: [{ start: 0, end: 59, step: 15 }], hour: [{ start: 0, end: 23, step: 1 }], dayOfMonth: [{ start: 1, end: 31, step: 1 }], month: [{ start: 1, end: 12, step: 1 }], dayOfWeek: [{ start: 0, end: 6, step: 1 }] }), '0-59/15 * * * *');
  });

  test('list rounds metrics to 4 significant digits and says durations as people do', () => {
    assert.equal(significant(0.30123456), '0.3012');
    assert.equal(significant(1234.5678), '1235');
    assert.equal(significant(0.9), '0.9');
    assert.equal(significant(0.000012345678), '0.00001235');
    assert.deepEqual([5, 187, 3725, 200_000, -1].map(duration), ['5s', '3m07s', '1h02m', '2d07h', '?']);
    const row = {
      workflowId: 'w', type: 'trainModel', status: 'COMPLETED', trainStatus: 'completed', epoch: 3, bestMetric: 0.123456789,
      startTime: '2026-01-01T00:00:00.000Z', closeTime: '2026-01-01T00:03:07.500Z',
    };
    assert.equal(renderListRow(row, 0), 'w\ttrainModel\tCOMPLETED\tcompleted\tepoch 3\tbest 0.1235\ttook 3m07s');
    assert.equal(renderListRow({ ...row, status: 'RUNNING', closeTime: null, bestMetric: null }, Date.parse('2026-01-01T01:00:05Z')), 'w\ttrainModel\tRUNNING\tcompleted\tepoch 3\tbest -\tstarted 1h00m ago');
  });
});

/** Runs the CLI on a pseudo-terminal `columns` wide; resolves to what the terminal received. */
function onTerminal(args: string[], env: Record<string, string>, columns: number): Promise<{ code: number | null; output: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = `stty cols ${columns} rows 40; exec ${[process.execPath, path.join(ROOT, 'bin/durable-train.js'), ...args].map(quote).join(' ')}`;
  return new Promise((resolve) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('watch on a real run', () => {
  const harness = useStackAndWorker();

  test('piped: a step inside the first epoch shows before the epoch ends, no escape codes; on a terminal: redrawn, fits', async () => {
    const stepsPerEpoch = 300;
    // Slow enough epochs that several heartbeats (every 0.8 × 2 s) reach the server mid-epoch.
    const input = mnistInput({
      model: { name: 'mlp', params: { hiddenUnits: [512, 512] } },
      hyperparameters: { optimizer: 'adam', learningRate: 0.001, batchSize: 256 },
      stepsPerEpoch, maxEpochs: 2, timeouts: { heartbeatSeconds: 2 },
    });
    const workflowId = uniqueId('watch');
    await harness.stack.client.workflow.start('trainModel', { taskQueue: harness.worker.taskQueue, workflowId, args: [input] });
    const env = { TEMPORAL_ADDRESS: harness.stack.address };
    const started = Date.now();
    const [piped, terminal] = await Promise.all([
      runDurableTrain(['watch', workflowId, '--interval', '0.2'], env),
      onTerminal(['watch', workflowId, '--interval', '0.2'], env, 70),
    ]);
    console.log(`run watched in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    console.log(`piped output:\n${piped.stdout}`);
    assert.equal(piped.code, 0, piped.stderr);
    assert.ok(!piped.stdout.includes(ESC), 'no escape codes when piped');
    const lines = piped.stdout.trimEnd().split('\n');
    const stepOf = (l: string): number => Number(/ step (\d+)\/600 /.exec(l)?.[1] ?? Number.NaN);
    const inEpoch = lines.findIndex((l) => /epoch 1\/2 step \d+\/600 training/.test(l) && stepOf(l) > 0 && stepOf(l) < stepsPerEpoch);
    // The first line at or past the first epoch's last step (its evaluation can be too quick to be seen).
    const epochEnd = lines.findIndex((l) => stepOf(l) >= stepsPerEpoch);
    assert.ok(inEpoch >= 0, 'a line with a step inside the first epoch');
    assert.ok(epochEnd > inEpoch, `the in-epoch line (${inEpoch}) comes before the epoch's end (${epochEnd})`);
    assert.match(lines[lines.length - 1]!, /finished: completed/);

    console.log(`terminal output:\n${JSON.stringify(terminal.output)}`);
    assert.equal(terminal.code, 0, terminal.output);
    assert.ok(terminal.output.includes(`${ESC}[1A\r${ESC}[J`), 'the frame is redrawn in place');
    // What the screen shows: escape sequences and carriage returns removed, split at line feeds.
    const screen = terminal.output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '').split('\n');
    for (const line of screen) {
      if (line.startsWith('Run ')) continue; // the finished line keeps the model URI whole
      assert.ok(line.length < 70, `${JSON.stringify(line)} is ${line.length} wide`);
    }
    assert.ok(screen.some((l) => /epoch 2\/2 step 600\/600/.test(l)), 'the last frame stays on screen');
  });
});
