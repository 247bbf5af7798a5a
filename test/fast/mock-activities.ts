/**
 * Scripted activities for the fast tier: the real workflows run on the real dev server against
 * these, with no trainer process and no tfjs. A test scripts the eval metrics of every epoch of
 * every run, failures and gates; the mock keeps in memory what the real activities would write
 * (epoch records, checkpoints, exports, the champion pointer and decisions) and logs every call,
 * so the test checks what the workflow decided, not how a model trained.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Activities } from '../../src/activities';
import {
  championKey,
  checkpointUri,
  decisionKey,
  exportedModelUri,
  joinUri,
  LEARNING_CURVE_PNG,
  LEARNING_CURVE_SVG,
  METRICS_JSONL,
  MODEL_JSON,
  RESULTS_CSV,
  RESULTS_JSON,
  RESULTS_SVG,
  rungModelDir,
  searchLogKey,
} from '../../src/checkpoints/layout';
import { encodeSearchLogSegment, readSearchLog } from '../../src/checkpoints/search-log';
import type { CheckpointStore } from '../../src/checkpoints/store';
import { ConfigError } from '../../src/config/validate';
import { createTrialOutcomeActivities } from '../../src/activities/trial-outcome';
import { tableFromLog } from '../../src/activities/search-results';

export type ActivityName = keyof Activities;
export type Input<K extends ActivityName> = Parameters<Activities[K]>[0];
export type Output<K extends ActivityName> = Awaited<ReturnType<Activities[K]>>;
/** What both training activities share (trainUntilStep's input; trainEpoch's adds the epoch's bookkeeping). */
export type TrainInput = Input<'trainUntilStep'>;
export type EpochRecord = Output<'readRunRecords'>[number];
export type ChampionRecord = NonNullable<Output<'readChampion'>['champion']>;
export type DecisionRecord = Extract<Output<'recordRetrainDecision'>, { outcome: 'recorded' }>['decision'];

export interface EpochContext {
  /** The run's id: the last segment of its URI (`trial-3` in a search). */
  readonly runId: string;
  readonly runUri: string;
  readonly config: TrainInput['config'];
  readonly epoch: number;
  readonly learningRate: number;
}

export interface ActivityCall {
  readonly name: ActivityName;
  readonly input: unknown;
  readonly attempt: number;
}

export interface Script {
  /** Eval metrics of one epoch (merged over `{ loss }` as the real evaluateCheckpoint records them). */
  evalMetrics(at: EpochContext): Record<string, number>;
  /** Mean training loss of one epoch. @default 1 / epoch */
  trainLoss?(at: EpochContext): number;
  /** An error to throw instead of running this attempt of an activity (a plain Error retries). */
  fail?(call: ActivityCall): Error | undefined;
  /** Awaited inside trainUntilStep / trainEpoch while it heartbeats: a gate the test opens; a cancellation ends it. */
  beforeTrain?(input: TrainInput): Promise<void> | void;
  /** Metrics evaluateModels reports for a model this mock did not export. */
  modelMetrics?(modelUri: string): Record<string, number> | undefined;
  /** Runs before recordRetrainDecision compares versions: a test may promote another model here. */
  beforeRecordDecision?(mock: MockActivities, input: Input<'recordRetrainDecision'>): void;
}

export const MOCK_ROOT = 'file:///mock-checkpoints';
export const MOCK_WORKER = { models: ['mlp', 'cnn'], datasets: ['synthetic', 'mnist'] } as const;

const runIdOf = (runUri: string): string => runUri.slice(runUri.lastIndexOf('/') + 1);

export class MockActivities {
  readonly calls: ActivityCall[] = [];
  /** trainUntilStep / trainEpoch calls that ended by cancellation (a `stop`). */
  readonly cancelled: TrainInput[] = [];
  /** Epoch records per run URI, as `metrics/epoch-*.json` would hold them. */
  readonly records = new Map<string, EpochRecord[]>();
  /** Checkpointed steps per run URI. */
  readonly checkpoints = new Map<string, Set<number>>();
  /** Exported model URI → the metrics of the epoch it was exported from. */
  readonly exports = new Map<string, Record<string, number>>();
  readonly champions = new Map<string, { champion: ChampionRecord; version: string }>();
  readonly decisions = new Map<string, DecisionRecord[]>();
  /** Search log segments by full URI, as the real activity writes them (src/checkpoints/search-log.ts). */
  readonly searchLogs = new Map<string, Buffer>();
  private versions = 0;

