/**
 * `gs://bucket/optional/prefix` checkpoint store on @google-cloud/storage.
 *
 * - Version = the object's generation; putIfVersion sends `ifGenerationMatch`
 *   (0 = must not exist) and maps HTTP 412 to PreconditionFailedError.
 * - Uploads are single-request (`resumable: false`): our objects are small, and a simple
 *   upload is all-or-nothing, so a failed attempt can be retried as a whole. The body is
 *   checked end to end: its CRC32C is declared to the server and the client verifies the one the
 *   server computed (both with @node-rs/crc32, gcs-client.ts). A batch of create-only objects
 *   (createObjects: a checkpoint's) is uploaded in parallel, at most UPLOADS_IN_FLIGHT at a time.
 * - The library's own auto-retry is switched off (gcs-client.ts); every
 *   call goes through `withRetry`, which retries transient failures (408/429/5xx, connection
 *   errors) with exponential backoff and jitter up to a total deadline (default 60 s).
 * - Permanent failures (401/403, missing bucket) throw PermanentStoreError naming the URI.
 */
import type { File, Storage } from '@google-cloud/storage';

import { crc32cBase64, createGcsStorage, type GcsStorageOptions } from './gcs-client';
import { validateKey, validatePrefix } from './fs-store';
import { httpStatusOf, isTransientError, withRetry, type RetryOptions } from './retry';
import { byteLength, joined, PermanentStoreError, PreconditionFailedError, type CheckpointStore, type CreateObjectsOptions, type NewObject, type VersionedObject } from './store';
import { readWholeStream } from './stream-read';

export interface GcsStoreOptions extends GcsStorageOptions {
  /**
   * A ready client. If given, apiEndpoint/projectId/requestTimeoutMs/storageOptions are ignored;
   * build it with `createGcsStorage` (or set `retryOptions.autoRetry: false`) so the library
   * does not retry underneath our retry loop.
   */
  storage?: Storage;
  /** Overrides for the retry loop (isTransient defaults to `isTransientError`). */
  retry?: Partial<RetryOptions>;
}

/** Splits `gs://bucket/optional/prefix` into bucket and prefix (no leading/trailing '/'). */
export function parseGcsUri(uri: string): { bucket: string; prefix: string } {
  const m = /^gs:\/\/([^/]+)(?:\/(.*))?$/.exec(uri);
  const bucket = m?.[1];
  if (!m || !bucket) throw new Error(`Invalid GCS URI ${uri}: expected gs://bucket[/prefix]`);
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket)) {
    throw new Error(`Invalid GCS URI ${uri}: "${bucket}" is not a valid bucket name`);
  }
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix !== '') validateKey(prefix);
  return { bucket, prefix };
}

const PERMANENT_STATUSES = new Set([400, 401, 403, 404, 405, 411]);

