/** Reads a run's input from a JSON file and validates it before anything is started. */
import fs from 'node:fs';
import { parseRetrainConfig } from '../config/retrain-config';
import { parseTrainConfig } from '../config/train-config';
import { ConfigError, describe, isObject } from '../config/validate';
import { UsageError } from './args';

export type ConfigKind = 'train' | 'retrain' | 'search';

/**
 * Reads and validates a config file; every problem names the file and the field. `search` inputs
 * are only checked to be a JSON object here: the workflow validates them field by field.
 */
export function readConfigFile(file: string, kind: ConfigKind = 'train'): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: is not valid JSON (${(err as Error).message})`);
  }
  try {
    if (kind === 'train') parseTrainConfig(input);
    else if (kind === 'retrain') parseRetrainConfig(input);
    else if (!isObject(input)) throw new UsageError(`${file}: Expected the file to hold a hyperparameterSearch input (a JSON object), got ${describe(input)}`);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`${file}: ${err.message}`);
    throw err;
  }
  return input;
}
