/**
 * What every fast-tier workflow test shares: one dev server per file (or the one `npm run
 * test:fast` shares) and one worker per file running the real workflows; each test scripts its
 * own MockActivities, and the worker routes every activity call to the test whose token is in
 * the calling workflow's id (child workflows' ids contain their parent's).
 */
import assert from 'node:assert/strict';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { Activities } from '../../src/activities';
import type { trainModel } from '../../src/workflows';
import { startStack, startWorkerWithActivities, uniqueId, type RunningWorker, type Stack } from '../helpers/temporal';
import { MockActivities, type Script } from './mock-activities';

export type TrainModelResult = Awaited<ReturnType<typeof trainModel>>;

export interface Scenario {
  readonly client: Client;
  readonly taskQueue: string;
  readonly mock: MockActivities;
  /** A workflow id that routes this workflow's activities (and its children's) to `mock`. */
  id(prefix: string): string;
}

export class Harness {
  private counter = 0;

  private constructor(
    readonly stack: Stack,
    private readonly worker: RunningWorker,
    private readonly scenarios: Map<string, MockActivities>,
  ) {}

  static async start(): Promise<Harness> {
    const stack = await startStack();
    const scenarios = new Map<string, MockActivities>();
    const route = (): Activities => {
      const workflowId = Context.current().info.workflowExecution?.workflowId ?? '(none)';
      for (const [token, mock] of scenarios) if (workflowId.includes(token)) return mock.activities();
      throw ApplicationFailure.nonRetryable(`No scripted test owns workflow ${workflowId}`, 'UnroutedActivity');
    };
    const names = Object.keys(new MockActivities({ evalMetrics: () => ({}) }).activities()) as Array<keyof Activities>;
    const routed = Object.fromEntries(names.map((name) => [name, (input: never) => (route()[name] as (i: never) => unknown)(input)])) as Activities;
    const worker = await startWorkerWithActivities(stack.address, routed).catch(async (err: unknown) => {
      await stack.close();
      throw err;
    });
    return new Harness(stack, worker, scenarios);
  }

  /** Runs one test's `body` with activities that follow `script`. */
  async run<T>(script: Script, body: (s: Scenario) => Promise<T>): Promise<T> {
    const token = `s${++this.counter}x${uniqueId('').slice(1)}`;
    const mock = new MockActivities(script);
    // Kept after the test: a late call from its workflows still finds its own script.
    this.scenarios.set(token, mock);
    let n = 0;
    return body({ client: this.stack.client, taskQueue: this.worker.taskQueue, mock, id: (prefix) => `${prefix}-${token}-${++n}` });
  }

  async close(): Promise<void> {
    await this.worker.stop();
    await this.stack.close();
  }
}

/** Awaits the workflow's failure and returns its innermost ApplicationFailure. */
export async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => assert.fail(`Expected workflow ${handle.workflowId} to fail, it completed`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof WorkflowFailedError, `Expected a WorkflowFailedError, got ${String(err)}`);
  let cause: unknown = err.cause;
  while (!(cause instanceof ApplicationFailure) && cause instanceof Error && cause.cause) cause = cause.cause;
  assert.ok(cause instanceof ApplicationFailure, `Expected an ApplicationFailure inside, got ${String(cause)}`);
  return cause;
}

const EventType = temporal.api.enums.v1.EventType;

/** How many events of each type the workflow's history has (by enum name, e.g. `EVENT_TYPE_ACTIVITY_TASK_SCHEDULED`). */
export async function eventCounts(handle: WorkflowHandle): Promise<Map<string, number>> {
  const history = await handle.fetchHistory();
  const counts = new Map<string, number>();
  for (const e of history.events ?? []) {
    const name = EventType[e.eventType ?? 0] ?? String(e.eventType);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** Most child workflows the history shows running at once. */
export async function maxConcurrentChildren(handle: WorkflowHandle): Promise<number> {
  const history = await handle.fetchHistory();
  let running = 0;
  let max = 0;
  for (const e of history.events ?? []) {
    if (e.eventType === EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED) max = Math.max(max, ++running);
    if (
      e.eventType === EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED ||
      e.eventType === EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED ||
      e.eventType === EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED ||
      e.eventType === EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT ||
      e.eventType === EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED
    ) {
      running--;
    }
  }
  return max;
}

/** A small valid trainModel input (the mock trains nothing, so sizes only shape the step numbers). */
export function trainInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { name: 'mlp', params: { hiddenUnits: [8] } },
    data: { train: { name: 'synthetic' }, eval: { name: 'synthetic', split: 'test' } },
    hyperparameters: { optimizer: 'adam', learningRate: 0.1, batchSize: 32 },
    stepsPerEpoch: 5,
    maxEpochs: 4,
    seed: 3,
    timeouts: { heartbeatSeconds: 1 },
    ...overrides,
  };
}

/** A metric series by epoch (1-based); past its end the last value repeats. */
export function series(values: readonly number[]): (epoch: number) => number {
  return (epoch) => values[Math.min(epoch, values.length) - 1]!;
}
