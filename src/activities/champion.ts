/**
 * Champion activities for `retrainModel`: read the current champion of a model, evaluate
 * champion and challenger on the same eval set (in the trainer), and record the decision.
 *
 * Under the champion root (by default the checkpoint root; keys from checkpoints/layout.ts), a
 * model's champion pointer changes only by compare-and-swap, and every decision, promoted or not,
 * is appended with both models' metrics and copied beside the challenger's run.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { DatasetSpec, LossName, Mode } from '../config/train-config';
import { RETRAIN_DECISION, championKey, decisionKey, decisionNumberOfKey, decisionsPrefix } from '../checkpoints/layout';
import { PreconditionFailedError, type CheckpointStore } from '../checkpoints/store';
import type { EvaluateModelsResult } from '../training/protocol';
import { callTrainer, storeCall } from './store-and-trainer';
import type { TrainingActivityDeps } from './training';

/** `champions/<modelName>/champion.json`. */
export interface ChampionRecord {
  readonly modelName: string;
  /** The exported model (`…/<runId>/model/model.json`). */
  readonly modelUri: string;
  readonly runId: string;
  readonly runUri: string;
  /** Its metrics on the eval set of the retrain that promoted it. */
  readonly metrics: Readonly<Record<string, number>>;
  readonly metric: string;
  readonly mode: Mode;
  /** Workflow time of the promotion (ISO 8601). */
  readonly promotedAt: string;
  /** The retrain that promoted it: workflow id and Temporal run id. */
  readonly retrain: { readonly workflowId: string; readonly runId: string };
}

export interface ModelSummary {
  readonly modelUri: string;
  readonly runId: string;
  readonly metrics: Readonly<Record<string, number>>;
}

/** `champions/<modelName>/decisions/<n>.json` (and `<runUri>/retrain-decision.json`). */
export interface DecisionRecord {
  readonly number: number;
  readonly modelName: string;
  readonly promoted: boolean;
  readonly reason: string;
  readonly metric: string;
  readonly mode: Mode;
  readonly minImprovement: number;
  /** Workflow time of the decision (ISO 8601). */
  readonly decidedAt: string;
  readonly retrain: { readonly workflowId: string; readonly runId: string };
  /** The eval set both models were measured on. */
  readonly evalData: DatasetSpec;
  /** The champion the challenger was measured against (null for a model's first retrain). */
  readonly champion: ModelSummary | null;
  readonly challenger: ModelSummary & { readonly runUri: string; readonly trainMetrics: Readonly<Record<string, number>> | null };
  readonly decisionUri: string;
  readonly championUri: string;
}

export interface ReadChampionInput {
  readonly modelName: string;
  /** The retrain's `championRoot`, else its run's `checkpoint.uri`, else the worker's checkpoint root. */
  readonly championRoot?: string;
  readonly checkpointUri?: string;
  /** The retrain's metric and mode: a champion chosen on others is not compared on these (ChampionMismatch). */
  readonly metric?: string;
  readonly mode?: Mode;
}

export interface ReadChampionResult {
  /** The resolved champion root. */
  readonly root: string;
  /** The worker's default checkpoint root (where the challenger's run goes if its input names none). */
  readonly checkpointRoot: string;
  readonly championUri: string;
  readonly champion: ChampionRecord | null;
  /** Version token for compare-and-swap (null: no champion yet). */
  readonly version: string | null;
}

export interface EvaluateModelsInput {
  readonly modelUris: readonly string[];
  readonly data: DatasetSpec;
  readonly loss: LossName;
}

export interface RecordDecisionInput {
  readonly root: string;
  readonly modelName: string;
  /** The champion pointer's version the decision was made against (null: there was none). */
  readonly expectedVersion: string | null;
  /** Written as the new champion when `decision.promoted`. */
  readonly newChampion: ChampionRecord | null;
  readonly decision: Omit<DecisionRecord, 'number' | 'decisionUri' | 'championUri'>;
  readonly runUri: string;
}

export type RecordDecisionResult =
  | { readonly outcome: 'recorded'; readonly decision: DecisionRecord }
  /** Someone else changed the champion since it was read: compare again against this one. */
  | { readonly outcome: 'conflict'; readonly champion: ChampionRecord | null; readonly version: string | null };

async function readPointer(store: CheckpointStore, modelName: string): Promise<{ champion: ChampionRecord | null; version: string | null }> {
  const found = await store.getVersioned(championKey(modelName));
  if (!found) return { champion: null, version: null };
  let champion: ChampionRecord;
  try {
    champion = JSON.parse(found.data.toString('utf8')) as ChampionRecord;
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`${store.uriOf(championKey(modelName))} is not valid JSON: ${(err as Error).message}`, 'ChampionUnreadable');
  }
  return { champion, version: found.version };
}

