/** The one content digest of the project: SHA-256 as lowercase hex (checkpoint manifests, file-store versions, write-once checks). */
import { createHash } from 'node:crypto';

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
