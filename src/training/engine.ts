/**
 * What the trainer process calls: train to a step, evaluate a checkpoint, evaluate exported
 * models. A thin dispatcher over the training routes (route.ts; the router picks one), with the
 * parts every route shares written once: which session to continue from (the one in memory when
 * it equals the newest good checkpoint at or below the target, else that checkpoint, else fresh or
 * warm-started), the step loop (step-loop.ts), and committing checkpoints. It keeps one run's
 * session in memory between activities, and every piece of training state in checkpoints, so
 * that a resumed run is bitwise equal to an uninterrupted one.
 */
import { mark } from './timeline';
import { loadLatestCheckpoint, readCheckpoint } from '../checkpoints/format';
import { LeaseLostError, acquireLease, readLease, type LeaseHolder } from '../checkpoints/lease';
import { LEASE_KEY, checkpointKey, modelFolderOf, PREPROCESSING_JSON } from '../checkpoints/layout';
import type { CheckpointStore } from '../checkpoints/store';
import { SHARDED_DATASET } from '../config/sharded-data';
import type { TrainConfig } from '../config/train-config';
import { openShardedSource, ShardedSource, type BlockSource } from '../data/streamed';
import { BatchAssembler } from './batch';
import type { Dataset, DatasetShapes } from './dataset';
import { evalExamples, isEvalStream } from './eval-data';
import { readExportedModel, readWarmStartSource } from './model-sources';
import type {
  EvaluateModelsRequest,
  EvaluateModelsResult,
  EvaluateRequest,
  EvaluateResult,
  Progress,
  TrainEpochTrainerResult,
  TrainRequest,
  TrainUntilStepResult,
} from './protocol';
import { unsupported, type RouteDeps, type RouteSession, type SessionTarget, type TrainingRoute } from './route';
import { builtInRoutes, Router } from './router';
import { loadDataForModel, loadEvalData, loadTrainData, preprocessingObject } from './run-preprocessing';
import { UserBlockSource, type RecordSourceFactory } from './record-source';
import { checkDataShapes } from './shape-check';
import { runSteps, sessionIsNewest } from './step-loop';

const sameHolder = (a: LeaseHolder, b: LeaseHolder): boolean =>
  a.workflowId === b.workflowId && a.workflowRunId === b.workflowRunId && a.activityId === b.activityId && a.attempt === b.attempt;

interface Current {
  readonly route: TrainingRoute;
  readonly session: RouteSession;
}

/**
 * The spec whose fitted transform evaluation applies when the run stored none: the training set's,
 * except a streamed (`sharded`) one, which fits none and is never loaded whole for it.
 */
function transformSpecOf(config: TrainConfig, datasets: RouteDeps['datasets']) {
  const streamed = config.data.train.name === SHARDED_DATASET || datasets.streamed(config.data.train.name) !== undefined;
  return streamed ? config.data.eval : config.data.train;
}

export class Engine {
  private current: Current | undefined;
  private readonly router: Router;
  /** The streamed training set of the last request (its cache of decoded shards is kept between requests of the same run). */
  private streamed: { readonly key: string; readonly source: BlockSource } | undefined;

  constructor(
    private readonly deps: RouteDeps,
    routes: readonly TrainingRoute[] = builtInRoutes(deps),
  ) {
    this.router = new Router(routes);
  }

  private dropSession(): void {
    if (!this.current) return;
    this.current.route.closeSession(this.current.session);
    this.current = undefined;
  }

  /** Drops everything the engine and its routes hold (the memory check and shutdown). */
  dispose(): void {
    this.dropSession();
    this.streamed?.source.close();
    this.streamed = undefined;
    for (const route of this.router.routes) route.dispose();
  }

  /** The run's streamed training set: its data index checked against a fresh listing on every request, the source kept when unchanged. */
  private async openStreamed(store: CheckpointStore, req: TrainRequest): Promise<ShardedSource> {
    const { config } = req;
    const key = JSON.stringify([req.runUri, config.data.train, config.hyperparameters.batchSize, config.seed]);
    const source = await openShardedSource(store, config.data.train, config.hyperparameters.batchSize, config.seed, {
      log: this.deps.log,
      ...(this.streamed?.key === key && this.streamed.source instanceof ShardedSource && { previous: this.streamed.source }),
    });
    if (this.streamed && this.streamed.source !== source) this.streamed.source.close();
    this.streamed = { key, source };
    return source;
  }

  /** A user's streamed training set (registerStreamed): kept between requests of the same run. */
  private async openUserStreamed(req: TrainRequest, factory: RecordSourceFactory): Promise<BlockSource> {
    const { config } = req;
    const key = JSON.stringify([req.runUri, config.data.train, config.hyperparameters.batchSize, config.seed]);
    if (this.streamed?.key === key) return this.streamed.source;
    const spec = config.data.train;
    const source = new UserBlockSource(spec.name, await factory(spec), config.hyperparameters.batchSize, config.seed, {
      ...(spec.limit !== undefined && { limit: spec.limit }),
    });
    this.streamed?.source.close();
    this.streamed = { key, source };
    return source;
  }

