/**
 * The parts of saved_model.pb the op check reads, decoded with the wire reader (wire.ts): for the
 * meta graph tagged `serve`, its signatures' tensor names, the saver's restore op, the init op, and
 * every node (name, op, inputs, the functions its attributes name) of the graph and of each
 * function in its library. Field numbers are those of tensorflow/core/protobuf/saved_model.proto,
 * meta_graph.proto, saver.proto, and tensorflow/core/framework/{graph,function,node_def,
 * attr_value,op_def}.proto. Bounded: at most MAX_NODES nodes in all, attribute values nested at
 * most MAX_ATTR_DEPTH deep, walked with an explicit stack.
 */
import { bytesOf, forEachField, text, WireFormatError, WireType, type WireField } from './wire';

export const MAX_NODES = 1_000_000;
export const MAX_ATTR_DEPTH = 32;

export interface GraphNode {
  readonly name: string;
  readonly op: string;
  readonly inputs: string[];
  /** Every function named anywhere in the node's attributes (`f`, `body`, `then_branch`, lists, nested). */
  readonly functions: string[];
}

export interface ServeMetaGraph {
  /** Signature name -> the tensor names of its inputs and outputs. */
  readonly signatures: Map<string, string[]>;
  readonly restoreOp: string | undefined;
  /** Node names of the collections the loader runs after restoring (saved_model_main_op, legacy_init_op). */
  readonly initCollections: string[];
  readonly nodes: Map<string, GraphNode>;
  readonly functions: Map<string, GraphNode[]>;
}

const SERVE = 'serve';

/**
 * The meta graph TensorFlow loads for the tag `serve` (what the route loads), or an error naming the
 * tags there are. TensorFlow's loader (cc/saved_model/reader.cc, FindMetaGraphDef) takes the first
 * meta graph whose tag *set* is {serve}: tags `serve, serve` match too. More than one such meta graph
 * is refused: tfjs-node's own reader compares tag arrays and could read the signatures of another
 * meta graph than the one TensorFlow runs (a `serve, serve` graph before a checked `serve` one ran
 * unchecked ops).
 */
export function readServeMetaGraph(buf: Buffer): ServeMetaGraph {
  const metaGraphs: WireField[] = [];
  forEachField(buf, 0, buf.length, (f) => {
    if (f.no === 2) metaGraphs.push(bytesOf(f)); // SavedModel.meta_graphs
  });
  const seen: string[] = [];
  const serve: WireField[] = [];
  for (const mg of metaGraphs) {
    const tags = metaGraphTags(buf, mg);
    if (tags.length > 0 && tags.every((t) => t === SERVE)) serve.push(mg);
    seen.push(tags.join(','));
  }
  if (serve.length > 1) throw new WireFormatError(`${serve.length} meta graphs are tagged \`serve\` (tags: ${seen.join('; ')}); TensorFlow and tfjs-node could each take another`);
  if (serve.length === 1) return readMetaGraph(buf, serve[0]!);
  throw new WireFormatError(`no meta graph is tagged \`serve\` (tags: ${seen.join('; ') || 'none'})`);
}

function metaGraphTags(buf: Buffer, mg: WireField): string[] {
  const tags: string[] = [];
  forEachField(buf, mg.start, mg.end, (f) => {
    if (f.no !== 1) return; // MetaGraphDef.meta_info_def
    forEachField(buf, bytesOf(f).start, f.end, (g) => {
      if (g.no === 4) tags.push(text(buf, g)); // MetaInfoDef.tags
    });
  });
  return tags;
}

/** A map entry (key = 1, value = 2) as [key, value field]. */
function mapEntry(buf: Buffer, entry: WireField): [string, WireField | undefined] {
  let key = '';
  let value: WireField | undefined;
  forEachField(buf, bytesOf(entry).start, entry.end, (f) => {
    if (f.no === 1) key = text(buf, f);
    else if (f.no === 2) value = bytesOf(f);
  });
  return [key, value];
}