const sameRetrain = (a: { workflowId: string; runId: string }, b: { workflowId: string; runId: string }) =>
  a.workflowId === b.workflowId && a.runId === b.runId;

export function createChampionActivities(deps: TrainingActivityDeps) {
  return {
    /** The current champion of a model and the pointer's version (for the compare-and-swap at the end). */
    async readChampion(input: ReadChampionInput): Promise<ReadChampionResult> {
      const root = (input.championRoot ?? input.checkpointUri ?? deps.checkpointRoot).replace(/\/+$/, '');
      const store = deps.openStore(root);
      const { champion, version } = await storeCall(() => readPointer(store, input.modelName));
      if (champion && input.metric !== undefined && input.mode !== undefined && (champion.metric !== input.metric || champion.mode !== input.mode)) {
        // Otherwise any caller could promote over the champion by its own rule (`mode: max` on val_loss).
        throw ApplicationFailure.nonRetryable(
          `The champion of \`${input.modelName}\` (${store.uriOf(championKey(input.modelName))}) was chosen on \`${champion.metric}\` (mode ${champion.mode}); ` +
            `this retrain asks for \`${input.metric}\` (mode ${input.mode}). A champion is challenged only on the metric and mode it was chosen on: use those, or another modelName`,
          'ChampionMismatch',
        );
      }
      return { root, checkpointRoot: deps.checkpointRoot, championUri: store.uriOf(championKey(input.modelName)), champion, version };
    },

    /** Evaluates exported models on one eval set in the trainer: champion and challenger, same data, same code. */
    async evaluateModels(input: EvaluateModelsInput): Promise<EvaluateModelsResult> {
      return callTrainer<EvaluateModelsResult>(deps.trainer, {
        type: 'evaluateModels',
        request: { modelUris: input.modelUris, data: input.data, loss: input.loss },
      });
    },

    /**
     * Promotes (compare-and-swap of the pointer) or not, then appends the decision. Safe to retry:
     * a pointer that already names this retrain and a decision already written by it are kept.
     */
    async recordRetrainDecision(input: RecordDecisionInput): Promise<RecordDecisionResult> {
      const store = deps.openStore(input.root);
      const { modelName, decision } = input;
      return storeCall(async () => {
        const conflict = await promoteUnlessChanged(store, input);
        if (conflict) return conflict;
        const record = await appendDecisionOnce(store, modelName, decision);
        await deps.openStore(input.runUri).put(RETRAIN_DECISION, Buffer.from(JSON.stringify(record, null, 2)));
        return { outcome: 'recorded', decision: record };
      });
    },
  };
}

type Conflict = Extract<RecordDecisionResult, { readonly outcome: 'conflict' }>;

/**
 * Writes the new champion by compare-and-swap when the decision promotes; a conflict when the
 * pointer changed since the retrain read it (unless it already names this retrain: a retry).
 */
async function promoteUnlessChanged(store: CheckpointStore, input: RecordDecisionInput): Promise<Conflict | undefined> {
  const { modelName, decision } = input;
  const current = await readPointer(store, modelName);
  const ours = current.champion !== null && sameRetrain(current.champion.retrain, decision.retrain);
  if (!ours && current.version !== input.expectedVersion) {
    return { outcome: 'conflict', champion: current.champion, version: current.version };
  }
  if (decision.promoted && !ours) {
    if (!input.newChampion) throw ApplicationFailure.nonRetryable('A promotion needs the new champion record', 'BadDecision');
    try {
      await store.putIfVersion(championKey(modelName), Buffer.from(JSON.stringify(input.newChampion, null, 2)), input.expectedVersion ?? undefined);
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      const now = await readPointer(store, modelName);
      return { outcome: 'conflict', champion: now.champion, version: now.version };
    }
  }
  return undefined;
}

/** Appends the decision once: a retry finds the one it wrote; a race for a number takes the next. */
async function appendDecisionOnce(store: CheckpointStore, modelName: string, decision: RecordDecisionInput['decision']): Promise<DecisionRecord> {
  const keys = await store.list(decisionsPrefix(modelName));
  for (const key of [...keys].reverse()) {
    const data = await store.get(key);
    const existing = data && (JSON.parse(data.toString('utf8')) as DecisionRecord);
    if (existing && sameRetrain(existing.retrain, decision.retrain)) return existing;
  }
  let n = keys.reduce((max, k) => Math.max(max, decisionNumberOfKey(k) ?? 0), 0) + 1;
  for (;;) {
    const candidate: DecisionRecord = {
      number: n,
      ...decision,
      decisionUri: store.uriOf(decisionKey(modelName, n)),
      championUri: store.uriOf(championKey(modelName)),
    };
    try {
      await store.putIfVersion(decisionKey(modelName, n), Buffer.from(JSON.stringify(candidate, null, 2)), undefined);
      return candidate;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      n++;
    }
  }
}

export type ChampionActivities = ReturnType<typeof createChampionActivities>;
