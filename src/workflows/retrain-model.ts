/**
 * retrainModel: warm-start from the current champion of a model, train on new data (a child
 * trainModel), evaluate champion and challenger on the same eval set, and promote the challenger
 * only if it wins by more than `minImprovement`. The champion pointer changes only by
 * compare-and-swap, so two retrains of one model can never lose each other's promotion: a
 * retrain that finds the champion changed under it compares again against the new one.
 */
import {
  ApplicationFailure,
  condition,
  defineQuery,
  patched,
  startChild,
  type ChildWorkflowHandle,
  type SignalDefinition,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { ChampionActivities, ChampionRecord, DecisionRecord, ReadChampionResult } from '../activities/champion';
import { parseRetrainConfig, retrainRunId, uniqueRetrainRunId, type RetrainConfig, type RetrainInput } from '../config/retrain-config';
import type { Mode } from '../config/train-config';
import { modelFolderOf } from '../checkpoints/layout';
import { Checker, ConfigError } from '../config/validate';
import { FAULT_RETRY, WORKER_HEARTBEAT_TIMEOUT, checkInputUris, trainConfigUris } from './activity-proxies';
import { failOnOversizedInput, MAX_PARENT_INPUT_BYTES } from './input-bounds';
import { invalidConfig, parseOrFail } from './invalid-config';
import { RETRAIN_DATA_WINDOW_PATCH, RETRAIN_RUN_ID_PATCH } from './patches';
import { SEARCH_ATTRIBUTES } from './search-attributes';
import { nominalTime, resolveDataWindows } from './data-window';
import { pauseSignal, resumeSignal, stopSignal, trainModel, type TrainModelResult } from './train-model';

export type RetrainPhase = 'reading-champion' | 'training' | 'evaluating' | 'recording' | 'promoted' | 'rejected';

export interface RetrainProgress {
  readonly modelName: string;
  readonly phase: RetrainPhase;
  /** The child trainModel's workflow id (also its run id): query its `progress` for epochs. */
  readonly trainWorkflowId: string;
  readonly champion: ChampionRecord | null;
  readonly warmStartFrom: string | null;
  readonly decision: DecisionRecord | null;
}

export interface RetrainResult {
  readonly modelName: string;
  readonly promoted: boolean;
  readonly reason: string;
  /** The decision as recorded in `champions/<modelName>/decisions/<n>.json`. */
  readonly decision: DecisionRecord;
  /** The champion after this retrain (the challenger when promoted). */
  readonly champion: ChampionRecord;
  readonly championUri: string;
  /** The challenger's training run. */
  readonly train: Pick<TrainModelResult, 'runId' | 'runUri' | 'status' | 'epochs' | 'modelUri' | 'finalMetrics' | 'backend'>;
}

export const retrainProgressQuery = defineQuery<RetrainProgress>('retrainProgress');

/** Validates the input; a bad one fails the workflow at once, before any activity is scheduled. */
export function validateRetrainOrFail(input: unknown): RetrainConfig {
  failOnOversizedInput(input, 'Invalid retrainModel input', MAX_PARENT_INPUT_BYTES);
  return parseOrFail(() => parseRetrainConfig(input));
}

/**
 * The promotion rule. The challenger must be strictly better by more than `minImprovement`
 * (as Keras's `min_delta`): a tie keeps the champion, so equal models never churn the pointer.
 * A model's first retrain promotes what it trained.
 */
export function decidePromotion(rule: { metric: string; mode: Mode; minImprovement: number }, champion: number | null, challenger: number): { promoted: boolean; reason: string } {
  const { metric, mode, minImprovement } = rule;
  const f = (v: number) => (Number.isFinite(v) ? Number(v.toPrecision(6)).toString() : String(v));
  if (champion === null) return { promoted: true, reason: `no champion yet: the first model is promoted (${metric} ${f(challenger)})` };
  if (!Number.isFinite(challenger)) return { promoted: false, reason: `the challenger's ${metric} is ${challenger}` };
  if (!Number.isFinite(champion)) return { promoted: true, reason: `the champion's ${metric} is ${champion}; the challenger's is ${f(challenger)}` };
  const gain = mode === 'min' ? champion - challenger : challenger - champion;
  const wins = gain > minImprovement;
  const cmp = `${metric} ${f(challenger)} vs the champion's ${f(champion)} (${mode}): improvement ${f(gain)}`;
  return { promoted: wins, reason: `${cmp} ${wins ? '>' : '<='} minImprovement ${f(minImprovement)}` };
}

const MAX_CONFLICTS = 5;

/** The activities a retrain schedules: store work heartbeated by the worker, evaluation by the trainer. */
function retrainActivities(config: RetrainConfig) {
  const { readChampion, recordRetrainDecision } = proxyActivities<ChampionActivities>({
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: WORKER_HEARTBEAT_TIMEOUT,
    retry: FAULT_RETRY,
  });
  const { evaluateModels } = proxyActivities<ChampionActivities>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: config.trainConfig.timeouts.heartbeatSeconds * 1000,
    retry: FAULT_RETRY,
  });
  return { readChampion, recordRetrainDecision, evaluateModels };
}

