/** The `model` and `data.*` specs of a trainModel input: their shape, built-in params and URIs. */
import { MAX_DATASET_LIMIT } from './bounds';
import { checkBuiltInDataset, checkBuiltInModelParams } from './builtin-params';
import { checkStoreUri, shownUri, uriSyntaxProblem } from './uri';
import { isObject, type Checker, type JsonObject } from './validate';

/**
 * A model from the worker's registry (`mlp`, `cnn`, or the user's own), a tfjs-layers topology, or
 * a trainable SavedModel exported by tools/export_trainable_savedmodel.py (`file:///...` or `gs://...`).
 */
export type ModelSpec =
  | { readonly name: string; readonly params?: JsonObject }
  | { readonly topology: JsonObject }
  | { readonly kind: 'savedmodel'; readonly uri: string };

/** A dataset from the worker's registry: `mnist` (split `train` or `test`), `synthetic`, or the user's own. */
export interface DatasetSpec {
  readonly name: string;
  readonly split?: string;
  /** Use only the first N examples (after the dataset's own fixed order). */
  readonly limit?: number;
  readonly params?: JsonObject;
}

export function checkDataset(c: Checker, field: string, value: unknown): DatasetSpec | undefined {
  const o = c.object(field, value);
  if (!o) return undefined;
  c.noUnknownKeys(field, o, ['name', 'split', 'limit', 'params']);
  const name = c.string(`${field}.name`, o.name);
  const split = c.string(`${field}.split`, o.split, { required: false });
  const limit = c.number(`${field}.limit`, o.limit, { integer: true, min: 1, max: MAX_DATASET_LIMIT, optional: true });
  const params = c.object(`${field}.params`, o.params, false);
  if (name === undefined) return undefined;
  checkBuiltInDataset(c, field, name, split, params);
  // csv and jsonl read a file at `params.uri`: its syntax is checked here, the rest by their reader.
  const uri = params?.uri;
  if (typeof uri === 'string' && (uri.startsWith('file:') || uri.startsWith('gs:'))) {
    const problem = uriSyntaxProblem(uri, 'file');
    if (problem !== undefined) c.fail(`${field}.params.uri`, `a file:// or gs:// URI of a file: ${problem}`, shownUri(uri));
  }
  return { name, ...(split !== undefined && { split }), ...(limit !== undefined && { limit }), ...(params && { params }) };
}

export function checkModel(c: Checker, value: unknown): ModelSpec | undefined {
  const o = c.object('model', value);
  if (!o) return undefined;
  if (o.kind !== undefined) {
    c.noUnknownKeys('model', o, ['kind', 'uri']);
    const kind = c.oneOf('model.kind', o.kind, ['savedmodel'] as const, undefined);
    const given = c.string('model.uri', o.uri);
    const uri = given === undefined ? undefined : checkStoreUri(c, 'model.uri', given, 'a `file:///absolute/path` or `gs://bucket/prefix` URI of a SavedModel directory');
    return kind && uri !== undefined ? { kind, uri: uri.replace(/\/+$/, '') } : undefined;
  }
  c.noUnknownKeys('model', o, ['name', 'params', 'topology']);
  if (o.topology !== undefined) {
    if (o.name !== undefined) c.fail('model', 'either `name` (a registered model) or `topology`, not both', o);
    const topology = c.object('model.topology', o.topology);
    if (topology) checkTopology(c, topology);
    return topology && { topology };
  }
  const name = c.string('model.name', o.name);
  const params = c.object('model.params', o.params, false);
  if (name !== undefined) checkBuiltInModelParams(c, name, params ?? {});
  return name === undefined ? undefined : { name, ...(params && { params }) };
}

/** Only the outer shape of a Keras topology (the layers are checked when tfjs builds it, non-retryably). */
function checkTopology(c: Checker, topology: JsonObject): void {
  let t: unknown = topology.modelTopology ?? topology;
  if (isObject(t) && t.model_config !== undefined) t = t.model_config;
  const expected = 'a Keras model topology: `{ class_name: "Sequential" | "Model" | "Functional", config: {...} }` (or a model.json `modelTopology`)';
  if (!isObject(t) || !['Sequential', 'Model', 'Functional'].includes(t.class_name as string) || !isObject(t.config)) {
    c.fail('model.topology', expected, t);
  }
}
