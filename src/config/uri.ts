/**
 * URI syntax for every store URI an input names (checkpoint root, warm start, SavedModel, data
 * file, champion root). Only syntax: which prefixes a worker will touch is the worker's decision
 * (its allow-list). Pure, so the workflow refuses a malformed URI before any activity runs,
 * instead of each store failing its own way on the worker, retry after retry. One validator: the
 * structure is config/normal-uri.ts's normal form, the same the worker's allow-list applies.
 */
import { normaliseUri } from './normal-uri';
import { MAX_URI_LENGTH } from './bounds';
import type { Checker } from './validate';

/**
 * Why a URI's syntax is refused, or undefined when it is fine. The structure is the worker's one
 * normal form (config/normal-uri.ts normaliseUri: scheme, bucket, segments, no alias); an input is held to
 * more on top: at most MAX_URI_LENGTH characters, no percent-escapes at all, a folder below the file
 * system's root, and a file where a file is meant.
 */
export function uriSyntaxProblem(uri: string, target: 'folder' | 'file'): string | undefined {
  if (uri.length > MAX_URI_LENGTH) return `at most ${MAX_URI_LENGTH} characters`;
  if (!uri.startsWith('gs://') && !uri.startsWith('file:///')) return undefined;
  if (uri.includes('%')) return 'no percent-escapes (`%2F` and the like)';
  const normal = normaliseUri(uri);
  if (!normal.ok) return `a URI in normal form, not one with ${normal.reason}`;
  const segments = normal.uri.segments;
  if (normal.uri.scheme === 'file' && segments.length === 0) return 'a folder below the file system root';
  if (target === 'file' && (segments.length === 0 || uri.endsWith('/'))) return 'the URI of a file, not of a folder';
  return undefined;
}

/**
 * A refused URI as a message may show it: credentials (`user:password@`) and whatever follows a
 * `?` or `#` (a signed URL's token) become `***`, so no secret a user pasted reaches a failure or
 * the workflow's history.
 */
export function shownUri(uri: string): string {
  return uri.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/]*@/i, '$1***@').replace(/([?#]).*$/s, '$1***');
}

/**
 * Checks a store URI: `file:///absolute/path` or `gs://bucket[/prefix]`, normalised. Reports the
 * scheme failure with `expected` as is, a syntax failure with the reason appended.
 */
export function checkStoreUri(c: Checker, field: string, value: string, expected: string, target: 'folder' | 'file' = 'folder'): string | undefined {
  if (!value.startsWith('file:///') && !value.startsWith('gs://')) return c.fail(field, expected, shownUri(value));
  const problem = uriSyntaxProblem(value, target);
  if (problem !== undefined) return c.fail(field, `${expected}: ${problem}`, shownUri(value));
  return value;
}