/** What the progress query shows; the loop updates it as it goes. */
interface RetrainState {
  phase: RetrainPhase;
  champion: ChampionRecord | null;
  warmStartFrom: string | null;
  decision: DecisionRecord | null;
}

/** What each part of a retrain reads. */
interface Retrain {
  readonly config: RetrainConfig;
  readonly state: RetrainState;
  readonly activities: ReturnType<typeof retrainActivities>;
  /** This retrain's own ids, recorded in the decision and the champion. */
  readonly ids: { readonly workflowId: string; readonly runId: string };
}

export async function retrainModel(input: RetrainInput): Promise<RetrainResult> {
  let config = validateRetrainOrFail(input);
  const info = workflowInfo();
  // Data windows resolve here, from the schedule's nominal time, not in the child (which starts
  // later, unscheduled): the child trains on them, and champion and challenger are evaluated on the
  // same resolved eval window, which the decision records (evalData).
  const windowed = resolveDataWindows(config.train, nominalTime());
  if (windowed && patched(RETRAIN_DATA_WINDOW_PATCH)) config = validateRetrainOrFail({ ...input, train: windowed.input });
  // Retrains that began before ids were made collision-free keep the child id they started with.
  const trainWorkflowId = (patched(RETRAIN_RUN_ID_PATCH) ? uniqueRetrainRunId : retrainRunId)(config.modelName, info.workflowId);
  const retrain: Retrain = {
    config,
    state: { phase: 'reading-champion', champion: null, warmStartFrom: null, decision: null },
    activities: retrainActivities(config),
    ids: { workflowId: info.workflowId, runId: info.runId },
  };
  const { state } = retrain;
  setHandler(retrainProgressQuery, () => ({ modelName: config.modelName, phase: state.phase, trainWorkflowId, champion: state.champion, warmStartFrom: state.warmStartFrom, decision: state.decision }));
  const handOverSignals = forwardControlSignals(state);
  publishPhase(state);

  await failOnBadUris(config);
  const read = await retrain.activities.readChampion({
    modelName: config.modelName,
    ...(config.championRoot !== undefined && { championRoot: config.championRoot }),
    ...(config.trainConfig.checkpoint.uri !== undefined && { checkpointUri: config.trainConfig.checkpoint.uri }),
    metric: config.metric,
    mode: config.mode,
  });
  state.champion = read.champion;
  // warmStartFrom takes the exported model's folder; the champion records its model.json.
  state.warmStartFrom = state.champion ? modelFolderOf(state.champion.modelUri) : null;

  state.phase = 'training';
  publishPhase(state);
  const warmStartFrom = state.warmStartFrom;
  const child = await startChild(trainModel, {
    workflowId: trainWorkflowId,
    args: [{ ...config.train, runId: trainWorkflowId, ...(warmStartFrom !== null && { warmStartFrom }) }],
  });
  await handOverSignals(child);
  const trained = await child.result();
  return decideAndRecord(retrain, read, trained);
}

function publishPhase(state: RetrainState): void {
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: state.phase }]);
}

/**
 * pause / resume / stop act on the training run, so a retrain is controlled like any run; one
 * that arrives before the run has started is passed on as soon as it has (the returned function).
 */
function forwardControlSignals(state: RetrainState): (child: ChildWorkflowHandle<typeof trainModel>) => Promise<void> {
  let child: ChildWorkflowHandle<typeof trainModel> | undefined = undefined;
  const early: Array<SignalDefinition<[], string>> = [];
  for (const signal of [pauseSignal, resumeSignal, stopSignal]) {
    setHandler(signal, async () => {
      if (!child) early.push(signal);
      else if (state.phase === 'training') await child.signal(signal);
    });
  }
  return async (started) => {
    child = started;
    for (const signal of early.splice(0)) await started.signal(signal);
  };
}

/** The champion folder is read before the child (which checks its own URIs) starts: check all here. */
async function failOnBadUris(config: RetrainConfig): Promise<void> {
  const uriIssues = new Checker();
  await checkInputUris(uriIssues, [
    ...(config.championRoot !== undefined ? [{ field: 'championRoot', uri: config.championRoot }] : []),
    ...(config.trainConfig.checkpoint.uri !== undefined ? [{ field: 'train.checkpoint.uri', uri: config.trainConfig.checkpoint.uri }] : []),
    ...trainConfigUris(config.trainConfig, undefined, 'train.'),
  ]);
  if (uriIssues.issues.length > 0) throw invalidConfig(new ConfigError(uriIssues.issues, 'Invalid retrainModel input'));
}

