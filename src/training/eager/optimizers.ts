/**
 * The eager route's optimizers (tfjs's own) and their state in a checkpoint: the slot variables'
 * float32 bytes in optimizer.bin, their names, shapes and the step counter in state.json.
 *
 * To add an optimizer: its name in OptimizerName and OPTIMIZERS (src/config/train-config.ts, which
 * validates it) and a case in createOptimizer; its slots are saved and restored through getWeights/setWeights.
 */
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from '../../config/train-config';
import { product } from '../dataset';

export interface SlotSpec {
  readonly name: string;
  readonly shape: number[];
}

/** state.json's `optimizer` of an eager checkpoint. */
export interface EagerOptimizerState {
  readonly name: OptimizerName;
  readonly iterations: number;
  /** Adam's running beta powers: tfjs recomputes them with pow() on load, which drifts in float32. */
  readonly accBeta1?: number;
  readonly accBeta2?: number;
  readonly slots: readonly SlotSpec[];
}

export function createOptimizer(name: OptimizerName, learningRate: number, momentum: number): tf.Optimizer {
  switch (name) {
    case 'adam':
      return tf.train.adam(learningRate);
    case 'sgd':
      return tf.train.sgd(learningRate);
    case 'momentum':
      return tf.train.momentum(learningRate, momentum);
    case 'rmsprop':
      return tf.train.rmsprop(learningRate);
  }
}

export function setOptimizerLearningRate(optimizer: tf.Optimizer, learningRate: number): void {
  const o = optimizer as any;
  // SGD and momentum cache -lr in a tensor; the others read the field on every step.
  if (typeof o.setLearningRate === 'function') o.setLearningRate(learningRate);
  else o.learningRate = learningRate;
}

/** The tensors' host copies, one chunk each (optimizer.bin is their concatenation: the store writes them with writev). */
async function tensorBytes(tensors: readonly tf.Tensor[]): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  for (const t of tensors) {
    const data = await t.data();
    parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
  return parts;
}

function float32View(buf: Buffer): Float32Array {
  // Copy into an aligned buffer: a Buffer slice may start at any byte offset.
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return new Float32Array(copy.buffer);
}

/** The optimizer's state: its description for state.json and the slot bytes for optimizer.bin. */
export async function snapshotOptimizer(optimizer: tf.Optimizer, name: OptimizerName): Promise<{ state: EagerOptimizerState; bytes: Buffer[] }> {
  const slots = await optimizer.getWeights();
  const iter = slots.shift();
  const iterations = iter ? (await iter.tensor.data())[0]! : 0;
  // getWeights() makes a fresh `iter` scalar on every call: dispose it, or each save leaks one tensor.
  iter?.tensor.dispose();
  const adam = optimizer as any;
  // Key order is part of the checkpoint bytes: keep it.
  const state: EagerOptimizerState = {
    name,
    iterations,
    ...(adam.accBeta1 && { accBeta1: (await adam.accBeta1.data())[0], accBeta2: (await adam.accBeta2.data())[0] }),
    slots: slots.map((n) => ({ name: n.name, shape: n.tensor.shape })),
  };
  return { state, bytes: await tensorBytes(slots.map((n) => n.tensor)) };
}

/** An optimizer equal to the one `snapshotOptimizer` saved, bit for bit. */
export async function restoreOptimizer(o: EagerOptimizerState, bytes: Buffer, learningRate: number, momentum: number): Promise<tf.Optimizer> {
  const optimizer = createOptimizer(o.name, learningRate, momentum);
  const values = float32View(bytes);
  const named: Array<{ name: string; tensor: tf.Tensor }> = [{ name: 'iter', tensor: tf.scalar(o.iterations, 'int32') }];
  let offset = 0;
  for (const slot of o.slots) {
    const size = product(slot.shape);
    named.push({ name: slot.name, tensor: tf.tensor(values.subarray(offset, offset + size), slot.shape) });
    offset += size;
  }
  await optimizer.setWeights(named);
  named.forEach((n) => n.tensor.dispose());
  const adam = optimizer as any;
  if (o.accBeta1 !== undefined && adam.accBeta1) {
    tf.tidy(() => {
      adam.accBeta1.assign(tf.scalar(o.accBeta1!));
      adam.accBeta2.assign(tf.scalar(o.accBeta2!));
    });
  }
  return optimizer;
}
