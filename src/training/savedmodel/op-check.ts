/**
 * A SavedModel is code: the graph route runs whatever ops its functions contain. Before a
 * SavedModel is loaded, this reads its graph (saved_model.pb, saved-model-proto.ts) and follows
 * everything the route makes TensorFlow run: the signatures it calls (train_step, eval_step,
 * get_state, set_state, set_learning_rate), the init op and the saver's restore op that the loader
 * runs, and, through every function call (call ops, control flow, any function-valued attribute,
 * a function used as an op), every function they reach. Any op not on the allow-list
 * (op-allow-list.ts) is refused, non-retryably, naming the op, its node and its function; RestoreV2
 * only inside the restore subgraph. The save subgraph and signatures the route never calls (serve)
 * are not walked. Bounded: MAX_SAVED_MODEL_BYTES, MAX_NODES nodes, MAX_CALL_DEPTH nested calls,
 * walked with an explicit stack.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { excerpt } from '../../trust/excerpt';
import { NonRetryableTrainingError } from '../protocol';
import { REQUIRED_ENDPOINTS } from './metadata';
import { COMPUTATION_OPS, KNOWN_UNSAFE, RESTORE_OPS } from './op-allow-list';
import { readServeMetaGraph, type ServeMetaGraph } from './saved-model-proto';
import { WireFormatError } from './wire';

export const MAX_SAVED_MODEL_BYTES = 256 * 1024 * 1024;
export const MAX_CALL_DEPTH = 64;
const NAME_CHARS = 80;
const MAX_REPORTED = 5;
const OTHER_GRAPH_FILES = ['saved_model.cpb', 'saved_model.pbtxt'];

/** A SavedModel whose graph runs an op that is not on the allow-list, or cannot be read to tell. */
export class UnsafeSavedModelError extends NonRetryableTrainingError {
  constructor(message: string) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'UnsafeSavedModel' });
  }
}

const REPORT =
  'A SavedModel is code: ops that read or write files, use the network, start processes, run Python or print are never run. ' +
  'If one is a pure computation op your model needs, report it to the durable-train maintainers (the name of the op, and the TensorFlow and Keras versions you exported with) ' +
  'to have it added to src/training/savedmodel/op-allow-list.ts';

interface Visit {
  readonly kind: 'node' | 'function';
  readonly name: string;
  /** What the route runs that reaches it: `signature \`train_step\``, `the restore op`, … */
  readonly root: string;
  /** Inside the saver's restore subgraph: RestoreV2 is allowed there. */
  readonly restore: boolean;
  readonly depth: number;
}

const nodeName = (input: string): string => input.replace(/^\^/, '').replace(/:\d+$/, '');
const q = (name: string): string => `\`${excerpt(name, NAME_CHARS)}\``;

