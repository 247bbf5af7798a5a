/**
 * The size walk every workflow runs on its input before anything reads it (src/config/bounds.ts):
 * an input past the bytes or nesting bounds fails the workflow with InvalidConfig, where a deep one
 * used to overflow the stack in a recursive reader (a workflow task failing for ever).
 */
import { patched } from '@temporalio/workflow';
import { inputSizeIssues, MAX_INPUT_BYTES } from '../config/bounds';
import { ConfigError } from '../config/validate';
import { INPUT_BOUNDS_PATCH } from './patches';
import { invalidConfig } from './invalid-config';


/**
 * The input of a workflow that starts trainModel children (a search's trials, a retrain's run): room
 * for what it adds to the child's input (run id, folder or warm-start URI, epochs) within the bound.
 */
export const MAX_PARENT_INPUT_BYTES = MAX_INPUT_BYTES - 8192;

/** Throws InvalidConfig (non-retryable) naming the field when `input` is too large or too deep. */
export function failOnOversizedInput(input: unknown, context: string, maxBytes?: number): void {
  const issues = inputSizeIssues(input, 'input', maxBytes === undefined ? {} : { maxBytes });
  if (issues.length > 0 && patched(INPUT_BOUNDS_PATCH)) throw invalidConfig(new ConfigError(issues, context));
}
