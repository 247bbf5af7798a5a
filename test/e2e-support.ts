/**
 * Small helpers shared by the *.e2e tests and scripts/record-histories.ts (not a test file itself):
 * a tiny synthetic run that trains in a few milliseconds per epoch, and readers for what a run
 * leaves in its checkpoint store.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WEIGHTS_BIN, checkpointObjectKey, joinUri } from '../src/checkpoints/layout';
import type { EpochHistoryEntry, TrainModelResult } from '../src/workflows';

/** A tiny MLP on seeded Gaussian blobs: ~100–200 ms per epoch end to end on the dev server. */
export function tinyInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: { name: 'mlp', params: { hiddenUnits: [8] } },
    data: {
      train: { name: 'synthetic', params: { size: 256, noise: 1.5 } },
      eval: { name: 'synthetic', split: 'test', params: { size: 128, noise: 1.5 } },
    },
    hyperparameters: { optimizer: 'adam', learningRate: 0.01, batchSize: 32 },
    stepsPerEpoch: 2,
    maxEpochs: 20,
    seed: 3,
    checkpoint: { keepLast: 1000, everySeconds: 0 },
    timeouts: { heartbeatSeconds: 5 },
    ...overrides,
  };
}

/** Bytes of `<runUri>/checkpoints/<step>/weights.bin`. */
export function checkpointWeights(runUri: string, step: number): Buffer {
  return fs.readFileSync(fileURLToPath(joinUri(runUri, checkpointObjectKey(step, WEIGHTS_BIN))));
}

/** Bytes of the exported model's weights.bin (beside result.modelUri's model.json). */
export function modelWeights(result: TrainModelResult): Buffer {
  return fs.readFileSync(path.join(path.dirname(fileURLToPath(result.modelUri)), WEIGHTS_BIN));
}

export function sha256(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** The parts of an epoch that a deterministic rerun must reproduce exactly (not the timing). */
export function comparable(history: readonly EpochHistoryEntry[]): Array<Omit<EpochHistoryEntry, 'trainSeconds'>> {
  return history.map(({ epoch, step, learningRate, metrics }) => ({ epoch, step, learningRate, metrics }));
}

/** Events per run of a workflow (every run of its continue-as-new chain), oldest first. */
export async function eventsPerRun(
  client: Client,
  workflowId: string,
): Promise<Array<{ runId: string; events: number; status: string }>> {
  const runs: Array<{ runId: string; events: number; status: string; start: number }> = [];
  for await (const w of client.workflow.list({ query: `WorkflowId="${workflowId}"` })) {
    const history = await client.workflow.getHandle(workflowId, w.runId).fetchHistory();
    runs.push({ runId: w.runId, events: history.events?.length ?? 0, status: w.status.name, start: w.startTime.getTime() });
  }
  runs.sort((a, b) => a.start - b.start);
  return runs.map(({ runId, events, status }) => ({ runId, events, status }));
}

export async function result(handle: WorkflowHandle): Promise<TrainModelResult> {
  return (await handle.result()) as TrainModelResult;
}
