/**
 * What a person looks at beside the checkpoints, built from the epoch records the run stored:
 * TensorBoard event files (one per recorded epoch, written once) and the learning curve (SVG and
 * PNG). Every view is a function of the stored records, so a retried or resumed epoch rebuilds the
 * same bytes and never adds a second point.
 */
import { LEARNING_CURVE_PNG, LEARNING_CURVE_SVG } from '../checkpoints/layout';
import type { CheckpointStore } from '../checkpoints/store';
import { learningCurveSpec, renderPng, renderSvg, type CurveMarkers } from '../observability/charts';
import { epochEventFiles } from '../observability/tensorboard';
import { writeOnce } from '../checkpoints/write-once';
import type { EpochRecord } from './store-and-trainer';

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

/** Renders the learning curve of `records` and writes it as SVG and PNG (the newest records win). */
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
  const svg = await renderSvg(learningCurveSpec(title, points, markers));
  await store.put(LEARNING_CURVE_SVG, Buffer.from(svg));
  await store.put(LEARNING_CURVE_PNG, await renderPng(svg));
  return { svgUri: store.uriOf(LEARNING_CURVE_SVG), pngUri: store.uriOf(LEARNING_CURVE_PNG) };
}