/**
 * Compares the challenger with the champion and records the decision by compare-and-swap; when the
 * champion changed meanwhile, compares again against the new one (at most MAX_CONFLICTS times).
 */
async function decideAndRecord(retrain: Retrain, read: ReadChampionResult, trained: TrainModelResult): Promise<RetrainResult> {
  const { config, state } = retrain;
  let version = read.version;
  for (let conflicts = 0; ; conflicts++) {
    state.phase = 'evaluating';
    publishPhase(state);
    const { challengerMetrics, championMetrics, verdict } = await compareWithChampion(retrain, trained);

    state.phase = 'recording';
    const now = new Date().toISOString();
    const newChampion: ChampionRecord = {
      modelName: config.modelName,
      modelUri: trained.modelUri,
      runId: trained.runId,
      runUri: trained.runUri,
      metrics: challengerMetrics,
      metric: config.metric,
      mode: config.mode,
      promotedAt: now,
      retrain: retrain.ids,
    };
    const champion = state.champion;
    const recorded = await retrain.activities.recordRetrainDecision({
      root: read.root,
      modelName: config.modelName,
      expectedVersion: version,
      newChampion: verdict.promoted ? newChampion : null,
      runUri: trained.runUri,
      decision: {
        modelName: config.modelName,
        promoted: verdict.promoted,
        reason: verdict.reason,
        metric: config.metric,
        mode: config.mode,
        minImprovement: config.minImprovement,
        decidedAt: now,
        retrain: retrain.ids,
        evalData: config.trainConfig.data.eval,
        champion: champion && championMetrics ? { modelUri: champion.modelUri, runId: champion.runId, metrics: championMetrics } : null,
        challenger: { modelUri: trained.modelUri, runId: trained.runId, runUri: trained.runUri, metrics: challengerMetrics, trainMetrics: trained.finalMetrics },
      },
    });
    if (recorded.outcome === 'conflict') {
      if (conflicts + 1 >= MAX_CONFLICTS) {
        throw ApplicationFailure.create({ message: `The champion of ${config.modelName} changed ${MAX_CONFLICTS} times during this retrain`, type: 'ChampionContended' });
      }
      state.champion = recorded.champion;
      version = recorded.version;
      continue;
    }
    const decision = recorded.decision;
    state.decision = decision;
    state.phase = decision.promoted ? 'promoted' : 'rejected';
    publishPhase(state);
    await condition(allHandlersFinished);
    return retrainResult(config, read, trained, decision, decision.promoted ? newChampion : champion!);
  }
}

/** Evaluates champion and challenger on the same eval set and applies the promotion rule. */
async function compareWithChampion(retrain: Retrain, trained: TrainModelResult) {
  const { config, state } = retrain;
  const champion = state.champion;
  const modelUris = champion ? [champion.modelUri, trained.modelUri] : [trained.modelUri];
  const evaluated = await retrain.activities.evaluateModels({ modelUris, data: config.trainConfig.data.eval, loss: config.trainConfig.loss });
  const challengerMetrics = evaluated.metrics[modelUris.length - 1]!;
  const championMetrics = champion ? evaluated.metrics[0]! : null;
  const challengerValue = challengerMetrics[config.metric];
  if (challengerValue === undefined) {
    throw ApplicationFailure.create({
      message: `Expected \`metric\` to be one the evaluation reports (${Object.keys(challengerMetrics).join(', ')}), got ${JSON.stringify(config.metric)}`,
      type: 'InvalidConfig',
      nonRetryable: true,
    });
  }
  const rule = { metric: config.metric, mode: config.mode, minImprovement: config.minImprovement };
  const verdict = decidePromotion(rule, championMetrics ? (championMetrics[config.metric] ?? NaN) : null, challengerValue);
  return { challengerMetrics, championMetrics, verdict };
}

function retrainResult(config: RetrainConfig, read: ReadChampionResult, trained: TrainModelResult, decision: DecisionRecord, champion: ChampionRecord): RetrainResult {
  return {
    modelName: config.modelName,
    promoted: decision.promoted,
    reason: decision.reason,
    decision,
    champion,
    championUri: read.championUri,
    train: {
      runId: trained.runId,
      runUri: trained.runUri,
      status: trained.status,
      epochs: trained.epochs,
      modelUri: trained.modelUri,
      finalMetrics: trained.finalMetrics,
      backend: trained.backend,
    },
  };
}