function readMetaGraph(buf: Buffer, mg: WireField): ServeMetaGraph {
  const signatures = new Map<string, string[]>();
  const initCollections: string[] = [];
  const nodes = new Map<string, GraphNode>();
  const functions = new Map<string, GraphNode[]>();
  let restoreOp: string | undefined;
  const count = { nodes: 0 };
  forEachField(buf, mg.start, mg.end, (f) => {
    if (f.no === 2) {
      // MetaGraphDef.graph_def: GraphDef { node = 1; library = 2 }
      forEachField(buf, bytesOf(f).start, f.end, (g) => {
        if (g.no === 1) {
          const node = readNode(buf, bytesOf(g), count);
          nodes.set(node.name, node);
        } else if (g.no === 2) {
          // FunctionDefLibrary { function = 1 }
          forEachField(buf, bytesOf(g).start, g.end, (h) => {
            if (h.no !== 1) return;
            const [name, body] = readFunction(buf, bytesOf(h), count);
            functions.set(name, body);
          });
        }
      });
    } else if (f.no === 3) {
      // MetaGraphDef.saver_def: SaverDef { restore_op_name = 3 }
      forEachField(buf, bytesOf(f).start, f.end, (g) => {
        if (g.no === 3) restoreOp = text(buf, g);
      });
    } else if (f.no === 4) {
      // MetaGraphDef.collection_def: CollectionDef { node_list = 1: NodeList { value = 1 } }
      const [key, value] = mapEntry(buf, f);
      if (!value || (key !== 'saved_model_main_op' && key !== 'legacy_init_op')) return;
      forEachField(buf, value.start, value.end, (g) => {
        if (g.no !== 1) return;
        forEachField(buf, bytesOf(g).start, g.end, (h) => {
          if (h.no === 1) initCollections.push(text(buf, h));
        });
      });
    } else if (f.no === 5) {
      // MetaGraphDef.signature_def: SignatureDef { inputs = 1; outputs = 2 } of TensorInfo
      const [key, value] = mapEntry(buf, f);
      if (!value) return;
      const tensors: string[] = [];
      forEachField(buf, value.start, value.end, (g) => {
        if (g.no !== 1 && g.no !== 2) return;
        const [, info] = mapEntry(buf, g);
        if (info) tensorInfoNames(buf, info, tensors);
      });
      signatures.set(key, tensors);
    }
  });
  return { signatures, restoreOp, initCollections, nodes, functions };
}

/** TensorInfo { name = 1; coo_sparse = 4 { values = 1, indices = 2, dense_shape = 3 }; composite_tensor = 5 { components = 2 } }. */
function tensorInfoNames(buf: Buffer, info: WireField, out: string[]): void {
  const stack: Array<[WireField, number]> = [[info, 0]];
  while (stack.length > 0) {
    const [at, depth] = stack.pop()!;
    if (depth > MAX_ATTR_DEPTH) throw new WireFormatError(`a signature's tensor info is nested more than ${MAX_ATTR_DEPTH} deep`);
    forEachField(buf, at.start, at.end, (f) => {
      if (f.no === 1) out.push(text(buf, f));
      else if (f.no === 4) forEachField(buf, bytesOf(f).start, f.end, (g) => out.push(text(buf, g)));
      else if (f.no === 5) {
        forEachField(buf, bytesOf(f).start, f.end, (g) => {
          if (g.no === 2) stack.push([bytesOf(g), depth + 1]);
        });
      }
    });
  }
}

/** FunctionDef { signature = 1: OpDef { name = 1 }; node_def = 3 }. */
function readFunction(buf: Buffer, fn: WireField, count: { nodes: number }): [string, GraphNode[]] {
  let name = '';
  const body: GraphNode[] = [];
  forEachField(buf, fn.start, fn.end, (f) => {
    if (f.no === 1) {
      forEachField(buf, bytesOf(f).start, f.end, (g) => {
        if (g.no === 1) name = text(buf, g);
      });
    } else if (f.no === 3) {
      body.push(readNode(buf, bytesOf(f), count));
    }
  });
  return [name, body];
}

/** NodeDef { name = 1; op = 2; input = 3; attr = 5: map<string, AttrValue> }. */
function readNode(buf: Buffer, node: WireField, count: { nodes: number }): GraphNode {
  if (++count.nodes > MAX_NODES) throw new WireFormatError(`more than ${MAX_NODES.toLocaleString('en-US')} nodes`);
  let name = '';
  let op = '';
  const inputs: string[] = [];
  const functions: string[] = [];
  forEachField(buf, node.start, node.end, (f) => {
    if (f.no === 1) name = text(buf, f);
    else if (f.no === 2) op = text(buf, f);
    else if (f.no === 3) inputs.push(text(buf, f));
    else if (f.no === 5) {
      const [, value] = mapEntry(buf, f);
      if (value) attrFunctions(buf, value, functions);
    }
  });
  return { name, op, inputs, functions };
}

/**
 * Every function an AttrValue names: AttrValue { list = 1: ListValue { func = 9 }; func = 10 },
 * NameAttrList { name = 1; attr = 2: map<string, AttrValue> } (a function's own attributes may
 * name functions too). Explicit stack, bounded depth.
 */
function attrFunctions(buf: Buffer, attr: WireField, out: string[]): void {
  const stack: Array<[WireField, number]> = [[attr, 0]];
  const nameAttrList = (f: WireField, depth: number) => {
    forEachField(buf, bytesOf(f).start, f.end, (g) => {
      if (g.no === 1) out.push(text(buf, g));
      else if (g.no === 2) {
        const [, value] = mapEntry(buf, g);
        if (value) stack.push([value, depth + 1]);
      }
    });
  };
  while (stack.length > 0) {
    const [at, depth] = stack.pop()!;
    if (depth > MAX_ATTR_DEPTH) throw new WireFormatError(`an attribute value is nested more than ${MAX_ATTR_DEPTH} deep`);
    forEachField(buf, at.start, at.end, (f) => {
      if (f.no === 10) nameAttrList(f, depth);
      else if (f.no === 1 && f.type === WireType.Bytes) {
        forEachField(buf, f.start, f.end, (g) => {
          if (g.no === 9) nameAttrList(g, depth);
        });
      }
    });
  }
}
