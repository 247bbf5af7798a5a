/**
 * Issue #20, a SavedModel is code: its ops are checked before it is loaded
 * (src/training/savedmodel/op-check.ts).
 *
 * - every committed SavedModel our exporter wrote (test/fixtures/savedmodel/) passes the allow-list;
 * - the hostile fixture (hostile-copies-a-file: a layer that copies /tmp/durable-train-hostile/
 *   secret.txt to stolen.txt with ReadFile and WriteFile on every step, regenerate.sh) is refused
 *   by the real trainer process, non-retryably, as UnsafeSavedModel naming both ops and their
 *   function, before anything runs: the secret is not copied, no checkpoint is written;
 * - how the walk reaches ops (synthetic graphs, written with a small protobuf writer below): through
 *   a call from the main graph, a While body, a function used as an op, a function named in a
 *   nested attribute; SaveV2 reached from a signature is refused, RestoreV2 only in the restore
 *   subgraph; a signature the route never calls is not walked;
 * - the bounds: a file over the size limit (sparse, not read), more than MAX_NODES nodes, calls
 *   nested deeper than MAX_CALL_DEPTH, attributes nested deeper than MAX_ATTR_DEPTH, a truncated file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parseTrainConfig } from '../src/config/train-config';
import type { TrainUntilStepResult } from '../src/training/protocol';
import { MAX_ATTR_DEPTH, MAX_NODES } from '../src/training/savedmodel/saved-model-proto';
import { checkSavedModelOps, MAX_CALL_DEPTH, MAX_SAVED_MODEL_BYTES, UnsafeSavedModelError } from '../src/training/savedmodel/op-check';
import { bytesOf, forEachField } from '../src/training/savedmodel/wire';
import { TrainerClient, TrainerError } from '../src/training/trainer-client';
import { tempDir } from './helpers/temporal';

const FIXTURES = path.resolve(__dirname, 'fixtures/savedmodel');
const HOSTILE = path.join(FIXTURES, 'hostile-copies-a-file');
/** The paths baked into the hostile fixture (regenerate.sh). */
const HOSTILE_DIR = '/tmp/durable-train-hostile';

// --- a protobuf writer for synthetic saved_model.pb files ------------------------------------

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Buffer.from(out);
}
/** A length-delimited field (string, bytes or message). */
const field = (no: number, payload: Buffer | string): Buffer => {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([varint(no * 8 + 2), varint(data.length), data]);
};
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
const nameAttrList = (fn: string, attrs: Buffer[] = []): Buffer => cat(field(1, fn), ...attrs.map((a) => field(2, a)));
/** A map<string, AttrValue> entry whose value is a function (AttrValue.func = 10). */
const funcAttr = (key: string, fn: string, nested: Buffer[] = []): Buffer => cat(field(1, key), field(2, field(10, nameAttrList(fn, nested))));
const node = (name: string, op: string, opts: { inputs?: string[]; attrs?: Buffer[] } = {}): Buffer =>
  cat(field(1, name), field(2, op), ...(opts.inputs ?? []).map((i) => field(3, i)), ...(opts.attrs ?? []).map((a) => field(5, a)));
const fn = (name: string, nodes: Buffer[]): Buffer => cat(field(1, field(1, name)), ...nodes.map((n) => field(3, n)));
/** SignatureDef with one output tensor. */
const signature = (key: string, tensor: string): Buffer => cat(field(1, key), field(2, field(2, cat(field(1, 'out'), field(2, field(1, tensor))))));

function savedModel(opts: { nodes: Buffer[]; functions?: Buffer[]; signatures: Buffer[]; restoreOp?: string }): Buffer {
  const graph = cat(...opts.nodes.map((n) => field(1, n)), field(2, cat(...(opts.functions ?? []).map((f) => field(1, f)))));
  const meta = cat(
    field(1, field(4, 'serve')),
    field(2, graph),
    ...(opts.restoreOp ? [field(3, field(3, opts.restoreOp))] : []),
    ...opts.signatures.map((s) => field(5, s)),
  );
  return field(2, meta);
}

/** A SavedModel whose train_step calls `body` (with the given extra functions in the library). */
function trainStepCalling(body: Buffer[], functions: Buffer[] = [], more: { nodes?: Buffer[]; signatures?: Buffer[]; restoreOp?: string } = {}): Buffer {
  return savedModel({
    nodes: [node('train_step_x', 'Placeholder'), node('call', 'StatefulPartitionedCall', { inputs: ['train_step_x'], attrs: [funcAttr('f', 'train_fn')] }), ...(more.nodes ?? [])],
    functions: [fn('train_fn', body), ...functions],
    signatures: [signature('train_step', 'call:0'), ...(more.signatures ?? [])],
    ...(more.restoreOp ? { restoreOp: more.restoreOp } : {}),
  });
}

