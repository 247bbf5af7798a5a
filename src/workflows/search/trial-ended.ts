/**
 * How a search trial tells its search that it ended (workflow code, shared by trainModel and
 * hyperparameterSearch). A search continues as new without waiting for its running children
 * (SEARCH_NO_DRAIN_PATCH): a child started by an earlier run of the chain has no executeChild promise
 * in the current one, so the child signals the search's workflow id (no run id: the chain's current
 * run) with its own workflow id as it ends, and the search fetches the outcome from Temporal
 * (fetchTrialOutcome) instead of trusting the signal.
 */
import { defineSignal, type WorkflowInfo } from '@temporalio/workflow';
import { childWorkflowId } from './state';

/** The child's own workflow id: `<search id>/trial-<n>[/rung-<r>]`. */
export const trialEndedSignal = defineSignal<[string]>('trialEnded');

/**
 * The search that started this workflow as one of its trials, or undefined: the parent's id and
 * ours must be a trial id of it (childWorkflowId), so retrainModel's children never signal.
 */
export function searchOfTrial(info: Pick<WorkflowInfo, 'workflowId' | 'parent'>): string | undefined {
  const parent = info.parent?.workflowId;
  if (parent === undefined || !info.workflowId.startsWith(`${parent}/`)) return undefined;
  const m = /^trial-([1-9]\d*)(?:\/rung-([1-9]\d*))?$/.exec(info.workflowId.slice(parent.length + 1));
  if (!m) return undefined;
  const trial = Number(m[1]);
  const rung = m[2] === undefined ? 1 : Number(m[2]);
  return childWorkflowId(parent, trial, rung) === info.workflowId ? parent : undefined;
}
