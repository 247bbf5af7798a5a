/**
 * Signature checks: a trainable SavedModel is checked against its metadata and the run's datasets
 * before anything is trained, so a bad export fails once, non-retryably, naming the problem.
 */
import type { DatasetShapes } from '../dataset';
import { EXPORTER, fail, METADATA_FILE, REQUIRED_ENDPOINTS, type Endpoint, type SavedModelMetadata } from './metadata';
import type { SignatureDefs, TfNode } from './mirror';

/** Dims of a signature tensor (-1 = any); undefined for unknown rank. */
function dims(info: { shape?: unknown }): number[] {
  const shape = (info.shape ?? []) as Array<{ getSize?: () => number; size?: number } | number>;
  return shape.map((d) => (typeof d === 'number' ? d : typeof d.getSize === 'function' ? d.getSize() : Number(d.size ?? -1)));
}

function shapeFits(sig: number[], example: readonly number[]): boolean {
  return sig.length === example.length + 1 && example.every((n, i) => sig[i + 1] === -1 || sig[i + 1] === n);
}

const fmt = (shape: readonly number[]): string => `[${shape.map((d) => (d === -1 ? 'None' : d)).join(', ')}]`;

const isClassificationLoss = (loss: string): boolean => /cross_?entropy/i.test(loss);
const REGRESSION_LOSS = /^(mse|mae|mape|msle|mean_squared_error|mean_absolute_error|mean_absolute_percentage_error|mean_squared_logarithmic_error|huber|huber_loss|log_cosh|logcosh|meansquarederror|meanabsoluteerror|meanabsolutepercentageerror|meansquaredlogarithmicerror|logcosh)$/i;

/**
 * The export's loss against what the data's targets are: a cross-entropy on regression targets (or
 * on a single one-hot column, where a softmax is always 1 and nothing trains), or a regression loss
 * on classes, completes a run that learned nothing. Refused before the first step, naming both.
 */
export function checkLossFitsTargets(loss: string, data: DatasetShapes, field: string, uri: string): void {
  const width = data.yShape.reduce((a, b) => a * b, 1);
  const task = data.task ? ` (params.task \`${data.task}\`)` : '';
  if (isClassificationLoss(loss)) {
    if (data.task === 'regression') {
      fail(`The SavedModel at ${uri} was exported with the classification loss \`${loss}\`, but ${field} is a regression task${task}: re-export it with a regression loss (e.g. --loss mean_squared_error --metrics mae)`);
    }
    if (/categorical/i.test(loss) && !/sparse/i.test(loss) && width === 1) {
      fail(`The SavedModel at ${uri} was exported with \`${loss}\`, which needs one-hot targets over 2 or more classes, but ${field} has targets of shape [${data.yShape.join(', ')}]${task}: a softmax over one class is always 1 and nothing would train. Re-export it with the loss that fits the data (--loss)`);
    }
  } else if (REGRESSION_LOSS.test(loss.replace(/[^A-Za-z_]/g, '')) && data.task === 'classification') {
    fail(`The SavedModel at ${uri} was exported with the regression loss \`${loss}\`, but ${field} is a classification task${task}: re-export it with a classification loss (e.g. --loss categorical_crossentropy)`);
  }
}

/**
 * Checks a trainable SavedModel against its metadata and the run's datasets, before anything is
 * trained: every endpoint is there with the inputs and outputs we call it with, x and y fit the
 * dataset, the loss is a scalar, the state vectors have the metadata's sizes. Throws
 * NonRetryableTrainingError naming the first problem.
 */
