/**
 * What a person looks at beside the checkpoints, built from the epoch records the run stored:
 * TensorBoard event files (one per recorded epoch, written once) and the learning curve (SVG and
 * PNG). Every view is a function of the stored records, so a retried or resumed epoch rebuilds the
 * same bytes and never adds a second point.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { ancestorUris } from '../checkpoints/folder-owners';
import { LEARNING_CURVE_PNG, LEARNING_CURVE_SVG } from '../checkpoints/layout';
import { assertSearchOwner } from '../checkpoints/search-identity';
import { ConfigError, describe, type ConfigIssue } from '../config/validate';
import type { CheckpointStore } from '../checkpoints/store';
import { renderChart } from '../observability/chart-thread';
import { learningCurveSpec, type CurveMarkers } from '../observability/charts';
import { epochEventFiles } from '../observability/tensorboard';
import { writeOnce } from '../checkpoints/write-once';
import { readEpochRecords, storeCall, type EpochRecord } from './store-and-trainer';

/** Writes the epoch's TensorBoard files unless they are there with the same bytes. */
export async function writeEpochEvents(store: CheckpointStore, record: EpochRecord): Promise<void> {
  const files = epochEventFiles({
    epoch: record.epoch,
    // Records of runs started before recordedAt existed get a fixed time: the bytes must not change on a retry.
    wallTime: (record.recordedAt ?? 0) / 1000,
    learningRate: record.learningRate,
    metrics: record.metrics,
    ...(record.trainSeconds !== undefined && { trainSeconds: record.trainSeconds }),
  });
  for (const f of files) await writeOnce(store, f.key, f.data);
}

/**
 * Renders the learning curve of `records` on the chart thread (never on the worker's event loop)
 * and writes it as SVG and PNG (the newest records win). Only where a person looks: a run of its
 * own, a search's best trial, or on demand (finalizeRun's `learningCurve`, renderLearningCurve).
 */
export async function writeLearningCurve(
  store: CheckpointStore,
  records: readonly EpochRecord[],
  title: string,
  markers: CurveMarkers,
): Promise<{ svgUri: string; pngUri: string }> {
  const points = records.map((r) => ({
    epoch: r.epoch,
    learningRate: r.learningRate,
    metrics: r.metrics,
    interruptions: Math.max(0, (r.trainAttempt ?? 1) - 1),
  }));
  const { svg, png } = await renderChart(learningCurveSpec(title, points, markers), 1280);
  await store.put(LEARNING_CURVE_SVG, Buffer.from(svg));
  await store.put(LEARNING_CURVE_PNG, png!);
  return { svgUri: store.uriOf(LEARNING_CURVE_SVG), pngUri: store.uriOf(LEARNING_CURVE_PNG) };
}

export interface RenderLearningCurveInput {
  /** A trial's folder, `<search folder>/trial-<n>`: the calling workflow must own the search folder. */
  readonly runUri: string;
  readonly title: string;
  readonly markers?: CurveMarkers;
}

export interface RenderLearningCurveResult {
  readonly svgUri: string;
  readonly pngUri: string;
}

/** A title longer than this is no title: it would not fit the chart. */
export const MAX_CURVE_TITLE = 200;

function curveIssues(input: RenderLearningCurveInput): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (typeof input?.runUri !== 'string' || input.runUri.length === 0) issues.push({ field: 'runUri', expected: 'a trial folder URI', received: describe(input?.runUri) });
  if (typeof input?.title !== 'string' || input.title.length > MAX_CURVE_TITLE) issues.push({ field: 'title', expected: `a string of at most ${MAX_CURVE_TITLE} characters`, received: describe(input?.title) });
  for (const k of ['bestEpoch', 'earlyStoppedEpoch'] as const) {
    const v: unknown = input?.markers?.[k];
    if (v !== undefined && v !== null && !(Number.isSafeInteger(v) && (v as number) >= 0)) issues.push({ field: `markers.${k}`, expected: 'an epoch number or null', received: describe(v) });
  }
  return issues;
}

/**
 * A search's trials render no learning curve when they finish (finalizeRun's `learningCurve`): the
 * search asks for the ones a person looks at (its best) with renderLearningCurve, written in the
 * trial's folder from its stored epoch records (the same bytes as finalizeRun would write).
 */
export function createRunViewActivities(deps: { readonly openStore: (uri: string) => CheckpointStore }) {
  return {
    async renderLearningCurve(input: RenderLearningCurveInput): Promise<RenderLearningCurveResult> {
      const issues = curveIssues(input);
      if (issues.length > 0) {
        const err = new ConfigError(issues, 'Invalid renderLearningCurve input');
        throw ApplicationFailure.create({ message: err.message, type: 'InvalidConfig', nonRetryable: true, details: [issues] });
      }
      const store = deps.openStore(input.runUri);
      return storeCall(async () => {
        const searchUri = ancestorUris(input.runUri)[0];
        const caller = Context.current().info.workflowExecution?.workflowId ?? '(no workflow)';
        if (searchUri === undefined) throw ApplicationFailure.nonRetryable(`${input.runUri} is not a trial folder inside a search folder`, 'InvalidConfig');
        await assertSearchOwner(deps.openStore(searchUri), caller, { requireRecord: true });
        const records = await readEpochRecords(store);
        if (records.length === 0) throw ApplicationFailure.nonRetryable(`${input.runUri} has no epoch records to draw`, 'NoEpochRecords');
        return writeLearningCurve(store, records, input.title, input.markers ?? {});
      });
    },
  };
}

export type RunViewActivities = ReturnType<typeof createRunViewActivities>;