const root = tempDir('dt-savedmodel-ops-');
let dirs = 0;
function writeModel(pb: Buffer): string {
  const dir = path.join(root, `m${dirs++}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'saved_model.pb'), pb);
  return dir;
}
function refusal(pb: Buffer): UnsafeSavedModelError {
  const dir = writeModel(pb);
  try {
    checkSavedModelOps(dir, pathToFileURL(dir).href);
  } catch (err) {
    assert.ok(err instanceof UnsafeSavedModelError, String(err));
    assert.equal(err.name, 'UnsafeSavedModel');
    return err;
  }
  assert.fail('expected the SavedModel to be refused');
}
const passes = (pb: Buffer): void => {
  const dir = writeModel(pb);
  checkSavedModelOps(dir, pathToFileURL(dir).href);
};

after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('the op check on the exported SavedModels', () => {
  test('every SavedModel our exporter wrote for the tests passes', () => {
    for (const name of ['mnist-cnn', 'broken-no-eval-step', 'broken-per-example-loss']) {
      const dir = path.join(FIXTURES, name);
      assert.match(checkSavedModelOps(dir, pathToFileURL(dir).href), /^[0-9a-f]{64}$/, name);
    }
  });

  test('the hostile fixture is refused, naming ReadFile and WriteFile, the signature and the function', () => {
    assert.throws(
      () => checkSavedModelOps(HOSTILE, pathToFileURL(HOSTILE).href),
      (err: Error) => {
        assert.ok(err instanceof UnsafeSavedModelError);
        assert.match(err.message, /`ReadFile` \(it reads a file\), run by signature `train_step`: node `[^`]*ReadFile` in function `__inference_train_step_\d+`/);
        assert.match(err.message, /`WriteFile` \(it writes a file\)/);
        assert.match(err.message, /report it to the durable-train maintainers/);
        return true;
      },
    );
  });
});

/** The SavedModel's meta graphs (field 2), as their bytes. */
function metaGraphsOf(pb: Buffer): Buffer[] {
  const out: Buffer[] = [];
  forEachField(pb, 0, pb.length, (f) => {
    if (f.no === 2) out.push(pb.subarray(bytesOf(f).start, f.end));
  });
  return out;
}

describe('which meta graph is checked: the one TensorFlow loads', () => {
  // TensorFlow takes the first meta graph whose tag set is {serve}; `serve, serve` is one.
  const hostile = metaGraphsOf(fs.readFileSync(path.join(HOSTILE, 'saved_model.pb')))[0]!;
  const clean = metaGraphsOf(fs.readFileSync(path.join(FIXTURES, 'mnist-cnn', 'saved_model.pb')))[0]!;
  const tagged = (mg: Buffer, ...tags: string[]) => cat(mg, field(1, cat(...tags.map((t) => field(4, t))))); // merged into meta_info_def

  test('the hostile graph tagged `serve, serve` before a clean one tagged `serve`: refused (it ran, copying the file)', () => {
    const err = refusal(cat(field(2, tagged(hostile, 'serve')), field(2, clean)));
    assert.match(err.message, /2 meta graphs are tagged `serve`/);
  });

  test('the hostile graph tagged `serve, serve` beside one tagged `train`: it is the one checked', () => {
    const err = refusal(cat(field(2, tagged(clean, 'train')), field(2, tagged(hostile, 'serve'))));
    assert.match(err.message, /`ReadFile` \(it reads a file\)/);
  });
});

