/**
 * FNV-1a, 32 bits: a stable string hash for workflow and config code, which may not import
 * node:crypto. Used for deterministic seeds and for tags that keep cut ids distinct; not for security.
 */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** fnv1a as 8 hex digits: fits in a path segment. */
export function fnv1aHex(text: string): string {
  return fnv1a(text).toString(16).padStart(8, '0');
}
