/**
 * Malformed inputs shared by the parser tests (test/config.e2e.test.ts) and the end-to-end table
 * (test/malformed-inputs.e2e.test.ts): `badInputs` with their exact issue, `parserInputs` (bounds,
 * URI syntax, built-in params) with the field they must name.
 */
import type { ConfigIssue } from '../src/config/validate';
import { tinyInput } from './e2e-support';

/** A valid input with one field replaced (undefined deletes it); `path` is dotted. */
export function withField(path: string, value: unknown): Record<string, unknown> {
  const input = structuredClone(tinyInput()) as Record<string, unknown>;
  const keys = path.split('.');
  let o = input as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) {
    o[k] ??= {};
    o = o[k] as Record<string, unknown>;
  }
  if (value === undefined) delete o[keys[keys.length - 1]!];
  else o[keys[keys.length - 1]!] = value;
  return input;
}

export interface BadInput {
  readonly name: string;
  readonly input: unknown;
  readonly issue: ConfigIssue;
  /** Also sent through the real workflow (JSON-serializable and representative). */
  readonly e2e?: boolean;
}

const KNOWN_TOP = 'runId, model, data, hyperparameters, loss, stepsPerEpoch, maxEpochs, seed, checkpoint, earlyStopping, reduceLrOnPlateau, warmStartFrom, resume, tracking, continueAsNewEvery, historyLimit, timeouts, searchTrial';
export const ID = "an id of 1 to 128 characters from [A-Za-z0-9._-], not starting with '.'";

