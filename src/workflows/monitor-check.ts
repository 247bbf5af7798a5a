/**
 * A monitor (early stopping, plateau) must name a metric the run has: a typo such as `val_acc`
 * would otherwise never fire, and a name such as `constructor` would read off Object.prototype.
 * The metric names are known only once the first evaluation returns, so the check runs then.
 */
import { patched } from '@temporalio/workflow';
import type { TrainConfig } from '../config/train-config';
import { ConfigError, describe, type ConfigIssue } from '../config/validate';
import { invalidConfig } from './invalid-config';
import { UNKNOWN_MONITOR_PATCH } from './patches';

/** The monitors in `config` that are not metrics of `metrics` (own keys only). Pure. */
export function unknownMonitors(config: Pick<TrainConfig, 'earlyStopping' | 'reduceLrOnPlateau'>, metrics: Readonly<Record<string, number>>): ConfigIssue[] {
  const names = Object.keys(metrics);
  const issues: ConfigIssue[] = [];
  for (const [field, monitor] of [
    ['earlyStopping.monitor', config.earlyStopping?.monitor],
    ['reduceLrOnPlateau.monitor', config.reduceLrOnPlateau?.monitor],
  ] as const) {
    if (monitor === undefined || Object.hasOwn(metrics, monitor)) continue;
    issues.push({ field, expected: `one of the run's metrics (${names.join(', ')})`, received: describe(monitor) });
  }
  return issues;
}

/**
 * Fails the workflow non-retryably (InvalidConfig) when a monitor names no metric. Behind a patch
 * only where it fails, so histories of runs with valid monitors replay unchanged.
 */
export function failOnUnknownMonitor(config: TrainConfig, metrics: Readonly<Record<string, number>>): void {
  const issues = unknownMonitors(config, metrics);
  if (issues.length > 0 && patched(UNKNOWN_MONITOR_PATCH)) throw invalidConfig(new ConfigError(issues, 'Invalid trainModel input'));
}
