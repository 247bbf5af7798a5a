/**
 * URI syntax for every store URI an input names (checkpoint root, warm start, SavedModel, data
 * file, champion root). Only syntax: which prefixes a worker will touch is the worker's decision
 * (its allow-list). Pure, so the workflow refuses a malformed URI before any activity runs,
 * instead of each store failing its own way on the worker, retry after retry.
 */
import { MAX_URI_LENGTH } from './bounds';
import type { Checker } from './validate';

/** GCS bucket names: 3-63 characters (up to 222 with dots, 63 per dot-separated part), lowercase. */
const GCS_BUCKET = /^[a-z0-9][a-z0-9_.-]{1,220}[a-z0-9]$/;

/** Why a URI's syntax is refused, or undefined when it is fine. */
export function uriSyntaxProblem(uri: string, target: 'folder' | 'file'): string | undefined {
  if (uri.length > MAX_URI_LENGTH) return `at most ${MAX_URI_LENGTH} characters`;
  if (/[\u0000-\u001f\u007f\\]/.test(uri)) return 'no control characters or backslashes';
  if (uri.includes('%')) return 'no percent-escapes (`%2F` and the like)';
  if (uri.includes('?') || uri.includes('#')) return 'no query (`?`) or fragment (`#`)';
  let path: string;
  if (uri.startsWith('gs://')) {
    const rest = uri.slice('gs://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    if (!GCS_BUCKET.test(bucket) || bucket.split('.').some((part) => part.length === 0 || part.length > 63) || bucket.includes('..')) {
      return 'a valid bucket name (3 to 63 of [a-z0-9_.-], starting and ending with a letter or digit)';
    }
    path = slash < 0 ? '' : rest.slice(slash + 1);
  } else if (uri.startsWith('file:///')) {
    path = uri.slice('file:///'.length);
  } else {
    return undefined;
  }
  const trimmed = path.replace(/\/$/, '');
  const segments = trimmed === '' ? [] : trimmed.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return 'a normalised path (no empty, `.` or `..` segments)';
  if (uri.startsWith('file:///') && segments.length === 0) return 'a folder below the file system root';
  if (target === 'file' && (segments.length === 0 || path.endsWith('/'))) return 'the URI of a file, not of a folder';
  return undefined;
}

/**
 * Checks a store URI: `file:///absolute/path` or `gs://bucket[/prefix]`, normalised. Reports the
 * scheme failure with `expected` as is, a syntax failure with the reason appended.
 */
export function checkStoreUri(c: Checker, field: string, value: string, expected: string, target: 'folder' | 'file' = 'folder'): string | undefined {
  if (!value.startsWith('file:///') && !value.startsWith('gs://')) return c.fail(field, expected, value);
  const problem = uriSyntaxProblem(value, target);
  if (problem !== undefined) return c.fail(field, `${expected}: ${problem}`, value);
  return value;
}
