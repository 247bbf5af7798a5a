/**
 * Errors the same input raises again on every attempt: the input's fault, so non-retryable from the
 * first attempt (a retry costs minutes and ends the same way). Classified where they are raised (the
 * trainer's answer) and again where the worker reads that answer. Pure.
 */

/** Messages of tfjs, TensorFlow and V8 errors that a given model, dataset and batch size always raise. */
const INPUT_ERROR_MESSAGES: readonly RegExp[] = [
  // tfjs-layers (its ValueError keeps the name `Error`): a model and data whose shapes differ.
  /is incompatible with layer/,
  /^Error when checking /,
  /expected .* to have (shape|\d+ dimension)/,
  // tfjs-core: ops on tensors whose shapes do not fit.
  /Operands could not be broadcast together/,
  // tfjs-layers Reshape: a target_shape whose size is not the input's (raised at the first step).
  /Total size of new array must be unchanged/,
  /inner shapes \(\d+\) and \(\d+\) of Tensors/,
  /must match size of shape|Size\(\d+\) must match/,
  // V8 and TensorFlow: an allocation the input made too large for this machine.
  /Invalid array length|Invalid typed array length|Array buffer allocation failed/,
  /Cannot create a string longer than/,
  /OOM when allocating/,
];

/**
 * Whether an error of this name and message is caused by the input: every `RangeError` (an array,
 * buffer or recursion sized by the input) and the shape and allocation failures above.
 */
export function isInputError(name: string, message: string): boolean {
  return name === 'RangeError' || INPUT_ERROR_MESSAGES.some((re) => re.test(message));
}

/**
 * Whether a thrown error is the input's: isInputError, or a tfjs-layers `ValueError` (its class: its
 * name stays `Error`). tfjs-layers raises ValueError for a layer configuration or shape that cannot
 * work, which a topology in the input decides; a retry raises it again.
 */
export function isInputErrorObject(err: Error): boolean {
  return err.constructor?.name === 'ValueError' || isInputError(err.name, err.message);
}
