/**
 * One eager training step, kept apart so that the eager route and the benchmark's bare loop run
 * the very same code: one optimizer step whose loss is computed from logits when the model ends in
 * softmax (as Keras does), and the loss functions by name.
 */
import * as tf from '@tensorflow/tfjs';
import type { LossName } from '../../config/train-config';
import type { BatchAssembler } from '../batch';
import { adamApply, adamInternals } from './adam';
import { explicitGradients, type ExplicitGradients } from './explicit';

export function lossFunction(name: LossName): (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'categoricalCrossentropy':
      return (t, p) => tf.metrics.categoricalCrossentropy(t, p);
    case 'meanSquaredError':
      return (t, p) => tf.metrics.meanSquaredError(t, p);
  }
}

/** The model's last layer when it ends in a softmax (a Dense or an Activation layer), else undefined. */
function softmaxOutputLayer(model: tf.LayersModel): { activation: unknown } | undefined {
  const last = model.layers[model.layers.length - 1] as unknown as { activation?: { getClassName?(): string } } | undefined;
  if (model.outputs.length !== 1 || !last?.activation?.getClassName) return undefined;
  return last.activation.getClassName() === 'softmax' ? (last as { activation: unknown }) : undefined;
}

/** The mean training loss of a batch as a function to differentiate, and, when the model allows, its gradients written out. */
export type TrainingLoss = ((x: tf.Tensor, y: tf.Tensor) => tf.Scalar) & { readonly explicit?: ExplicitGradients };

/** DT_EAGER_FUSED=0 keeps the gradient tape for every model (the reference the written-out passes are measured against). */
function explicitWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DT_EAGER_FUSED !== '0';
}

/**
 * The mean training loss of a batch, as a function the optimizer can differentiate, with the
 * written-out forward and backward passes of explicit.ts attached when the model is made of the
 * layers they cover (then optimizerStep uses those, not the tape).
 *
 * For categorical crossentropy on a model that ends in softmax, the last layer's activation is
 * switched to linear for the training forward pass and the loss is taken from the logits with
 * tf.losses.softmaxCrossEntropy, whose gradient is the fused softmax(logits) - labels: the same
 * loss (Keras computes it from logits too), fewer and cheaper backward ops, no clipping at 1e-7.
 * The model itself is unchanged: predict() and evaluation still see probabilities.
 */
export function trainingLoss(
  model: tf.LayersModel,
  loss: LossName,
  lossFn: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor,
  writtenOut = explicitWanted(),
): TrainingLoss {
  const taped = tapedLoss(model, loss, lossFn);
  const explicit = writtenOut ? explicitGradients(model, loss) : undefined;
  return explicit ? Object.assign(taped, { explicit }) : taped;
}

function tapedLoss(model: tf.LayersModel, loss: LossName, lossFn: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor): (x: tf.Tensor, y: tf.Tensor) => tf.Scalar {
  const output = loss === 'categoricalCrossentropy' ? softmaxOutputLayer(model) : undefined;
  if (output) {
    const softmax = output.activation;
    const linear = (tf.layers.activation({ activation: 'linear' }) as unknown as { activation: unknown }).activation;
    return (x, y) => {
      output.activation = linear;
      let logits: tf.Tensor;
      try {
        logits = model.apply(x, { training: true }) as tf.Tensor;
      } finally {
        output.activation = softmax;
      }
      return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
    };
  }
  return (x, y) => tf.mean(lossFn(y, model.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar;
}

/**
 * One optimizer step on the assembled batch; returns the batch's loss as a tensor (never read
 * here: reading a tensor waits for the device, so the loop reads only when a metric is due).
 */
export function optimizerStep(optimizer: tf.Optimizer, variables: tf.Variable[], lossOf: TrainingLoss, batch: BatchAssembler): tf.Scalar {
  const adam = adamInternals(optimizer);
  return tf.tidy(() => {
    let result: { value: tf.Scalar; grads: tf.NamedTensorMap };
    if (lossOf.explicit) {
      result = lossOf.explicit(batch);
    } else {
      const x = tf.tensor(batch.x, batch.xShape);
      const y = tf.tensor(batch.y, batch.yShape);
      if (!adam) return optimizer.minimize(() => lossOf(x, y), true, variables)!;
      result = tf.variableGrads(() => lossOf(x, y), variables);
    }
    if (adam) adamApply(adam, variables, result.grads);
    else optimizer.applyGradients(inOrderOf(variables, result.grads));
    return result.value;
  });
}

/** The gradients keyed in the variables' order: tfjs optimizers number their slots by key order, and checkpoints store the slots in that order. */
function inOrderOf(variables: readonly tf.Variable[], grads: tf.NamedTensorMap): tf.NamedTensorMap {
  const ordered: tf.NamedTensorMap = {};
  for (const v of variables) if (grads[v.name]) ordered[v.name] = grads[v.name]!;
  return ordered;
}