  /** The search log of `searchUri` as a read-only store (what readSearchLog and tableFromLog read). */
  logStore(searchUri: string): CheckpointStore {
    return { uri: searchUri, uriOf: (k: string) => joinUri(searchUri, k), get: async (k: string) => this.searchLogs.get(joinUri(searchUri, k)) } as unknown as CheckpointStore;
  }
  private built: Activities | undefined;

  constructor(private readonly script: Script) {}

  /** The calls of one activity, in order. */
  inputs<K extends ActivityName>(name: K): Array<Input<K>> {
    return this.calls.filter((c) => c.name === name).map((c) => c.input as Input<K>);
  }

  /** Puts a champion in place, as an earlier retrain would have. */
  setChampion(champion: ChampionRecord): string {
    const version = `v${++this.versions}`;
    this.champions.set(champion.modelName, { champion, version });
    return version;
  }

  /** Records a run's epochs and checkpoints as an earlier, interrupted run would have left them. */
  seedRun(runUri: string, records: readonly EpochRecord[]): void {
    this.records.set(runUri, [...records]);
    this.checkpoints.set(runUri, new Set(records.map((r) => r.step)));
  }

  private enter(name: ActivityName, input: unknown): void {
    const call = { name, input, attempt: Context.current().info.attempt };
    this.calls.push(call);
    const err = this.script.fail?.(call);
    if (err) throw err;
  }

  private epochContext(runUri: string, config: TrainInput['config'], epoch: number, learningRate: number): EpochContext {
    return { runId: runIdOf(runUri), runUri, config, epoch, learningRate };
  }

  /** What trainUntilStep (and trainEpoch's training part) does: "trains" to the step, gated by the script. */
  private async train(input: TrainInput) {
    if (this.script.beforeTrain) {
      const ctx = Context.current();
      // Cancellation reaches an activity only through its heartbeats.
      const beat = setInterval(() => ctx.heartbeat(), 100);
      try {
        await Promise.race([this.script.beforeTrain(input), ctx.cancelled]);
      } catch (err) {
        if (err instanceof CancelledFailure) this.cancelled.push(input);
        throw err;
      } finally {
        clearInterval(beat);
      }
    }
    const { runUri, config, targetStep } = input;
    const epoch = Math.ceil(targetStep / config.stepsPerEpoch);
    const steps = this.checkpoints.get(runUri) ?? new Set<number>();
    this.checkpoints.set(runUri, steps.add(targetStep));
    const at = this.epochContext(runUri, config, epoch, input.learningRate);
    return {
      step: targetStep,
      checkpointStep: targetStep,
      checkpointUri: checkpointUri(runUri, targetStep),
      loss: this.script.trainLoss?.(at) ?? 1 / epoch,
      stepsRun: config.stepsPerEpoch,
      resumedFromStep: targetStep - config.stepsPerEpoch,
      seconds: 0.25,
      backend: 'mock',
      cancelled: false,
      attempt: Context.current().info.attempt,
    };
  }

  /** Stores an epoch's record once, as the real activities do (a retry with other bytes is refused); returns the stored one. */
  private record(runUri: string, record: EpochRecord): EpochRecord {
    const records = this.records.get(runUri) ?? [];
    const existing = records.find((r) => r.epoch === record.epoch);
    if (existing && JSON.stringify(existing) !== JSON.stringify(record)) {
      throw ApplicationFailure.nonRetryable(`Refusing to overwrite the record of epoch ${record.epoch} of ${runUri}`, 'WouldOverwrite');
    }
    if (!existing) this.records.set(runUri, [...records, record]);
    return existing ?? record;
  }

  /** Every activity, typed as the real ones: a changed signature breaks this at compile time. */
  activities(): Activities {
    this.built ??= this.build();
    return this.built;
  }