export const badInputs: BadInput[] = [
  { name: 'input is null', input: null, issue: { field: 'input', expected: 'an object', received: '`null`' } },
  { name: 'input is an array', input: [tinyInput()], issue: { field: 'input', expected: 'an object', received: 'an array of 1' } },
  { name: 'model missing', input: withField('model', undefined), issue: { field: 'model', expected: 'an object', received: 'nothing (undefined)' }, e2e: true },
  {
    name: 'model has both name and topology',
    input: withField('model.topology', { class_name: 'Sequential', config: {} }),
    issue: { field: 'model', expected: 'either `name` (a registered model) or `topology`, not both', received: 'an object with keys [name, params, topology]' },
  },
  { name: 'model.name empty', input: withField('model.name', ''), issue: { field: 'model.name', expected: 'a non-empty string', received: '`""` (string)' } },
  { name: 'data.train missing', input: withField('data.train', undefined), issue: { field: 'data.train', expected: 'an object', received: 'nothing (undefined)' } },
  {
    name: 'data.eval.limit 0',
    input: withField('data.eval.limit', 0),
    issue: { field: 'data.eval.limit', expected: 'a whole number from 1 to 2147483647', received: '`0` (number)' },
  },
  {
    name: 'unknown optimizer',
    input: withField('hyperparameters.optimizer', 'adamw'),
    issue: { field: 'hyperparameters.optimizer', expected: 'one of `adam`, `sgd`, `momentum`, `rmsprop`', received: '`"adamw"` (string)' },
    e2e: true,
  },
  {
    name: 'learning rate 0',
    input: withField('hyperparameters.learningRate', 0),
    issue: { field: 'hyperparameters.learningRate', expected: 'a number greater than 0 and at most 1000', received: '`0` (number)' },
    e2e: true,
  },
  {
    name: 'learning rate as a string',
    input: withField('hyperparameters.learningRate', '0.01'),
    issue: { field: 'hyperparameters.learningRate', expected: 'a number greater than 0 and at most 1000', received: '`"0.01"` (string)' },
  },
  {
    name: 'fractional batch size',
    input: withField('hyperparameters.batchSize', 1.5),
    issue: { field: 'hyperparameters.batchSize', expected: 'a whole number from 1 to 65536', received: '`1.5` (number)' },
  },
  {
    name: 'typo in a hyperparameter name',
    input: withField('hyperparameters.learning_rate', 0.01),
    issue: { field: 'hyperparameters.learning_rate', expected: 'one of the known fields (optimizer, learningRate, batchSize, momentum)', received: 'an unknown field' },
  },
  {
    name: 'unknown loss',
    input: withField('loss', 'mse'),
    issue: { field: 'loss', expected: 'one of `categoricalCrossentropy`, `meanSquaredError`', received: '`"mse"` (string)' },
  },
  {
    name: 'negative stepsPerEpoch',
    input: withField('stepsPerEpoch', -5),
    issue: { field: 'stepsPerEpoch', expected: 'a whole number from 1 to 100000000', received: '`-5` (number)' },
  },
  { name: 'maxEpochs missing', input: withField('maxEpochs', undefined), issue: { field: 'maxEpochs', expected: 'a whole number from 1 to 1000000', received: 'nothing (undefined)' } },
  { name: 'seed 0', input: withField('seed', 0), issue: { field: 'seed', expected: 'a whole number from 1 to 2147483647', received: '`0` (number)' } },
  {
    name: 'checkpoint.uri not file:/// or gs://',
    input: withField('checkpoint.uri', 'http://example.com/runs'),
    issue: { field: 'checkpoint.uri', expected: 'a `file:///absolute/path` or `gs://bucket/prefix` URI', received: '`"http://example.com/runs"` (string)' },
    e2e: true,
  },
  {
    name: 'checkpoint.keepLast 0',
    input: withField('checkpoint.keepLast', 0),
    issue: { field: 'checkpoint.keepLast', expected: 'a whole number from 1 to 10000', received: '`0` (number)' },
  },
  {
    name: 'earlyStopping.patience negative',
    input: withField('earlyStopping', { patience: -1 }),
    issue: { field: 'earlyStopping.patience', expected: 'a whole number from 0 to 1000000', received: '`-1` (number)' },
    e2e: true,
  },
  {
    name: 'earlyStopping.mode unknown',
    input: withField('earlyStopping', { mode: 'down' }),
    issue: { field: 'earlyStopping.mode', expected: 'one of `min`, `max`, `auto`', received: '`"down"` (string)' },
  },
  {
    name: 'earlyStopping.restoreBestWeights not a boolean',
    input: withField('earlyStopping', { restoreBestWeights: 'yes' }),
    issue: { field: 'earlyStopping.restoreBestWeights', expected: 'true or false', received: '`"yes"` (string)' },
  },
  {
    name: 'earlyStopping.minDelta NaN',
    input: withField('earlyStopping', { minDelta: NaN }),
    issue: { field: 'earlyStopping.minDelta', expected: 'a number from 0 and up', received: '`NaN` (number)' },
  },
  {
    name: 'reduceLrOnPlateau.factor above 1',
    input: withField('reduceLrOnPlateau', { factor: 1.5 }),
    issue: { field: 'reduceLrOnPlateau.factor', expected: 'a number greater than 0 and less than 1', received: '`1.5` (number)' },
    e2e: true,
  },
  { name: 'runId climbing out of its prefix', input: withField('runId', '../etc'), issue: { field: 'runId', expected: ID, received: '`"../etc"` (string)' }, e2e: true },
  {
    name: 'unknown top-level field (Keras spelling)',
    input: withField('epochs', 10),
    issue: { field: 'epochs', expected: `one of the known fields (${KNOWN_TOP})`, received: 'an unknown field' },
    e2e: true,
  },
  {
    name: 'warmStartFrom not a URI',
    input: withField('warmStartFrom', 'model.json'),
    issue: { field: 'warmStartFrom', expected: 'a checkpoint URI (`file:///...` or `gs://...`)', received: '`"model.json"` (string)' },
  },
  {
    name: 'historyLimit too large',
    input: withField('historyLimit', 20000),
    issue: { field: 'historyLimit', expected: 'a whole number from 1 to 10000', received: '`20000` (number)' },
  },
  {
    name: 'continueAsNewEvery negative',
    input: withField('continueAsNewEvery', -1),
    issue: { field: 'continueAsNewEvery', expected: 'a whole number from 0 to 1000000', received: '`-1` (number)' },
  },
  {
    name: 'timeouts.heartbeatSeconds 0',
    input: withField('timeouts.heartbeatSeconds', 0),
    issue: { field: 'timeouts.heartbeatSeconds', expected: 'a number from 1 to 3600', received: '`0` (number)' },
  },
];

/** An input the parser must refuse with exactly one issue, on `field`. */
export interface FieldCase {
  readonly name: string;
  readonly input: unknown;
  readonly field: string;
}

