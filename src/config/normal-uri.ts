/**
 * The one normal form of a store URI. Pure (no Node built-ins): workflows, activities, the
 * trainer and the CLI can all run it, so a URI means the same thing everywhere.
 *
 * Accepted: `file:///abs/path` and `gs://bucket[/key/prefix]`. Refused, because each would let
 * one URI name a place other than the one it seems to, or alias another run's folder:
 *   - a query or fragment (`file:///tmp/r?x`, `file:///tmp/r#` read and write `file:///tmp/r`);
 *   - `.` and `..` segments (the OS resolves `link/..` after the symlink, not lexically);
 *   - empty segments (`a//b`: one folder on disk, two object names on GCS);
 *   - percent-encoded `/`, `\`, `.`, control characters, or characters that need no encoding
 *     (`%2F`, `%2e`, `%41`); on gs:// any `%` (object names are taken literally);
 *   - a host in a file URI (`file://host/x`), control characters, backslashes;
 *   - invisible and text-direction characters (U+202E and the like), which make it read as another URI.
 * Trailing slashes are dropped: `file:///tmp/r/` is `file:///tmp/r`.
 */
import { invisibleCharacter } from './validate';

export type NormalUri =
  | { readonly scheme: 'file'; readonly segments: readonly string[] }
  | { readonly scheme: 'gs'; readonly bucket: string; readonly segments: readonly string[] };

export type NormaliseResult =
  | { readonly ok: true; readonly uri: NormalUri; readonly canonical: string }
  | { readonly ok: false; readonly reason: string };
/**
 * The longest URI the worker resolves: an input's URI is at most MAX_URI_LENGTH (1024, config/bounds.ts,
 * checked before any work), and the worker derives longer ones below it (the run layout's keys).
 */
export const MAX_RESOLVED_URI_LENGTH = 2048;

/** GCS bucket names: 3-63 characters (up to 222 with dots, 63 per dot-separated part), lowercase. */
const GCS_BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

export function isGcsBucket(bucket: string): boolean {
  return GCS_BUCKET.test(bucket) && !bucket.includes('..') && bucket.split('.').every((part) => part.length > 0 && part.length <= 63);
}
const UNRESERVED = /^[A-Za-z0-9_~-]$/;

function refuse(reason: string): NormaliseResult {
  return { ok: false, reason };
}

/** Decodes one path segment, refusing encodings that hide a separator, a dot or an alias. */
function decodeSegment(segment: string): string | { reason: string } {
  if (!segment.includes('%')) return segment;
  const bad = /%(?![0-9A-Fa-f]{2})/.exec(segment);
  if (bad) return { reason: 'a `%` that does not start a two-digit hex escape' };
  for (const m of segment.matchAll(/%([0-9A-Fa-f]{2})/g)) {
    const code = parseInt(m[1]!, 16);
    const ch = String.fromCharCode(code);
    if (ch === '/' || ch === '\\') return { reason: `an encoded path separator (\`${m[0]}\`)` };
    if (ch === '.') return { reason: `an encoded dot (\`${m[0]}\`)` };
    if (code < 0x20 || code === 0x7f) return { reason: `an encoded control character (\`${m[0]}\`)` };
    if (UNRESERVED.test(ch)) return { reason: `\`${ch}\` percent-encoded (\`${m[0]}\`) where it needs no encoding` };
  }
  try {
    return decodeURIComponent(segment);
  } catch {
    return { reason: 'percent-encoding that is not valid UTF-8' };
  }
}

/** The normal form of `uri`, or why it has none. */
export function normaliseUri(uri: unknown): NormaliseResult {
  if (typeof uri !== 'string' || uri === '') return refuse('not a non-empty string');
  if (uri.length > MAX_RESOLVED_URI_LENGTH) return refuse(`longer than ${MAX_RESOLVED_URI_LENGTH} characters`);
  if (/[\u0000-\u001f\u007f]/.test(uri)) return refuse('a control character');
  const invisible = invisibleCharacter(uri);
  // A bidirectional override or zero-width character makes a URI read as another one in every message and log.
  if (invisible) return refuse(`an invisible or text-direction character (${invisible})`);
  if (uri.includes('\\')) return refuse('a backslash');
  if (uri.includes('?')) return refuse('a query (`?`): it would alias the URI without it');
  if (uri.includes('#')) return refuse('a fragment (`#`): it would alias the URI without it');

  let bucket: string | undefined;
  let rest: string;
  if (uri.startsWith('file://')) {
    rest = uri.slice('file://'.length);
    if (!rest.startsWith('/')) return refuse('a host in a file URI (write `file:///absolute/path`)');
  } else if (uri.startsWith('gs://')) {
    const slash = uri.indexOf('/', 'gs://'.length);
    bucket = slash < 0 ? uri.slice('gs://'.length) : uri.slice('gs://'.length, slash);
    rest = slash < 0 ? '' : uri.slice(slash);
    if (!isGcsBucket(bucket)) return refuse(`an invalid GCS bucket name \`${bucket}\` (3 to 63 of [a-z0-9_.-], starting and ending with a letter or digit)`);
    if (rest.includes('%')) return refuse('percent-encoding in a gs:// URI (object names are taken literally)');
  } else {
    return refuse('a scheme other than `file:///` or `gs://`');
  }

  const raw = rest.replace(/\/+$/, '').split('/').slice(1);
  const segments: string[] = [];
  for (const segment of raw) {
    if (segment === '') return refuse('an empty path segment (`//`)');
    const decoded = decodeSegment(segment);
    if (typeof decoded !== 'string') return refuse(decoded.reason);
    if (decoded === '.' || decoded === '..') return refuse(`a \`${decoded}\` segment`);
    segments.push(decoded);
  }
  // A bare `/` after the bucket or scheme is the root; `rest` without a leading slash is only gs://bucket.
  const normal: NormalUri = bucket === undefined ? { scheme: 'file', segments } : { scheme: 'gs', bucket, segments };
  return { ok: true, uri: normal, canonical: formatUri(normal) };
}

/** The display form: decoded segments, no trailing slash. */
export function formatUri(uri: NormalUri): string {
  const tail = uri.segments.join('/');
  return uri.scheme === 'file' ? `file:///${tail}` : `gs://${uri.bucket}${tail === '' ? '' : `/${tail}`}`;
}

/** True when `uri` is `prefix` or below it, segment by segment (`/a/bc` is not under `/a/b`). */
export function isUnder(uri: NormalUri, prefix: NormalUri): boolean {
  if (uri.scheme !== prefix.scheme) return false;
  if (uri.scheme === 'gs' && prefix.scheme === 'gs' && uri.bucket !== prefix.bucket) return false;
  if (prefix.segments.length > uri.segments.length) return false;
  return prefix.segments.every((s, i) => uri.segments[i] === s);
}
