/**
 * The trainer's side of failures: what an error becomes on the IPC channel. `nonRetryable` when a
 * retry would meet it again: the shared list (permanent-errors.ts), a backend that is not there, or
 * a shape or allocation the input made wrong (input-errors.ts). The worker rebuilds it as
 * NonRetryableTrainingError (trainer-client.ts) and storeCall fails the activity for good.
 */
import { BackendUnavailableError } from './backend';
import { isInputErrorObject } from './input-errors';
import { isPermanentError } from './permanent-errors';
import type { SerializedError } from './protocol';

export function serializeError(err: unknown): SerializedError {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    message: e.message,
    name: e.name,
    nonRetryable: isPermanentError(e) || e instanceof BackendUnavailableError || isInputErrorObject(e),
    ...(e.stack !== undefined && { stack: e.stack }),
  };
}