export async function validateTrainableSavedModel(
  tfn: TfNode,
  dir: string,
  uri: string,
  metadata: SavedModelMetadata,
  data: { readonly train: DatasetShapes; readonly eval?: DatasetShapes },
): Promise<SignatureDefs> {
  let metaGraphs: Awaited<ReturnType<TfNode['node']['getMetaGraphsFromSavedModel']>>;
  try {
    metaGraphs = await tfn.node.getMetaGraphsFromSavedModel(dir);
  } catch (err) {
    fail(`Cannot read the SavedModel at ${uri}: ${(err as Error).message}`);
  }
  const graph = metaGraphs.find((m) => m.tags.length === 1 && m.tags[0] === 'serve');
  if (!graph) fail(`The SavedModel at ${uri} has no meta graph tagged \`serve\` (tags: ${metaGraphs.map((m) => m.tags.join(',')).join('; ')})`);
  for (const [field, d] of [['data.train', data.train], ['data.eval', data.eval]] as const) if (d) checkLossFitsTargets(metadata.loss, d, field, uri);
  const sigs = graph.signatureDefs;
  const have = Object.keys(sigs).sort();
  for (const name of REQUIRED_ENDPOINTS) {
    if (!sigs[name]) {
      fail(`The SavedModel at ${uri} has no \`${name}\` endpoint (it has: ${have.join(', ') || 'none'}); a trainable SavedModel needs ${REQUIRED_ENDPOINTS.join(', ')}: export it with ${EXPORTER}`);
    }
  }
  const input = (ep: Endpoint, name: string) => {
    const info = sigs[ep]!.inputs[name];
    if (!info) fail(`Endpoint \`${ep}\` of the SavedModel at ${uri} has no input \`${name}\` (inputs: ${Object.keys(sigs[ep]!.inputs).join(', ')})`);
    return info;
  };
  const output = (ep: Endpoint, name: string) => {
    const info = sigs[ep]!.outputs[name];
    if (!info) fail(`Endpoint \`${ep}\` of the SavedModel at ${uri} has no output \`${name}\` (outputs: ${Object.keys(sigs[ep]!.outputs).join(', ')})`);
    return info;
  };
  const sets: Array<[string, DatasetShapes | undefined]> = [['data.train', data.train], ['data.eval', data.eval]];
  for (const ep of ['train_step', 'eval_step'] as const) {
    const names = Object.keys(sigs[ep]!.inputs).sort();
    if (names.join() !== 'x,y') fail(`Endpoint \`${ep}\` of the SavedModel at ${uri} must take inputs x and y, it takes ${names.join(', ')}`);
    for (const [field, d] of sets) {
      if (!d) continue;
      const x = dims(input(ep, 'x'));
      const y = dims(input(ep, 'y'));
      if (!shapeFits(x, d.xShape)) {
        fail(`Input x of \`${ep}\` in the SavedModel at ${uri} has shape ${fmt(x)}, but ${field} has examples of shape ${fmt(d.xShape as number[])} (batches ${fmt([-1, ...d.xShape])})`);
      }
      if (!shapeFits(y, d.yShape)) {
        fail(`Input y of \`${ep}\` in the SavedModel at ${uri} has shape ${fmt(y)}, but ${field} has targets of shape ${fmt(d.yShape as number[])} (batches ${fmt([-1, ...d.yShape])})`);
      }
    }
    if (input(ep, 'x').dtype !== 'float32' || input(ep, 'y').dtype !== 'float32') fail(`Inputs x and y of \`${ep}\` in the SavedModel at ${uri} must be float32`);
  }
  const loss = output('train_step', 'loss');
  const lossDims = dims(loss);
  if (lossDims.length !== 0 || loss.dtype !== 'float32') {
    fail(`Output loss of \`train_step\` in the SavedModel at ${uri} must be a float32 scalar (the batch's mean loss), it is ${loss.dtype} of shape ${fmt(lossDims)}`);
  }
  for (const m of metadata.metrics) {
    const out = output('eval_step', m);
    if (dims(out).length !== 0) fail(`Output ${m} of \`eval_step\` in the SavedModel at ${uri} must be a scalar (a per-batch sum), it has shape ${fmt(dims(out))}`);
  }
  for (const part of ['model', 'optimizer'] as const) {
    const words = metadata.state[part].words;
    const got = output('get_state', part);
    const put = input('set_state', part);
    for (const [what, info] of [['output of get_state', got], ['input of set_state', put]] as const) {
      const d = dims(info);
      if (info.dtype !== 'int32' || d.length !== 1 || d[0] !== words) {
        fail(`The ${part} ${what} in the SavedModel at ${uri} is ${info.dtype} ${fmt(d)}, but ${METADATA_FILE} describes int32 [${words}]: re-export it with ${EXPORTER}`);
      }
    }
  }
  const lr = input('set_learning_rate', 'learning_rate');
  if (dims(lr).length !== 0) fail(`Input learning_rate of \`set_learning_rate\` in the SavedModel at ${uri} must be a scalar`);
  return sigs;
}
