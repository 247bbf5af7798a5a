/**
 * Generic retry with exponential backoff, jitter and a total deadline.
 *
 * Used by the GCS store (the library's own auto-retry is switched off so this is the
 * one loop in control), but nothing here is GCS-specific.
 */

export interface RetryOptions {
  /** Maximum number of retries after the first attempt. Default 50 (the deadline usually ends it first). */
  retries?: number;
  /** Backoff before the first retry, before jitter. Default 250 ms. */
  baseMs?: number;
  /** Cap on a single backoff. Default 5000 ms. */
  maxMs?: number;
  /**
   * Total time budget, measured from the first attempt. No new attempt starts after it,
   * and a backoff is shortened so the last attempt starts before it. Default 60 000 ms.
   */
  deadlineMs?: number;
  /** Decides whether an error is worth another attempt. Errors it rejects are thrown at once. */
  isTransient: (err: unknown) => boolean;
  /** Called before each backoff; for logging. */
  onRetry?: (info: { error: unknown; attempt: number; delayMs: number }) => void;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  /** Injectable for tests: returns a number in [0, 1). */
  random?: () => number;
}

export const RETRY_DEFAULTS = {
  retries: 50,
  baseMs: 250,
  maxMs: 5_000,
  deadlineMs: 60_000,
} as const;

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Backoff for retry number `attempt` (0-based): exponential up to `maxMs`, then "equal jitter":
 * half the delay fixed, half random, so retries from many workers spread out but never collapse to 0.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/**
 * Runs `fn` until it resolves, it throws an error `isTransient` rejects, the retries are used up,
 * or the deadline has passed; then the last error is thrown. `fn` receives the 0-based attempt number.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const retries = options.retries ?? RETRY_DEFAULTS.retries;
  const baseMs = options.baseMs ?? RETRY_DEFAULTS.baseMs;
  const maxMs = options.maxMs ?? RETRY_DEFAULTS.maxMs;
  const deadlineMs = options.deadlineMs ?? RETRY_DEFAULTS.deadlineMs;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const deadline = Date.now() + deadlineMs;

  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= retries || !options.isTransient(error)) throw error;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw error;
      const delayMs = Math.min(backoffDelay(attempt, baseMs, maxMs, random), remaining);
      options.onRetry?.({ error, attempt, delayMs });
      await sleep(delayMs);
    }
  }
}

const TRANSIENT_HTTP = new Set([408, 429, 500, 502, 503, 504]);
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
const TRANSIENT_MESSAGE =
  /socket hang up|ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EAI_AGAIN|network timeout|Premature close|unexpected connection closure|socket connection timeout|other side closed/i;

/** The HTTP status of an error from an HTTP client, if it has one. */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; status?: unknown; statusCode?: unknown; response?: { status?: unknown; statusCode?: unknown } };
  for (const candidate of [e.code, e.status, e.statusCode, e.response?.status, e.response?.statusCode]) {
    if (typeof candidate === 'number' && candidate >= 100 && candidate < 600) return candidate;
    if (typeof candidate === 'string' && /^[1-5]\d\d$/.test(candidate)) return Number(candidate);
  }
  return undefined;
}

/**
 * True for errors a retry can fix: HTTP 408/429/5xx-transient, and connection-level failures
 * (ECONNRESET, ECONNREFUSED, ETIMEDOUT, EPIPE, socket hang up, ...). Looks through `cause`
 * chains and `errors` arrays, since HTTP clients wrap the system error.
 */
export function isTransientError(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 5) return false;
  const status = httpStatusOf(err);
  if (status !== undefined) return TRANSIENT_HTTP.has(status);
  const e = err as { code?: unknown; errno?: unknown; message?: unknown; cause?: unknown; errors?: unknown; reason?: unknown };
  for (const code of [e.code, e.errno, e.reason]) {
    if (typeof code === 'string' && TRANSIENT_CODES.has(code.toUpperCase())) return true;
  }
  if (typeof e.message === 'string' && TRANSIENT_MESSAGE.test(e.message)) return true;
  if (typeof e.reason === 'string' && TRANSIENT_MESSAGE.test(e.reason)) return true;
  if (e.cause !== undefined && isTransientError(e.cause, depth + 1)) return true;
  if (Array.isArray(e.errors)) return e.errors.some((inner) => isTransientError(inner, depth + 1));
  return false;
}
