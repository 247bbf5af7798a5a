/**
 * The size walk every workflow runs on its input before anything reads it (src/config/bounds.ts):
 * an input past the bytes or nesting bounds fails the workflow with InvalidConfig, where a deep one
 * used to overflow the stack in a recursive reader (a workflow task failing for ever).
 */
import { patched } from '@temporalio/workflow';
import { inputSizeIssues } from '../config/bounds';
import { ConfigError } from '../config/validate';
import { invalidConfig } from './invalid-config';

/**
 * patched() id: inputs past the bounds fail. Asked only when an input is past them, so histories of
 * inputs within them carry no marker; a run started before with a larger input replays without it.
 */
export const INPUT_BOUNDS_PATCH = 'input-size-bounds';

/** Throws InvalidConfig (non-retryable) naming the field when `input` is too large or too deep. */
export function failOnOversizedInput(input: unknown, context: string): void {
  const issues = inputSizeIssues(input, 'input');
  if (issues.length > 0 && patched(INPUT_BOUNDS_PATCH)) throw invalidConfig(new ConfigError(issues, context));
}