  /** A fresh session at step 0, warm-started when the config says so (the source is read first: a bad one fails before any loading). */
  private async openFresh(route: TrainingRoute, target: SessionTarget, train: Dataset): Promise<RouteSession> {
    const from = target.config.warmStartFrom;
    if (from !== undefined && !route.warmStart) throw unsupported(route, 'warm starts (`warmStartFrom`)');
    const source = from !== undefined ? await readWarmStartSource(from, this.deps.openStore, this.deps.log) : undefined;
    const session = await route.openFresh(target, train);
    try {
      if (source) await route.warmStart!(session, source, from!);
    } catch (err) {
      route.closeSession(session);
      throw err;
    }
    return session;
  }

  /** The session to continue from: memory if it equals the newest good checkpoint, else that checkpoint, else fresh. */
  private async open(route: TrainingRoute, req: TrainRequest, store: CheckpointStore, train: Dataset): Promise<RouteSession> {
    const c = this.current;
    if (c && c.route === route && (await sessionIsNewest(store, c.session, req.runUri, req.targetStep))) return c.session;
    this.dropSession();
    const ckpt = await loadLatestCheckpoint(store, req.targetStep, this.deps.log);
    // Before the first step: the evaluation split must fit the model built for the training split.
    if (!ckpt) {
      const evalData = await loadEvalData(this.deps.datasets, store, req.config.data.eval, req.config.data.train, 0);
      try {
        checkDataShapes(train, evalData);
      } finally {
        if (isEvalStream(evalData)) evalData.close?.();
      }
    }
    const session = ckpt ? await route.restore(ckpt, req, train) : await this.openFresh(route, req, train);
    this.current = { route, session };
    return session;
  }

  /** `whileCommitting`: work on the session at the target step, overlapped with the write of its checkpoint (trainEpoch's evaluation). */
  async train(
    req: TrainRequest,
    onProgress: (p: Progress) => void,
    isCancelled: () => boolean,
    whileCommitting?: (route: TrainingRoute, session: RouteSession) => Promise<void>,
  ): Promise<TrainUntilStepResult> {
    const started = Date.now();
    mark('train-request', { runUri: req.runUri, targetStep: req.targetStep });
    const { config } = req;
    const route = this.router.forSpec(config.model);
    const store = this.deps.openStore(req.runUri);
    const user = this.deps.datasets.streamed(config.data.train.name);
    const streamed = config.data.train.name === SHARDED_DATASET ? await this.openStreamed(store, req) : user ? await this.openUserStreamed(req, user) : undefined;
    const train = streamed ? streamed.shapes() : await loadTrainData(this.deps.datasets, store, config.data.train);
    const preprocessing = preprocessingObject(train);
    mark('data-loaded');
    try {
      // The lease before the session: a newer attempt fences the one it replaces (a zombie still
      // training after a heartbeat timeout) first, then loads what that one committed.
      const lease = req.holder && (await acquireLease(store, req.holder));
      mark('lease');
      const session = await this.open(route, req, store, train);
      mark('session-open', { step: session.step });
      let firstStep = true;
      let committed = session.step;
      if (session.learningRate !== req.learningRate) {
        route.setLearningRate(session, req.learningRate);
        session.learningRate = req.learningRate;
      }
      const batch = new BatchAssembler(streamed ?? train, config.hyperparameters.batchSize, config.seed);
      const step = route.stepper(session, config);
      const before = streamed && { ...streamed.stats };
      const result = await runSteps({
        req,
        store,
        session,
        trainStep: (n) => {
          batch.fill(n);
          const cost = step(n, batch);
          if (firstStep) {
            firstStep = false;
            mark('first-step', { step: n });
          }
          return cost;
        },
        ...(streamed && { beforeStep: (n: number) => batch.prepare(n) }),
        snapshot: async () => {
          const objects = await route.snapshot(session, config);
          if (preprocessing) objects.set(PREPROCESSING_JSON, preprocessing);
          return objects;
        },
        lease,
        ...(whileCommitting && { whileCommitting: () => whileCommitting(route, session) }),
        // The timeline's checkpoint moments: the progress that first names a newly committed step.
        onProgress: (p) => {
          if (p.checkpointStep !== committed) mark('checkpoint', { step: (committed = p.checkpointStep) });
          onProgress(p);
        },
        isCancelled,
        faults: this.deps.faults,
        log: this.deps.log,
        backend: this.deps.backend.name,
        started,
      });
      if (streamed && before) {
        const s = streamed.stats;
        this.deps.log(`data: ${s.reads - before.reads} shard reads; ${s.waits - before.waits} of ${result.stepsRun} steps waited for data, ${Math.round(s.waitMs - before.waitMs)} ms in all`);
      }
      return result;
    } catch (err) {
      // Memory no longer matches any checkpoint we can vouch for (and after a lost lease it is a
      // zombie's: the attempt that took over owns the run now).
      this.dropSession();
      throw err;
    }
  }

