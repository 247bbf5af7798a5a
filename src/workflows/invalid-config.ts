/** How every workflow rejects bad input: a non-retryable `InvalidConfig` failure with the issues as details. */
import { ApplicationFailure } from '@temporalio/workflow';
import { ConfigError } from '../config/validate';

export function invalidConfig(error: ConfigError): ApplicationFailure {
  return ApplicationFailure.create({ message: error.message, type: 'InvalidConfig', nonRetryable: true, details: [error.issues] });
}

/** Runs a parser; a ConfigError becomes the workflow's InvalidConfig failure. */
export function parseOrFail<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ConfigError) throw invalidConfig(err);
    throw err;
  }
}
