/**
 * Upper bounds for every number an input may carry, sized to what one worker can do. A number
 * past them is a typo or an attack (`stepsPerEpoch: 1e12` would run for ever), so the parsers
 * refuse it before any activity starts. Pure: workflows import it.
 */

/** Digits of a step key (checkpoints/layout.ts): steps above MAX_STEP have no key, so the bounds refuse them before training. */
export const STEP_DIGITS = 12;
export const MAX_STEP = 10 ** STEP_DIGITS - 1;

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

/**
 * A workflow input, JSON-encoded. Temporal refuses a payload past 2 MB, and trainModel and
 * hyperparameterSearch carry their input through continue-as-new beside their state, so the input
 * must leave room for it.
 */
export const MAX_INPUT_BYTES = 1024 * 1024;
/** An Update's payload (an edit of a running search): each accepted one is kept in the search's state. */
export const MAX_UPDATE_BYTES = 64 * 1024;
/**
 * Nesting of objects and arrays in any input. A Keras topology nests about ten levels (a model in a
 * model, twenty); thousands overflow the stack of any recursive reader.
 */
export const MAX_INPUT_DEPTH = 64;

/**
 * Bytes (as compact JSON, in UTF-16 code units: exact for ASCII without escapes) and nesting depth of `value`, walked
 * with an explicit stack so that no input can overflow ours: the first thing every workflow and
 * Update validator runs, before any recursive reader sees the value. Stops at the first bound
 * crossed, so the walk itself costs at most `maxBytes` worth of work. `field` names the value
 * (`input`, `edit`); a deep field is named by its path below it (`model.topology.config…`).
 * Pure: workflows import it.
 */
export function inputSizeIssues(value: unknown, field: string, opts: { maxBytes?: number; maxDepth?: number } = {}): Array<{ field: string; expected: string; received: string }> {
  const maxBytes = opts.maxBytes ?? MAX_INPUT_BYTES;
  const maxDepth = opts.maxDepth ?? MAX_INPUT_DEPTH;
  interface Node { readonly value: unknown; readonly depth: number; readonly parent: Node | undefined; readonly key: string }
  const pathOf = (node: Node): string => {
    const keys: string[] = [];
    for (let n: Node | undefined = node; n?.parent; n = n.parent) keys.push(n.key);
    keys.reverse();
    // A path 64 levels deep is unreadable: its first levels say where, its last one what.
    const path = (keys.length > 6 ? `${keys.slice(0, 4).join('')}…${keys[keys.length - 1]!}` : keys.join('')).replace(/^\./, '');
    return path === '' ? field : path;
  };
  const tooBig = () => [{ field, expected: `at most ${maxBytes} bytes as JSON`, received: `more than ${maxBytes} bytes` }];
  const stack: Node[] = [{ value, depth: 0, parent: undefined, key: '' }];
  let bytes = 0;
  while (stack.length > 0) {
    const node = stack.pop()!;
    const v = node.value;
    if (typeof v === 'string') bytes += v.length + 2;
    else if (v !== null && typeof v === 'object') {
      if (node.depth >= maxDepth) {
        return [{ field: pathOf(node), expected: `at most ${maxDepth} levels of nested objects and arrays`, received: `more than ${maxDepth} levels` }];
      }
      bytes += 2;
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) {
          if ((bytes += i > 0 ? 1 : 0) > maxBytes) return tooBig();
          stack.push({ value: v[i], depth: node.depth + 1, parent: node, key: `[${i}]` });
        }
      } else {
        let first = true;
        for (const k in v) {
          if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
          // `"k":` and the comma before every key but the first.
          if ((bytes += k.length + (first ? 3 : 4)) > maxBytes) return tooBig();
          first = false;
          stack.push({ value: (v as Record<string, unknown>)[k], depth: node.depth + 1, parent: node, key: `.${k}` });
        }
      }
    } else bytes += typeof v === 'number' || typeof v === 'boolean' ? String(v).length : 4;
    if (bytes > maxBytes) return tooBig();
  }
  return [];
}
