/**
 * Shard globs: wildcards in the last path segment only (`gs://bucket/train/part-*.jsonl.gz`), so a
 * listing is one prefix (the folder plus the text before the first wildcard) and stays bounded.
 * `*` any run of characters but `/`, `?` one character but `/` (URI syntax refuses `?` in an input
 * today: it reads as a query), `[abc]` / `[a-z]` / `[!a]` a class.
 * Hand-written (about 30 lines) rather than a dependency: minimatch and picomatch are only in the
 * tree as dev tools' dependencies, and one segment needs none of their features (`**`, braces, extglobs).
 */

export const WILDCARD = /[*?[]/;

export interface ShardGlob {
  /** The folder URI, without a trailing slash. */
  readonly folder: string;
  /** The last segment: a plain name or a pattern. */
  readonly pattern: string;
  /** True when `pattern` has wildcards. */
  readonly wild: boolean;
  /** Object-name prefix every match starts with (the pattern's text before its first wildcard). */
  readonly literalPrefix: string;
}

export function splitGlob(uri: string): ShardGlob {
  const slash = uri.lastIndexOf('/');
  const folder = uri.slice(0, slash);
  const pattern = uri.slice(slash + 1);
  const first = pattern.search(WILDCARD);
  return { folder, pattern, wild: first >= 0, literalPrefix: first >= 0 ? pattern.slice(0, first) : pattern };
}

/** A RegExp matching whole names against one segment's pattern; throws on an unclosed `[`. */
export function globRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*') out += '[^/]*';
    else if (ch === '?') out += '[^/]';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new Error(`an unclosed \`[\` at character ${i + 1} of \`${pattern}\``);
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      out += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, (c) => `\\${c}`)}]`;
      i = end;
    } else out += ch.replace(/[.*+?^${}()|[\]\\/]/g, (c) => `\\${c}`);
  }
  return new RegExp(`^${out}$`, 'u');
}