describe('the hostile SavedModel in the real trainer process', () => {
  let client: TrainerClient;
  const runRoot = tempDir('dt-savedmodel-hostile-');
  before(async () => {
    client = new TrainerClient({ log: () => undefined });
    // TensorFlow's cold start is not the refusal's cost (at load 20 it alone can take 10 s).
    await client.request({ type: 'describe' });
    fs.mkdirSync(HOSTILE_DIR, { recursive: true });
    fs.writeFileSync(path.join(HOSTILE_DIR, 'secret.txt'), 'planted-secret-4b1d');
    fs.rmSync(path.join(HOSTILE_DIR, 'stolen.txt'), { force: true });
  });
  after(async () => {
    await client.close();
    fs.rmSync(runRoot, { recursive: true, force: true });
    fs.rmSync(HOSTILE_DIR, { recursive: true, force: true });
  });

  test('train: refused before it is loaded, non-retryably; nothing copied, nothing written', async () => {
    const tiny = { name: 'synthetic', params: { features: 4, classes: 3, size: 64 } };
    const config = parseTrainConfig({
      model: { kind: 'savedmodel', uri: pathToFileURL(HOSTILE).href },
      data: { train: tiny, eval: tiny },
      hyperparameters: { learningRate: 0.01, batchSize: 8 },
      stepsPerEpoch: 4,
      maxEpochs: 1,
      seed: 1,
      checkpoint: { everySteps: 0, everySeconds: 0 },
    });
    const runDir = path.join(runRoot, 'run');
    const started = Date.now();
    const err = await client.request<TrainUntilStepResult>({ type: 'train', request: { runUri: pathToFileURL(runDir).href, config, targetStep: 4, learningRate: 0.01 } }).then(
      () => assert.fail('the hostile SavedModel trained'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TrainerError, String(err));
    assert.equal(err.name, 'UnsafeSavedModel');
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /`ReadFile`.*in function `__inference_train_step_\d+`/);
    assert.doesNotMatch(err.message, /planted-secret/);
    assert.ok(Date.now() - started < 10_000, `refused after ${Date.now() - started} ms`);
    assert.ok(!fs.existsSync(path.join(HOSTILE_DIR, 'stolen.txt')), 'the secret was copied: the graph ran');
    assert.ok(!fs.existsSync(path.join(runDir, 'checkpoints')), 'a checkpoint was written');
  });
});