const synthetic = (params: Record<string, unknown>, split?: string) => ({ name: 'synthetic', ...(split && { split }), params });
const csv = (uri: unknown) => ({ name: 'csv', params: { uri, label: 'y' } });
const savedModel = (uri: unknown) => ({ kind: 'savedmodel', uri });

/** Bounds, URI syntax and built-in params: each refused by parseTrainConfig, naming `field`. */
export const parserInputs: FieldCase[] = [
  // URI syntax (the allow-list is the worker's; these are malformed whatever it allows).
  { name: 'checkpoint.uri climbing out with ..', input: withField('checkpoint.uri', 'file:///../../etc'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri with a query', input: withField('checkpoint.uri', 'file:///tmp/r?x'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri with an empty fragment', input: withField('checkpoint.uri', 'file:///tmp/r#'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri with %2F', input: withField('checkpoint.uri', 'file:///tmp/a%2Fb'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri with an invalid bucket', input: withField('checkpoint.uri', 'gs://ab/x'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri gs:// without a bucket', input: withField('checkpoint.uri', 'gs://'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri the file system root', input: withField('checkpoint.uri', 'file:///'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri a number', input: withField('checkpoint.uri', 42), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri an array', input: withField('checkpoint.uri', ['file:///tmp/r']), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri with a host (file://host/x)', input: withField('checkpoint.uri', 'file://host/x'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri with an empty segment', input: withField('checkpoint.uri', 'file:///tmp//r'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri with an uppercase bucket', input: withField('checkpoint.uri', 'gs://Bucket/x'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri with a newline', input: withField('checkpoint.uri', 'file:///tmp/a\nb'), field: 'checkpoint.uri' },
  { name: 'checkpoint.uri longer than 1024', input: withField('checkpoint.uri', `file:///tmp/${'a'.repeat(1100)}`), field: 'checkpoint.uri' },
  { name: 'warmStartFrom with ..', input: withField('warmStartFrom', 'file:///tmp/x/../y'), field: 'warmStartFrom' },
  { name: 'warmStartFrom with a query', input: withField('warmStartFrom', 'file:///tmp/r?x'), field: 'warmStartFrom' },
  { name: 'warmStartFrom a number', input: withField('warmStartFrom', 7), field: 'warmStartFrom' },
  { name: 'savedmodel uri with an invalid bucket', input: withField('model', savedModel('gs://ab/m')), field: 'model.uri' },
  { name: 'savedmodel uri the root', input: withField('model', savedModel('file:///')), field: 'model.uri' },
  { name: 'csv params.uri with %2F', input: withField('data.train', csv('file:///tmp/d%2Fx.csv')), field: 'data.train.params.uri' },
  { name: 'csv params.uri a folder', input: withField('data.train', csv('file:///tmp/')), field: 'data.train.params.uri' },
  { name: 'csv params.uri with a fragment', input: withField('data.eval', csv('file:///tmp/x.csv#y')), field: 'data.eval.params.uri' },
  // Bounds.
  { name: 'stepsPerEpoch 1e12', input: withField('stepsPerEpoch', 1e12), field: 'stepsPerEpoch' },
  { name: 'maxEpochs 1e7', input: withField('maxEpochs', 1e7), field: 'maxEpochs' },
  { name: 'total steps above the limit', input: { ...withField('stepsPerEpoch', 1e8), maxEpochs: 1e6 }, field: 'maxEpochs' },
  { name: 'keepLast 1e9', input: withField('checkpoint.keepLast', 1e9), field: 'checkpoint.keepLast' },
  { name: 'everySteps beyond the run', input: withField('checkpoint.everySteps', 41), field: 'checkpoint.everySteps' },
  { name: 'everySeconds 1e9', input: withField('checkpoint.everySeconds', 1e9), field: 'checkpoint.everySeconds' },
  { name: 'heartbeatSeconds 1e6', input: withField('timeouts.heartbeatSeconds', 1e6), field: 'timeouts.heartbeatSeconds' },
  { name: 'epochMinutes 1e9', input: withField('timeouts.epochMinutes', 1e9), field: 'timeouts.epochMinutes' },
  { name: 'epochMinutes shorter than a heartbeat', input: withField('timeouts.epochMinutes', 0.05), field: 'timeouts.epochMinutes' },
  { name: 'batchSize 1e6', input: withField('hyperparameters.batchSize', 1e6), field: 'hyperparameters.batchSize' },
  { name: 'data.train.limit 1e12', input: withField('data.train.limit', 1e12), field: 'data.train.limit' },
  { name: 'seed 2^40', input: withField('seed', 2 ** 40), field: 'seed' },
  { name: 'learningRate 1e6', input: withField('hyperparameters.learningRate', 1e6), field: 'hyperparameters.learningRate' },
  { name: 'learningRate null (Infinity after JSON)', input: withField('hyperparameters.learningRate', null), field: 'hyperparameters.learningRate' },
  { name: 'continueAsNewEvery 1e9', input: withField('continueAsNewEvery', 1e9), field: 'continueAsNewEvery' },
  { name: 'historyLimit 1e9', input: withField('historyLimit', 1e9), field: 'historyLimit' },
  { name: 'earlyStopping.patience 1e9', input: withField('earlyStopping', { patience: 1e9 }), field: 'earlyStopping.patience' },
  { name: 'reduceLrOnPlateau.cooldown 1e9', input: withField('reduceLrOnPlateau', { cooldown: 1e9 }), field: 'reduceLrOnPlateau.cooldown' },
  { name: 'earlyStopping.monitor of 1000 characters', input: withField('earlyStopping', { monitor: 'v'.repeat(1000) }), field: 'earlyStopping.monitor' },
  // Built-in models.
  { name: 'hiddenUnits [1e9]', input: withField('model.params.hiddenUnits', [1e9]), field: 'model.params.hiddenUnits' },
  { name: 'hiddenUnits of 1000 layers', input: withField('model.params.hiddenUnits', Array(1000).fill(4)), field: 'model.params.hiddenUnits' },
  { name: 'hiddenUnits empty (tfjs needs a first hidden layer)', input: withField('model.params.hiddenUnits', []), field: 'model.params.hiddenUnits' },
  { name: 'hiddenUnits [0]', input: withField('model.params.hiddenUnits', [0]), field: 'model.params.hiddenUnits' },
  { name: 'hiddenUnits a string', input: withField('model.params.hiddenUnits', 'big'), field: 'model.params.hiddenUnits' },
  { name: 'mlp activation unknown', input: withField('model.params.activation', 'relux'), field: 'model.params.activation' },
  { name: 'mlp dropout 1.5', input: withField('model.params.dropout', 1.5), field: 'model.params.dropout' },
  { name: 'mlp params unknown key', input: withField('model.params.units', [8]), field: 'model.params.units' },
  { name: 'cnn filters [0]', input: withField('model', { name: 'cnn', params: { filters: [0] } }), field: 'model.params.filters' },
  { name: 'cnn imageShape of 2 numbers', input: withField('model', { name: 'cnn', params: { imageShape: [28, 28] } }), field: 'model.params.imageShape' },
  { name: 'topology without class_name', input: withField('model', { topology: { foo: 1 } }), field: 'model.topology' },
  { name: 'topology of an unknown class', input: withField('model', { topology: { class_name: 'Bogus', config: {} } }), field: 'model.topology' },
  // Built-in datasets.
  { name: 'mnist split validation', input: withField('data.eval', { name: 'mnist', split: 'validation' }), field: 'data.eval.split' },
  { name: 'mnist params', input: withField('data.train', { name: 'mnist', params: { size: 10 } }), field: 'data.train.params' },
  { name: 'synthetic size 1e12', input: withField('data.train', synthetic({ size: 1e12 })), field: 'data.train.params.size' },
  { name: 'synthetic features 1e9', input: withField('data.train', synthetic({ features: 1e9 })), field: 'data.train.params.features' },
  { name: 'synthetic size × features too large', input: withField('data.train', synthetic({ size: 1e7, features: 1e5 })), field: 'data.train.params.size' },
  { name: 'synthetic noise -1', input: withField('data.train', synthetic({ noise: -1 })), field: 'data.train.params.noise' },
  { name: 'synthetic classes 0', input: withField('data.train', synthetic({ classes: 0 })), field: 'data.train.params.classes' },
  { name: 'synthetic unknown param', input: withField('data.train', synthetic({ sizee: 10 })), field: 'data.train.params.sizee' },
  { name: 'synthetic split validation', input: withField('data.eval', synthetic({}, 'validation')), field: 'data.eval.split' },
];
