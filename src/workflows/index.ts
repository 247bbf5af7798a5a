/** Every workflow of durable-train: the worker bundles this file. */
export { trainModel, stopSignal, pauseSignal, resumeSignal, progressQuery } from './train-model';
export type { TrainProgress, TrainModelResult, TrainLoopState, EpochHistoryEntry, BestSoFar, RunStatus } from './train-model';
export * from './retrain-model';
export * from './hyperparameter-search';
