/**
 * fetchTrialOutcome: the outcome of a search's trial (a child trainModel) read from Temporal, for a
 * search that continued as new while the trial ran (SEARCH_NO_DRAIN_PATCH). The child signals the
 * search `trialEnded` with its workflow id just before it completes; the signal's content is not
 * trusted: this reads the child's own result, or its failure, through the worker's client
 * (Context.client, the worker's connection, namespace and data converter). The child is about to
 * complete when it signals, so each attempt waits a bounded time and a child still running after
 * it is retried (the workflow's retry policy), never waited for without bound in one attempt.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { TemporalFailure } from '@temporalio/common';

export interface FetchTrialOutcomeInput {
  /** The child's workflow id (`<search id>/trial-<n>[/rung-<r>]`); its latest run's outcome, following continue-as-new. */
  readonly workflowId: string;
  /** How long one attempt waits for the child to complete. @default 60 */
  readonly waitSeconds?: number;
}

/** The fields of trainModel's result a search keeps (TrainModelResult, src/workflows/train-model.ts). */
export interface TrialRunResult {
  readonly status: 'completed' | 'early-stopped' | 'stopped';
  readonly epochs: number;
  readonly step: number;
  readonly finalMetrics: Readonly<Record<string, number>> | null;
  readonly modelUri: string;
}

export type TrialOutcome =
  | { readonly ok: true; readonly result: TrialRunResult }
  /** The innermost cause of the child's failure (cancellation and termination included), as executeChild's rejection has it. */
  | { readonly ok: false; readonly error: { readonly name: string; readonly message: string } };

const STATUSES: ReadonlySet<string> = new Set(['completed', 'early-stopped', 'stopped']);
const MAX_WAIT_SECONDS = 600;

function innermost(err: unknown): { name: string; message: string } {
  let e: unknown = err;
  while (e instanceof TemporalFailure && e.cause) e = e.cause;
  return e instanceof Error ? { name: e.name, message: e.message.slice(0, 2000) } : { name: 'Error', message: String(e).slice(0, 2000) };
}

/** Only what a trial row keeps, checked: a result of another shape is the child's failure, not ours. */
function runResultOf(value: unknown): TrialRunResult | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  const metrics = r.finalMetrics;
  const metricsOk = metrics === null || (typeof metrics === 'object' && !Array.isArray(metrics) && Object.values(metrics as object).every((v) => typeof v === 'number'));
  if (typeof r.status !== 'string' || !STATUSES.has(r.status) || !Number.isSafeInteger(r.epochs) || !Number.isSafeInteger(r.step) || typeof r.modelUri !== 'string' || !metricsOk) return undefined;
  return { status: r.status as TrialRunResult['status'], epochs: r.epochs as number, step: r.step as number, finalMetrics: metrics as TrialRunResult['finalMetrics'], modelUri: r.modelUri };
}

export function createTrialOutcomeActivities() {
  return {
    async fetchTrialOutcome(input: FetchTrialOutcomeInput): Promise<TrialOutcome> {
      if (typeof input?.workflowId !== 'string' || input.workflowId.length === 0 || input.workflowId.length > 1000) {
        throw ApplicationFailure.nonRetryable(`Expected \`workflowId\` to be a non-empty workflow id of at most 1000 characters, got ${JSON.stringify(input?.workflowId)?.slice(0, 100)}`, 'InvalidConfig');
      }
      const waitSeconds = input.waitSeconds ?? 60;
      if (!(waitSeconds > 0 && waitSeconds <= MAX_WAIT_SECONDS)) {
        throw ApplicationFailure.nonRetryable(`Expected \`waitSeconds\` to be a number from 0 (exclusive) to ${MAX_WAIT_SECONDS}, got ${String(waitSeconds)}`, 'InvalidConfig');
      }
      const ctx = Context.current();
      const handle = ctx.client.workflow.getHandle(input.workflowId);
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(ApplicationFailure.retryable(`trial ${input.workflowId} signalled its end but was still running after ${waitSeconds} s; retried`, 'TrialStillRunning')),
          waitSeconds * 1000,
        );
      });
      try {
        // The cancelled promise rejects when the search cancels this attempt (or the worker shuts down).
        const value = await Promise.race([handle.result(), bound, ctx.cancelled]);
        const result = runResultOf(value);
        if (!result) return { ok: false, error: { name: 'UnexpectedResult', message: `trial ${input.workflowId} returned something that is not a trainModel result` } };
        return { ok: true, result };
      } catch (err) {
        if (err instanceof WorkflowFailedError) return { ok: false, error: innermost(err.cause ?? err) };
        // Not found: the search has it running under this id, so Temporal lost it; nothing to wait for.
        if (err instanceof WorkflowNotFoundError) return { ok: false, error: { name: err.name, message: err.message.slice(0, 2000) } };
        throw err;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export type TrialOutcomeActivities = ReturnType<typeof createTrialOutcomeActivities>;