  /**
   * An epoch in one request: trains to the step and evaluates the state there while its checkpoint
   * is written (training has stopped, the snapshot is taken: nothing changes the weights), then
   * answers once both are done, so the answer still means "committed". When memory is not what was
   * committed (another writer committed other bytes for the step), the stored checkpoint is
   * evaluated instead, as `evaluate` does.
   */
  async trainEpoch(req: TrainRequest, onProgress: (p: Progress) => void, isCancelled: () => boolean): Promise<TrainEpochTrainerResult> {
    const store = this.deps.openStore(req.runUri);
    let overlapped: EvaluateResult | undefined;
    const trained = await this.train(req, onProgress, isCancelled, async (route, session) => {
      const started = Date.now();
      const data = await loadEvalData(this.deps.datasets, store, req.config.data.eval, transformSpecOf(req.config, this.deps.datasets), session.step);
      const metrics = await route.evaluate(session, data, req.config.loss);
      overlapped = { step: session.step, metrics, examples: evalExamples(data), seconds: (Date.now() - started) / 1000 };
    });
    if (trained.cancelled) return { trained, evaluated: null };
    const c = this.current;
    if (overlapped && c?.session.runUri === req.runUri && c.session.step === trained.step && c.session.committedSha256 !== undefined) return { trained, evaluated: overlapped };
    // No step ran (the target was already checkpointed) or memory is not the committed state.
    const evaluated = await this.evaluate({ runUri: req.runUri, config: req.config, step: trained.step, ...(req.holder && { holder: req.holder }) });
    return { trained, evaluated };
  }

  async evaluate(req: EvaluateRequest): Promise<EvaluateResult> {
    const started = Date.now();
    const route = this.router.forSpec(req.config.model);
    const store = this.deps.openStore(req.runUri);
    if (req.holder) {
      const current = await readLease(store);
      if (!current || !sameHolder(current.holder, req.holder)) {
        throw new LeaseLostError(store.uriOf(LEASE_KEY), { token: null, holder: req.holder }, current);
      }
    }
    const data = await loadEvalData(this.deps.datasets, store, req.config.data.eval, transformSpecOf(req.config, this.deps.datasets), req.step);
    const c = this.current;
    let session: RouteSession;
    let temporary = false;
    if (c && c.route === route && c.session.runUri === req.runUri && c.session.step === req.step && c.session.committedSha256) {
      session = c.session;
    } else {
      const read = await readCheckpoint(store, req.step);
      if (!read.ok) throw new Error(`Cannot evaluate ${store.uriOf(checkpointKey(req.step))}: ${read.reason}`);
      const target = { runUri: req.runUri, config: req.config, learningRate: req.config.hyperparameters.learningRate };
      const shapes: DatasetShapes = data;
      if (route.singleSession) {
        // The route's variables move to this checkpoint: it becomes the session.
        this.dropSession();
        session = await route.restore(read.checkpoint, target, shapes);
        this.current = { route, session };
      } else {
        session = await route.restore(read.checkpoint, target, shapes);
        temporary = true;
      }
    }
    try {
      const metrics = await route.evaluate(session, data, req.config.loss);
      return { step: req.step, metrics, examples: evalExamples(data), seconds: (Date.now() - started) / 1000 };
    } finally {
      if (temporary) route.closeSession(session);
    }
  }

  /** Evaluates exported models (champion and challenger) on the same dataset, each on the route its model.json names. */
  async evaluateModels(req: EvaluateModelsRequest): Promise<EvaluateModelsResult> {
    const started = Date.now();
    let examples = 0;
    const metrics: Array<Record<string, number>> = [];
    for (const uri of req.modelUris) {
      // Each model sees the data through the transform exported beside it (champion and challenger may differ).
      const data = await loadDataForModel(this.deps.datasets, this.deps.openStore(modelFolderOf(uri)), req.data);
      const model = await readExportedModel(uri, this.deps.openStore);
      const route = this.router.forExport(model);
      if (!route.evaluateExport) throw unsupported(route, 'evaluating exported models');
      if (route.singleSession && this.current?.route === route) this.dropSession();
      metrics.push(await route.evaluateExport(model, data, req.loss));
      examples = evalExamples(data);
    }
    return { metrics, examples, seconds: (Date.now() - started) / 1000 };
  }
}
