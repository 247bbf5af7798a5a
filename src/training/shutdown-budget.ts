/**
 * `DT_SHUTDOWN_SECONDS`: how long a stopping worker and its trainer have to save and hand work back.
 * Read by both sides of the trainer's IPC channel (trainer-client.ts in the worker,
 * trainer-process.ts in the trainer), so it lives apart from either.
 */
import { describe } from '../config/validate';

/** A shutdown budget: above 0 and at most MAX_SHUTDOWN_SECONDS (Node's timers overflow past ~24 days and fire at once). */
export const MAX_SHUTDOWN_SECONDS = 3600;

/** `DT_SHUTDOWN_SECONDS` (default 25): the budget for saving and handing work back on SIGTERM/SIGINT. */
export function shutdownSecondsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.DT_SHUTDOWN_SECONDS?.trim();
  if (raw === undefined || raw === '') return 25;
  // Plain decimals only ("0x10", "1e9" and "Infinity" are not a budget anyone meant).
  return checkShutdownSeconds('DT_SHUTDOWN_SECONDS', /^\d{1,4}(\.\d{1,3})?$/.test(raw) ? Number(raw) : raw);
}

export function checkShutdownSeconds(field: string, value: unknown): number {
  if (typeof value !== 'number' || !(value > 0) || value > MAX_SHUTDOWN_SECONDS) {
    throw new Error(`Expected \`${field}\` to be a number of seconds above 0 and at most ${MAX_SHUTDOWN_SECONDS}, got ${describe(value)}`);
  }
  return value;
}
