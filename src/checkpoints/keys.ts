/** Object keys that both stores accept: relative, portable, never escaping the run folder. */

/** Prefix of the store's own temp and lock files; reserved in keys. */
export const INTERNAL_PREFIX = '.dt-';

/** Raised for a key that is not a safe relative object key. */
export class InvalidKeyError extends Error {
  override readonly name = 'InvalidKeyError';
  constructor(readonly key: string, reason: string) {
    super(`Invalid checkpoint key ${JSON.stringify(key)}: ${reason}`);
  }
}

function checkSegments(key: string, segments: readonly string[]): void {
  for (const segment of segments) {
    if (segment === '') throw new InvalidKeyError(key, 'empty path segment');
    if (segment === '.' || segment === '..') throw new InvalidKeyError(key, `"${segment}" segment`);
    if (segment.startsWith(INTERNAL_PREFIX)) throw new InvalidKeyError(key, `segments starting with "${INTERNAL_PREFIX}" are reserved`);
  }
}

function checkCharacters(key: string): void {
  if (key.includes('\0')) throw new InvalidKeyError(key, 'contains NUL');
  if (key.includes('\\')) throw new InvalidKeyError(key, 'contains a backslash');
  if (key.startsWith('/')) throw new InvalidKeyError(key, 'absolute keys are not allowed');
  if (/^[A-Za-z]:/.test(key)) throw new InvalidKeyError(key, 'drive-letter keys are not allowed');
}

/**
 * Validates an object key: relative, '/'-separated, no empty / '.' / '..' / reserved segments,
 * no backslashes or NUL. Shared by both stores so keys stay portable between them.
 */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError(String(key), 'empty key');
  checkCharacters(key);
  checkSegments(key, key.split('/'));
  return key;
}

/**
 * Validates a list/delete prefix. It may be empty, may end with '/', and its last segment may be
 * partial; the complete segments before it follow the key rules.
 */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw new InvalidKeyError(String(prefix), 'prefix must be a string');
  if (prefix === '') return prefix;
  checkCharacters(prefix);
  const segments = prefix.split('/');
  checkSegments(prefix, segments.slice(0, -1));
  return prefix;
}

