/**
 * The worker's allow-list: the URI prefixes it will read or write (data, checkpoints, models,
 * warm starts). What a worker touches is the worker's decision, not the input's.
 *
 * Configured by the plugin option `allowedUris` or `DT_ALLOWED_URIS` (comma-separated); the
 * worker's checkpoint root is always on it. A URI is checked in its normal form
 * (src/config/normal-uri.ts) and, on file://, after resolving symlinks: the realpath of its longest
 * existing prefix must lie under the realpath of an allowed prefix.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { escapeText } from '../config/validate';
import { formatUri, isUnder, normaliseUri, type NormalUri } from '../config/normal-uri';

export const ALLOWED_URIS_ENV = 'DT_ALLOWED_URIS';

/** How many prefixes a refusal lists before "and N more". */
const LISTED_PREFIXES = 8;

/** A URI outside the allow-list, or one without a normal form: caused by the input, never retried. */
export class UriRefusedError extends Error {
  override readonly name = 'UriRefused';
  constructor(readonly uri: string, message: string) {
    super(message);
  }
}

export type UriCheck =
  | { readonly ok: true; readonly canonical: string }
  | { readonly ok: false; readonly expected: string; readonly received: string };

/** Splits `DT_ALLOWED_URIS`-style text: comma-separated, blanks ignored. */
export function splitUriList(text: string | undefined): string[] {
  return (text ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/**
 * The realpath of a file URI: the realpath of its longest existing prefix plus the segments
 * below it that do not exist yet. Undefined when a symlink on the way is dangling (a write would
 * follow it to wherever it points).
 */
function resolveFile(uri: NormalUri & { scheme: 'file' }): NormalUri | undefined {
  const segs = uri.segments;
  for (let n = segs.length; n >= 0; n--) {
    const p = `/${segs.slice(0, n).join('/')}`;
    try {
      fs.lstatSync(p);
    } catch {
      continue;
    }
    let real: string;
    try {
      real = fs.realpathSync.native(p);
    } catch {
      return undefined;
    }
    const realSegs = real.split(path.sep).filter((s) => s !== '');
    return { scheme: 'file', segments: [...realSegs, ...segs.slice(n)] };
  }
  return undefined;
}

function resolve(uri: NormalUri): NormalUri | undefined {
  return uri.scheme === 'file' ? resolveFile(uri) : uri;
}

export class AllowList {
  private constructor(
    /** The prefixes as configured, in normal form (what messages show). */
    readonly prefixes: readonly string[],
    private readonly normal: readonly NormalUri[],
  ) {}

  /** Builds a list from prefixes; an entry without a normal form, or the whole file system, is a configuration error. */
  static of(entries: readonly string[]): AllowList {
    const prefixes: string[] = [];
    const normal: NormalUri[] = [];
    for (const entry of entries) {
      const n = normaliseUri(entry);
      if (!n.ok) throw new Error(`Expected every ${ALLOWED_URIS_ENV} / \`allowedUris\` entry to be a file:/// or gs:// URI prefix, got \`${entry}\`: ${n.reason}`);
      if (n.uri.scheme === 'file' && n.uri.segments.length === 0) {
        throw new Error(`Expected ${ALLOWED_URIS_ENV} / \`allowedUris\` to name folders, got \`${entry}\`: the whole file system is never allowed`);
      }
      if (prefixes.includes(n.canonical)) continue;
      prefixes.push(n.canonical);
      normal.push(n.uri);
    }
    return new AllowList(prefixes, normal);
  }

  /** The list a trainer or library reads from `DT_ALLOWED_URIS` alone (empty: nothing is allowed). */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): AllowList {
    return AllowList.of(splitUriList(env[ALLOWED_URIS_ENV]));
  }

  /** Checks one URI: its normal form, then its resolved location against the resolved prefixes. */
  check(uri: unknown): UriCheck {
    const shown = typeof uri === 'string' ? `\`${uri.length > 200 ? `${escapeText(uri.slice(0, 200))}…` : escapeText(uri)}\`` : `${typeof uri}`;
    const n = normaliseUri(uri);
    if (!n.ok) return { ok: false, expected: `a normalised file:/// or gs:// URI (it has ${n.reason})`, received: shown };
    const under = `a URI under one of the worker's allowed prefixes (${this.describe()}; the worker's operator sets ${ALLOWED_URIS_ENV})`;
    const real = resolve(n.uri);
    if (!real) return { ok: false, expected: under, received: `${shown}, which passes through a dangling symlink` };
    for (const prefix of this.normal) {
      const realPrefix = resolve(prefix);
      if (realPrefix && isUnder(real, realPrefix)) return { ok: true, canonical: n.canonical };
    }
    const moved = formatUri(real) !== n.canonical;
    return { ok: false, expected: under, received: moved ? `${shown}, which resolves to \`${formatUri(real)}\`` : shown };
  }

  /** Throws UriRefusedError (non-retryable) unless `uri` is allowed; `what` names the field or use. */
  assert(what: string, uri: string): void {
    const r = this.check(uri);
    if (!r.ok) throw new UriRefusedError(String(uri), `Expected \`${what}\` to be ${r.expected}, got ${r.received}`);
  }

  describe(): string {
    if (this.prefixes.length === 0) return 'none';
    const shown = this.prefixes.slice(0, LISTED_PREFIXES).join(', ');
    return this.prefixes.length > LISTED_PREFIXES ? `${shown} and ${this.prefixes.length - LISTED_PREFIXES} more` : shown;
  }
}

/**
 * The worker's list: its checkpoint root plus `allowedUris` (default `DT_ALLOWED_URIS`). The
 * root is always on it: a worker that cannot write its own default root could run nothing.
 */
export function workerAllowList(options: { readonly checkpointRoot: string; readonly allowedUris?: readonly string[] | undefined; readonly env?: NodeJS.ProcessEnv }): AllowList {
  const extra = options.allowedUris ?? splitUriList((options.env ?? process.env)[ALLOWED_URIS_ENV]);
  const root = path.isAbsolute(options.checkpointRoot) ? pathToFileURL(options.checkpointRoot).href : options.checkpointRoot;
  return AllowList.of([root, ...extra]);
}