describe('what the walk reaches', () => {
  test('an op called from the main graph', () => {
    const err = refusal(trainStepCalling([node('r', 'ReadFile'), node('m', 'MatMul')]));
    assert.match(err.message, /`ReadFile` \(it reads a file\), run by signature `train_step`: node `r` in function `train_fn`/);
  });

  test('a While body, a function used as an op, a function named inside another function attribute', () => {
    const body = fn('loop_body', [node('w', 'WriteFile')]);
    assert.match(refusal(trainStepCalling([node('loop', 'While', { attrs: [funcAttr('cond', 'loop_cond'), funcAttr('body', 'loop_body')] })], [fn('loop_cond', [node('c', 'Less')]), body])).message, /`WriteFile`.*node `w` in function `loop_body`/);
    assert.match(refusal(trainStepCalling([node('direct', 'helper')], [fn('helper', [node('p', 'PyFunc')])])).message, /`PyFunc` \(it runs Python\).*in function `helper`/);
    const nested = funcAttr('f', 'outer', [funcAttr('inner', 'sneaky')]);
    assert.match(refusal(trainStepCalling([node('c', 'PartitionedCall', { attrs: [nested] })], [fn('outer', [node('i', 'Identity')]), fn('sneaky', [node('m', 'MatchingFiles')])])).message, /`MatchingFiles`.*in function `sneaky`/);
  });

  test('an op outside the allow-list that is not known to do I/O is refused too, with how to report it', () => {
    const err = refusal(trainStepCalling([node('x', 'SomeNewOp')]));
    assert.match(err.message, /not on durable-train's allow-list of computation ops: `SomeNewOp`, run by signature `train_step`: node `x` in function `train_fn`\..*report it/);
  });

  test('SaveV2 reached from a signature is refused; RestoreV2 only in the restore subgraph; the save subgraph and uncalled signatures are not walked', () => {
    assert.match(refusal(trainStepCalling([node('s', 'SaveV2')])).message, /`SaveV2`/);
    assert.match(refusal(trainStepCalling([node('s', 'RestoreV2')])).message, /`RestoreV2`.*signature `train_step`/);
    const saver = {
      nodes: [
        node('restore', 'StatefulPartitionedCall', { attrs: [funcAttr('f', 'traced_restore')] }),
        node('save', 'StatefulPartitionedCall', { attrs: [funcAttr('f', 'traced_save')] }),
        node('serve_call', 'StatefulPartitionedCall', { attrs: [funcAttr('f', 'serve_fn')] }),
      ],
      signatures: [signature('serve', 'serve_call:0')],
      restoreOp: 'restore',
    };
    const library = [fn('traced_restore', [node('r', 'RestoreV2'), node('a', 'AssignVariableOp')]), fn('traced_save', [node('s', 'SaveV2'), node('m', 'MergeV2Checkpoints')]), fn('serve_fn', [node('x', 'ReadFile')])];
    passes(trainStepCalling([node('m', 'MatMul')], library, saver));
    // The restore subgraph is still checked: anything but RestoreV2 and computation is refused there.
    library[0] = fn('traced_restore', [node('r', 'RestoreV2'), node('w', 'WriteFile')]);
    assert.match(refusal(trainStepCalling([node('m', 'MatMul')], library, saver)).message, /`WriteFile`.*run by the saver's restore op/);
  });

  test('the init op the loader runs is walked', () => {
    const pb = trainStepCalling([node('m', 'MatMul')], [fn('init_fn', [node('w', 'WriteFile')])], {
      nodes: [node('init', 'StatefulPartitionedCall', { attrs: [funcAttr('f', 'init_fn')] })],
      signatures: [signature('__saved_model_init_op', 'init')],
    });
    assert.match(refusal(pb).message, /`WriteFile`.*run by the init op/);
  });
});

describe('bounds', () => {
  test(`a saved_model.pb over ${MAX_SAVED_MODEL_BYTES} bytes is refused without reading it`, () => {
    const dir = path.join(root, 'huge');
    fs.mkdirSync(dir);
    const fd = fs.openSync(path.join(dir, 'saved_model.pb'), 'w');
    fs.ftruncateSync(fd, MAX_SAVED_MODEL_BYTES + 1); // sparse: no bytes written
    fs.closeSync(fd);
    assert.throws(() => checkSavedModelOps(dir, 'file:///huge'), /has 268435457 bytes; durable-train checks graphs up to 268435456 bytes/);
  });

  test(`more than ${MAX_NODES} nodes`, () => {
    const empty = field(1, Buffer.alloc(0)); // GraphDef.node, an empty NodeDef: 2 bytes each
    const graph = Buffer.concat(Array.from({ length: MAX_NODES + 1 }, () => empty));
    const pb = field(2, cat(field(1, field(4, 'serve')), field(2, graph)));
    assert.match(refusal(pb).message, /cannot be read, so its ops cannot be checked: more than 1,000,000 nodes/);
  });

  test(`function calls nested more than ${MAX_CALL_DEPTH} deep (a chain of ${MAX_CALL_DEPTH + 5})`, () => {
    const chain = Array.from({ length: MAX_CALL_DEPTH + 5 }, (_, i) => fn(`f${i}`, [node('c', 'StatefulPartitionedCall', { attrs: [funcAttr('f', `f${i + 1}`)] })]));
    const err = refusal(trainStepCalling([node('c', 'StatefulPartitionedCall', { attrs: [funcAttr('f', 'f0')] })], chain));
    assert.match(err.message, new RegExp(`nests function calls more than ${MAX_CALL_DEPTH} deep`));
    // A recursive function is walked once, not forever.
    passes(trainStepCalling([node('c', 'StatefulPartitionedCall', { attrs: [funcAttr('f', 'train_fn')] })]));
  });

  test(`attribute values nested more than ${MAX_ATTR_DEPTH} deep`, () => {
    let attr = funcAttr('f', 'leaf');
    for (let i = 0; i < MAX_ATTR_DEPTH + 2; i++) attr = funcAttr('f', `level${i}`, [attr]);
    assert.match(refusal(trainStepCalling([node('c', 'PartitionedCall', { attrs: [attr] })])).message, /nested more than 32 deep/);
  });

  test('a saved_model.cpb or .pbtxt beside saved_model.pb (TensorFlow could load that one instead)', () => {
    for (const other of ['saved_model.cpb', 'saved_model.pbtxt']) {
      const dir = writeModel(trainStepCalling([node('m', 'MatMul')]));
      checkSavedModelOps(dir, 'file:///ok');
      fs.writeFileSync(path.join(dir, other), 'node { op: "ReadFile" }');
      assert.throws(() => checkSavedModelOps(dir, 'file:///m'), new RegExp(`has a ${other.replace('.', '\\.')} beside saved_model\\.pb`));
    }
  });

  test('a truncated file', () => {
    const whole = fs.readFileSync(path.join(FIXTURES, 'broken-per-example-loss/saved_model.pb'));
    assert.match(refusal(whole.subarray(0, whole.length - 1000)).message, /cannot be read, so its ops cannot be checked: (truncated|field \d+ at byte \d+ claims)/);
  });
});