/** Throws UnsafeSavedModelError naming the first op outside the allow-list that the route would run. */
export function checkGraphOps(graph: ServeMetaGraph, uri: string): void {
  const stack: Visit[] = [];
  const roots: Visit[] = [];
  const signature = (name: string, root: string) => {
    for (const tensor of graph.signatures.get(name) ?? []) roots.push({ kind: 'node', name: nodeName(tensor), root, restore: false, depth: 0 });
  };
  for (const ep of REQUIRED_ENDPOINTS) signature(ep, `signature \`${ep}\``);
  signature('__saved_model_init_op', 'the init op (run when the SavedModel is loaded)');
  for (const n of graph.initCollections) roots.push({ kind: 'node', name: nodeName(n), root: 'the init op (run when the SavedModel is loaded)', restore: false, depth: 0 });
  if (graph.restoreOp) roots.push({ kind: 'node', name: nodeName(graph.restoreOp), root: "the saver's restore op (run when the SavedModel is loaded)", restore: true, depth: 0 });
  // Walked in order: the first root's ops are reported first.
  stack.push(...roots.reverse());

  const seen = new Set<string>();
  // The first place each refused op is found, up to MAX_REPORTED ops; the walk goes on, so that a
  // file or Python op is named even when an unknown computation op comes first.
  const refused = new Map<string, string>();
  const check = (op: string, node: string, where: string, v: Visit) => {
    if (COMPUTATION_OPS.has(op) || (v.restore && RESTORE_OPS.has(op)) || refused.has(op) || refused.size >= MAX_REPORTED) return;
    const why = KNOWN_UNSAFE[op] ? ` (${KNOWN_UNSAFE[op]})` : '';
    refused.set(op, `${q(op)}${why}, run by ${v.root}: node ${q(node)} in ${where}`);
  };
  const call = (fn: string, from: Visit, node: string, where: string) => {
    if (!graph.functions.has(fn)) {
      // Not in the library: TensorFlow runs a primitive op of that name.
      check(fn, node, where, from);
      return;
    }
    stack.push({ kind: 'function', name: fn, root: from.root, restore: from.restore, depth: from.depth + 1 });
  };

  while (stack.length > 0) {
    const v = stack.pop()!;
    const key = `${v.kind}:${v.restore ? 'r' : '-'}:${v.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (v.kind === 'node') {
      const node = graph.nodes.get(v.name);
      if (!node) continue; // TensorFlow refuses a signature naming a node that is not there
      const where = 'the main graph';
      if (graph.functions.has(node.op)) call(node.op, v, node.name, where);
      else check(node.op, node.name, where, v);
      for (const fn of node.functions) call(fn, v, node.name, where);
      for (const input of node.inputs) stack.push({ ...v, kind: 'node', name: nodeName(input) });
      continue;
    }
    if (v.depth > MAX_CALL_DEPTH) {
      throw new UnsafeSavedModelError(`The SavedModel at ${uri} is refused: ${v.root} nests function calls more than ${MAX_CALL_DEPTH} deep (at function ${q(v.name)})`);
    }
    const where = `function ${q(v.name)}`;
    for (const node of graph.functions.get(v.name)!) {
      if (graph.functions.has(node.op)) call(node.op, v, node.name, where);
      else check(node.op, node.name, where, v);
      for (const fn of node.functions) call(fn, v, node.name, where);
    }
  }
  if (refused.size === 0) return;
  const ops = [...refused.keys()].sort((a, b) => Number(!KNOWN_UNSAFE[a]) - Number(!KNOWN_UNSAFE[b]));
  throw new UnsafeSavedModelError(
    `The SavedModel at ${uri} is refused: it runs ${ops.length === 1 ? 'an op' : 'ops'} not on durable-train's allow-list of computation ops: ` +
      `${ops.map((op) => refused.get(op)).join('; ')}${refused.size >= MAX_REPORTED ? ' (and maybe more)' : ''}. ${REPORT}`,
  );
}

/** sha256 of saved_model.pb files that passed, so that a SavedModel is parsed once per worker, not per activity. */
const passed = new Set<string>();
const PASSED_MAX = 64;

/**
 * Checks the SavedModel in `dir` (see the top of this file). Returns the sha256 of the
 * saved_model.pb it checked, for the caller to compare after loading.
 */
export function checkSavedModelOps(dir: string, uri: string): string {
  // TensorFlow's reader also takes a chunked (.cpb) or text (.pbtxt) graph, and may prefer one of
  // them: the graph it loads must be the one checked here.
  for (const other of OTHER_GRAPH_FILES) {
    if (fs.existsSync(path.join(dir, other))) {
      throw new UnsafeSavedModelError(`The SavedModel at ${uri} has a ${other} beside saved_model.pb; TensorFlow could load that graph instead of the one checked, so it is refused (remove ${other})`);
    }
  }
  const file = path.join(dir, 'saved_model.pb');
  let bytes: Buffer;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_SAVED_MODEL_BYTES) {
      throw new UnsafeSavedModelError(
        `The saved_model.pb of the SavedModel at ${uri} has ${size} bytes; durable-train checks graphs up to ${MAX_SAVED_MODEL_BYTES} bytes (keep the weights in variables/, not as constants in the graph)`,
      );
    }
    bytes = fs.readFileSync(file);
  } catch (err) {
    if (err instanceof UnsafeSavedModelError) throw err;
    throw new NonRetryableTrainingError(`No SavedModel at ${uri}: there is no saved_model.pb`);
  }
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (passed.has(sha)) return sha;
  let graph: ServeMetaGraph;
  try {
    graph = readServeMetaGraph(bytes);
  } catch (err) {
    if (!(err instanceof WireFormatError)) throw err;
    throw new UnsafeSavedModelError(`The saved_model.pb of the SavedModel at ${uri} cannot be read, so its ops cannot be checked: ${err.message}`);
  }
  checkGraphOps(graph, uri);
  if (passed.size >= PASSED_MAX) passed.clear();
  passed.add(sha);
  return sha;
}

/** The sha256 of saved_model.pb now, to confirm that what was loaded is what was checked. */
export function savedModelPbSha256(dir: string): string {
  return createHash('sha256').update(fs.readFileSync(path.join(dir, 'saved_model.pb'))).digest('hex');
}