  private build(): Activities {
    return {
      // Allows every URI, unrecorded: the allow-list itself is tested in test/trust*.test.ts.
      checkUris: async () => ({ issues: [] }),
      // The real one: it reads a child's outcome from the (real) server, nothing a script decides.
      ...createTrialOutcomeActivities(),
      describeWorker: async () => {
        this.enter('describeWorker', undefined);
        return {
          ...MOCK_WORKER,
          models: [...MOCK_WORKER.models],
          datasets: [...MOCK_WORKER.datasets],
          backend: { name: 'mock', package: 'none', gpu: false, notes: [] },
          pid: process.pid,
          checkpointRoot: MOCK_ROOT,
        };
      },

      trainUntilStep: async (input) => {
        this.enter('trainUntilStep', input);
        return this.train(input);
      },

      trainEpoch: async (input) => {
        this.enter('trainEpoch', input);
        // As the real one: an epoch whose record and checkpoint are stored is returned as recorded.
        const stored = this.records.get(input.runUri)?.find((r) => r.epoch === input.epoch);
        if (stored && this.checkpoints.get(input.runUri)?.has(input.targetStep)) {
          return { record: stored, trained: null, evaluated: null, attempt: Context.current().info.attempt };
        }
        const trained = await this.train(input);
        const metrics = this.script.evalMetrics(this.epochContext(input.runUri, input.config, input.epoch, input.learningRate));
        const record = this.record(input.runUri, {
          epoch: input.epoch,
          step: trained.step,
          learningRate: input.learningRate,
          metrics: { loss: trained.loss, ...metrics },
          recordedAt: input.recordedAt,
          trainSeconds: trained.seconds,
          trainAttempt: trained.attempt,
        });
        return { record, trained, evaluated: { step: trained.step, metrics, examples: 64, seconds: 0.01 }, attempt: trained.attempt };
      },

      startTracking: async (input) => {
        this.enter('startTracking', input);
        return null;
      },

      syncTracking: async (input) => {
        this.enter('syncTracking', input);
        return { logged: 0 };
      },

      evaluateCheckpoint: async (input) => {
        this.enter('evaluateCheckpoint', input);
        const metrics = this.script.evalMetrics(this.epochContext(input.runUri, input.config, input.epoch, input.learningRate));
        this.record(input.runUri, { epoch: input.epoch, step: input.step, learningRate: input.learningRate, metrics: { ...input.trainMetrics, ...metrics } });
        return { step: input.step, metrics, examples: 64, seconds: 0.01 };
      },

      readRunRecords: async (input) => {
        this.enter('readRunRecords', input);
        return [...(this.records.get(input.runUri) ?? [])].sort((a, b) => a.epoch - b.epoch);
      },

      finalizeRun: async (input) => {
        this.enter('finalizeRun', input);
        const { runUri, modelStep } = input;
        if (!this.checkpoints.get(runUri)?.has(modelStep)) {
          throw ApplicationFailure.nonRetryable(`Cannot export ${checkpointUri(runUri, modelStep)}: no such checkpoint`, 'CheckpointUnusable');
        }
        const modelUri = exportedModelUri(runUri);
        const metrics = { ...this.records.get(runUri)?.find((r) => r.step === modelStep)?.metrics };
        const earlier = this.exports.get(modelUri);
        if (earlier && !input.config.resume && JSON.stringify(earlier) !== JSON.stringify(metrics)) {
          throw ApplicationFailure.nonRetryable(`Refusing to overwrite ${modelUri}: it holds a different model`, 'WouldOverwrite');
        }
        this.exports.set(modelUri, metrics);
        // As the real one: a search's trial draws no curve unless asked.
        const trialOfSearch = input.parentWorkflowId !== undefined && (Context.current().info.workflowExecution?.workflowId ?? '').startsWith(`${input.parentWorkflowId}/trial-`);
        const plotUri = (input.learningCurve ?? !trialOfSearch) ? joinUri(runUri, LEARNING_CURVE_SVG) : null;
        return { modelUri, metricsUri: joinUri(runUri, METRICS_JSONL), plotUri, deletedSteps: [] };
      },

      renderLearningCurve: async (input) => {
        this.enter('renderLearningCurve', input);
        return { svgUri: joinUri(input.runUri, LEARNING_CURVE_SVG), pngUri: joinUri(input.runUri, LEARNING_CURVE_PNG) };
      },

      readChampion: async (input) => {
        this.enter('readChampion', input);
        const root = (input.championRoot ?? input.checkpointUri ?? MOCK_ROOT).replace(/\/+$/, '');
        const current = this.champions.get(input.modelName);
        return {
          root,
          checkpointRoot: MOCK_ROOT,
          championUri: joinUri(root, championKey(input.modelName)),
          champion: current?.champion ?? null,
          version: current?.version ?? null,
        };
      },

      evaluateModels: async (input) => {
        this.enter('evaluateModels', input);
        const metrics = input.modelUris.map((uri) => {
          const m = this.exports.get(uri) ?? this.script.modelMetrics?.(uri);
          if (!m) throw ApplicationFailure.nonRetryable(`No model at ${uri}`, 'ModelNotFound');
          return m;
        });
        return { metrics, examples: 64, seconds: 0.01 };
      },

      recordRetrainDecision: async (input) => {
        this.enter('recordRetrainDecision', input);
        this.script.beforeRecordDecision?.(this, input);
        const { modelName, decision } = input;
        const current = this.champions.get(modelName);
        const ours = current !== undefined && current.champion.retrain.workflowId === decision.retrain.workflowId && current.champion.retrain.runId === decision.retrain.runId;
        if (!ours && (current?.version ?? null) !== input.expectedVersion) {
          return { outcome: 'conflict', champion: current?.champion ?? null, version: current?.version ?? null };
        }
        if (decision.promoted && !ours) {
          if (!input.newChampion) throw ApplicationFailure.nonRetryable('A promotion needs the new champion record', 'BadDecision');
          this.setChampion(input.newChampion);
        }
        const decisions = this.decisions.get(modelName) ?? [];
        const mine = decisions.find((d) => d.retrain.workflowId === decision.retrain.workflowId && d.retrain.runId === decision.retrain.runId);
        if (mine) return { outcome: 'recorded', decision: mine };
        const number = decisions.length + 1;
        const record: DecisionRecord = {
          number,
          ...decision,
          decisionUri: joinUri(input.root, decisionKey(modelName, number)),
          championUri: joinUri(input.root, championKey(modelName)),
        };
        this.decisions.set(modelName, [...decisions, record]);
        return { outcome: 'recorded', decision: record };
      },

      archiveTrialModel: async (input) => {
        this.enter('archiveTrialModel', input);
        const from = exportedModelUri(input.runUri);
        const metrics = this.exports.get(from);
        if (!metrics) return { modelUri: null };
        const to = joinUri(input.runUri, rungModelDir(input.rung), MODEL_JSON);
        this.exports.set(to, metrics);
        this.exports.delete(from);
        return { modelUri: to };
      },

      copyTrialCheckpoint: async (input) => {
        this.enter('copyTrialCheckpoint', input);
        // As the real one: only a committed checkpoint of the donor at that very step is copied.
        if (!this.checkpoints.get(input.fromRunUri)?.has(input.step)) {
          throw ApplicationFailure.nonRetryable(`Cannot copy ${checkpointUri(input.fromRunUri, input.step)}: no manifest`, 'CheckpointUnusable');
        }
        this.checkpoints.set(input.toRunUri, (this.checkpoints.get(input.toRunUri) ?? new Set<number>()).add(input.step));
        return { checkpointUri: checkpointUri(input.toRunUri, input.step), manifestSha256: `copy-of-${input.fromTrial}-${input.step}`, copied: true };
      },

      claimSearchFolder: async (input) => {
        this.enter('claimSearchFolder', input);
        // The owner record itself is tested against a real store (test/folder-owners.test.ts).
        return { created: this.calls.filter((c) => c.name === 'claimSearchFolder' && (c.input as typeof input).searchUri === input.searchUri).length === 1 };
      },

      // The real segment format and bounds, kept in memory; the owner check and the stores are tested in test/search-log*.test.ts.
      appendSearchLog: async (input) => {
        this.enter('appendSearchLog', input);
        let data: Buffer;
        try {
          data = encodeSearchLogSegment(input.seq, input.rows);
        } catch (err) {
          if (err instanceof ConfigError) throw ApplicationFailure.create({ message: err.message, type: 'InvalidConfig', nonRetryable: true, details: [err.issues] });
          throw err;
        }
        const key = searchLogKey(input.seq);
        const uri = joinUri(input.searchUri, key);
        const existing = this.searchLogs.get(uri);
        if (existing && !existing.equals(data)) throw ApplicationFailure.nonRetryable(`Refusing to overwrite ${uri}: this search log segment holds different rows`, 'WouldOverwrite');
        this.searchLogs.set(uri, data);
        return { key };
      },

      readSearchLog: async (input) => {
        this.enter('readSearchLog', input);
        return readSearchLog(this.logStore(input.searchUri), { ...(input.fromSeq !== undefined && { fromSeq: input.fromSeq }), maxRows: input.maxRows ?? 1000 });
      },

      writeSearchResults: async (input) => {
        this.enter('writeSearchResults', input);
        const { searchUri } = input;
        const written = { resultsUri: joinUri(searchUri, RESULTS_JSON), csvUri: joinUri(searchUri, RESULTS_CSV), plotUri: joinUri(searchUri, RESULTS_SVG) };
        // A search that stores its rows gets its small table back from its log, as the real activity returns it.
        if (input.logUri === undefined) return written;
        return { ...written, ...(await tableFromLog(this.logStore(searchUri), input)).small };
      },
    };
  }
}

/** A gate a scripted activity waits on until the test opens it. */
export function gate(): { readonly wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}