/** Uploads of one createObjects batch in flight at once: a checkpoint's objects go up together. */
const UPLOADS_IN_FLIGHT = 4;

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class GcsCheckpointStore implements CheckpointStore {
  readonly uri: string;
  readonly bucketName: string;
  readonly prefix: string;
  readonly storage: Storage;
  private readonly retry: RetryOptions;
  /** A download that receives nothing for this long is aborted as a transient failure. */
  private readonly stallTimeoutMs: number;
  /** Set once we know the bucket exists, so a 404 on read means "no such object". */
  private bucketKnownToExist = false;

  constructor(uri: string, options: GcsStoreOptions = {}) {
    const { bucket, prefix } = parseGcsUri(uri);
    this.bucketName = bucket;
    this.prefix = prefix;
    this.uri = `gs://${bucket}${prefix ? `/${prefix}` : ''}`;
    this.storage = options.storage ?? createGcsStorage(options);
    this.retry = { isTransient: isTransientError, ...options.retry };
    this.stallTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  uriOf(key: string): string {
    return `${this.uri}/${key}`;
  }

  private objectName(key: string): string {
    validateKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private file(key: string): File {
    return this.storage.bucket(this.bucketName).file(this.objectName(key));
  }

  async put(key: string, data: Buffer): Promise<void> {
    const file = this.file(key);
    await this.call('write', key, () => this.upload(file, data, undefined));
  }

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.getVersioned(key))?.data;
  }

  async getVersioned(key: string): Promise<VersionedObject | undefined> {
    const file = this.file(key);
    const result = await this.call('read', key, async () => {
      try {
        return await this.download(file);
      } catch (err) {
        if (httpStatusOf(err) === 404) return undefined;
        throw err;
      }
    });
    if (result === undefined) {
      await this.assertBucketExists(key);
      return undefined;
    }
    this.bucketKnownToExist = true;
    if (result.generation !== undefined) return { data: result.data, version: result.generation };
    // Server sent no x-goog-generation header: fall back to metadata + generation-pinned read.
    return this.getVersionedViaMetadata(key);
  }

  async putIfVersion(key: string, data: Buffer | readonly Buffer[], expectedVersion: string | undefined): Promise<void> {
    if (expectedVersion !== undefined && !/^[1-9]\d*$/.test(expectedVersion)) {
      // Not a generation (e.g. a content hash from another store): it cannot match.
      throw new PreconditionFailedError(this.uriOf(key));
    }
    const file = this.file(key);
    const ifGenerationMatch = expectedVersion ?? '0';
    await this.call('conditional write', key, async (attempt) => {
      try {
        await this.upload(file, data, ifGenerationMatch);
      } catch (err) {
        // A retried attempt can lose to our own earlier attempt that reached the server before
        // the connection broke: if the object now holds exactly our bytes, the write happened.
        if (httpStatusOf(err) === 412 && attempt > 0 && (await this.holdsExactly(file, data))) return;
        throw err;
      }
    });
  }

  async createObjects(objects: readonly NewObject[], options: CreateObjectsOptions = {}): Promise<boolean[]> {
    for (const o of objects) this.objectName(o.key); // every key checked before anything is uploaded
    const created: boolean[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < objects.length; i = next++) {
        const o = objects[i]!;
        try {
          await this.putIfVersion(o.key, o.data, undefined);
          created[i] = true;
        } catch (err) {
          if (!(err instanceof PreconditionFailedError)) throw err;
          created[i] = false;
        }
        await options.afterEach?.(i, created[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(UPLOADS_IN_FLIGHT, objects.length) }, worker));
    return created;
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    const base = this.prefix ? `${this.prefix}/` : '';
    const keys: string[] = [];
    let pageToken: string | undefined;
    do {
      const token = pageToken;
      const [files, next] = await this.call('list', prefix, () =>
        this.storage.bucket(this.bucketName).getFiles({
          prefix: base + prefix,
          autoPaginate: false,
          maxResults: 1000,
          ...(token !== undefined ? { pageToken: token } : {}),
        }),
      );
      for (const f of files) {
        if (f.name.startsWith(base) && !f.name.endsWith('/')) keys.push(f.name.slice(base.length));
      }
      pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken;
    } while (pageToken);
    this.bucketKnownToExist = true;
    return keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async deletePrefix(prefix: string): Promise<void> {
    const keys = await this.list(prefix);
    const queue = [...keys];
    const worker = async (): Promise<void> => {
      for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
        const file = this.file(key);
        await this.call('delete', key, () => file.delete({ ignoreNotFound: true }));
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, queue.length) }, worker));
  }

  // --- internals -------------------------------------------------------------------------

  private async upload(file: File, data: Buffer | readonly Buffer[], ifGenerationMatch: string | undefined): Promise<void> {
    await file.save(joined(data), {
      resumable: false,
      validation: 'crc32c',
      contentType: 'application/octet-stream',
      metadata: { crc32c: crc32cBase64(Buffer.isBuffer(data) ? [data] : data) },
      ...(ifGenerationMatch !== undefined ? { preconditionOpts: { ifGenerationMatch } } : {}),
    });
    this.bucketKnownToExist = true;
  }

  /**
   * Downloads the object's bytes and the generation they belong to (from x-goog-generation),
   * aborting a body that stalls for `stallTimeoutMs` (stream-read.ts) so the retry loop tries again.
   */
  private async download(file: File): Promise<{ data: Buffer; generation: string | undefined }> {
    let generation: string | undefined;
    const data = await readWholeStream(file.createReadStream({ validation: 'crc32c' }), `GCS download of ${file.name}`, this.stallTimeoutMs, (res) => {
      const g = res.headers?.['x-goog-generation'];
      generation = Array.isArray(g) ? g[0] : g;
    });
    return { data, generation };
  }

  private async getVersionedViaMetadata(key: string): Promise<VersionedObject | undefined> {
    for (let i = 0; i < 5; i++) {
      const found = await this.call('read', key, async () => {
        try {
          const [meta] = await this.file(key).getMetadata();
          const generation = String(meta.generation);
          const pinned = this.storage.bucket(this.bucketName).file(this.objectName(key), { generation: Number(generation) });
          const [data] = await pinned.download();
          return { data, version: generation };
        } catch (err) {
          if (httpStatusOf(err) === 404) return null; // deleted, or replaced between the two calls
          throw err;
        }
      });
      if (found) return found;
      const [exists] = await this.call('read', key, () => this.file(key).exists());
      if (!exists) return undefined;
    }
    throw new Error(`Object ${this.uriOf(key)} kept changing while being read`);
  }

  private async holdsExactly(file: File, data: Buffer | readonly Buffer[]): Promise<boolean> {
    try {
      const [meta] = await file.getMetadata();
      return meta.crc32c === crc32cBase64(Buffer.isBuffer(data) ? [data] : data) && Number(meta.size) === byteLength(data);
    } catch {
      return false;
    }
  }

  private async assertBucketExists(key: string): Promise<void> {
    if (this.bucketKnownToExist) return;
    const [exists] = await this.call('read', key, () => this.storage.bucket(this.bucketName).exists());
    if (!exists) throw this.bucketMissing(key);
    this.bucketKnownToExist = true;
  }

  private bucketMissing(key: string, cause?: unknown): PermanentStoreError {
    return new PermanentStoreError(this.uriOf(key), `GCS bucket "${this.bucketName}" does not exist`, { cause });
  }

  /** Runs one store operation under the retry loop and maps its errors. */
  private async call<T>(op: string, key: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    try {
      return await withRetry(fn, this.retry);
    } catch (err) {
      if (err instanceof PreconditionFailedError || err instanceof PermanentStoreError) throw err;
      const status = httpStatusOf(err);
      if (status === 412) throw new PreconditionFailedError(this.uriOf(key));
      if (status === 404) throw this.bucketMissing(key, err);
      if (status === 401 || status === 403) {
        throw new PermanentStoreError(this.uriOf(key), `GCS ${op} denied (HTTP ${status}): ${describe(err)}`, { cause: err });
      }
      if (status !== undefined && PERMANENT_STATUSES.has(status)) {
        throw new PermanentStoreError(this.uriOf(key), `GCS ${op} rejected (HTTP ${status}): ${describe(err)}`, { cause: err });
      }
      if (this.retry.isTransient(err)) {
        throw new Error(`GCS ${op} of ${this.uriOf(key)} still failing when retries ran out: ${describe(err)}`, { cause: err });
      }
      throw err;
    }
  }
}
