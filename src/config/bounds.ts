/**
 * Upper bounds for every number an input may carry, sized to what one worker can do. A number
 * past them is a typo or an attack (`stepsPerEpoch: 1e12` would run for ever), so the parsers
 * refuse it before any activity starts. Pure: workflows import it.
 */
import { MAX_STEP } from '../checkpoints/layout';

/** One epoch is one activity: 1e8 steps is over a day at 1,000 steps/s, past any sane `epochMinutes`. */
export const MAX_STEPS_PER_EPOCH = 100_000_000;
/** Each epoch is a few history events and a metrics record: a million is years of daily epochs. */
export const MAX_EPOCHS = 1_000_000;
/** stepsPerEpoch × maxEpochs: 1e10 steps is months at 1,000 steps/s, and stays far below MAX_STEP (step keys have 12 digits). */
export const MAX_TOTAL_STEPS = Math.min(10_000_000_000, MAX_STEP);
/** Retention lists and reads every kept checkpoint's manifest. */
export const MAX_KEEP_LAST = 10_000;
/** A week: a time-based checkpoint further apart than that is no checkpoint. */
export const MAX_CHECKPOINT_SECONDS = 7 * 24 * 3600;
/** A week for one epoch's activity (the default is a day). */
export const MAX_EPOCH_MINUTES = 7 * 24 * 60;
export const MAX_HEARTBEAT_SECONDS = 3600;
export const MAX_BATCH_SIZE = 65_536;
/** Examples taken from a dataset (`limit`): a 32-bit index. */
export const MAX_DATASET_LIMIT = 2 ** 31 - 1;
/** tfjs initializers and our hash take 32-bit seeds; 0 means "unseeded" to some of them. */
export const MAX_SEED = 2 ** 31 - 1;
/** Far above any learning rate that trains; a larger one is a typo (1e3 for 1e-3). */
export const MAX_LEARNING_RATE = 1000;
/** Patience, cooldown and startFromEpoch count epochs. */
export const MAX_EPOCH_COUNT = MAX_EPOCHS;
export const MAX_HISTORY_LIMIT = 10_000;
/** Metric names, monitors and the like. */
export const MAX_NAME_LENGTH = 128;
/** URIs: well above any real bucket path, well below anything that bloats history. */
export const MAX_URI_LENGTH = 1024;

/** Built-in models: layers per list and units per layer. The memory estimate refuses what does not fit the trainer. */
export const MAX_LAYERS = 100;
export const MAX_UNITS = 2 ** 24;
/** Built-in `synthetic` dataset: its whole array must stay far below the trainer's memory (1e8 floats = 400 MB). */
export const MAX_SYNTHETIC_FEATURES = 100_000;
export const MAX_SYNTHETIC_CLASSES = 10_000;
export const MAX_SYNTHETIC_SIZE = 10_000_000;
export const MAX_SYNTHETIC_FLOATS = 100_000_000;
export const MAX_SYNTHETIC_NOISE = 1_000_000;
