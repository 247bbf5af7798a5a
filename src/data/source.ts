/**
 * Listing a sharded dataset: a glob (wildcards in the last segment), a single file, or a manifest
 * (a text file with one shard URI per line, `#` comments and blank lines ignored, names without a
 * scheme relative to the manifest's folder) on file:/// or gs:// resolves to a list of shards, in
 * name order (manifest: its order), each with what identifies its bytes:
 *   gs://     the object's generation, size and CRC32C (reads are pinned to the generation);
 *   file:///  its size; the SHA-256 of its contents is added by the index pass (data-index.ts),
 *             which reads every shard once anyway, and every later read is checked against it.
 *             (mtime is not part of it: a copy or a `touch` does not change what a run reads.)
 * The list is bounded (MAX_SHARDS, and at most LISTED_PAGES pages of a bucket listing); an empty
 * one, one too long, a missing manifest and a URI outside the worker's allow-list are the input's
 * fault: non-retryable, naming `params.uri`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Storage } from '@google-cloud/storage';
import { createGcsStorage } from '../checkpoints/gcs-client';
import { assertAllowedUri } from '../checkpoints/open-store';
import { isTransientError, withRetry } from '../checkpoints/retry';
import { MAX_SHARDS, type ShardedParams } from '../config/sharded-data';
import { NonRetryableTrainingError } from '../training/protocol';
import { listImageFolder } from './formats/image-folder';
import { globRegExp, splitGlob } from './glob';

/** One shard as listed: what identifies its bytes (see the top of this file). */
export interface ShardInfo {
  readonly uri: string;
  readonly size: number;
  /** gs:// only: the object generation reads are pinned to. */
  readonly generation?: string;
  /** gs:// only: the object's CRC32C (base64), as GCS reports it. */
  readonly crc32c?: string;
}

export interface ListOptions {
  /** The GCS client (default: createGcsStorage(), honouring STORAGE_EMULATOR_HOST). */
  readonly storage?: Storage;
  /** Refuses a URI outside the allow-list (default: this process's DT_ALLOWED_URIS). */
  readonly assertAllowed?: (field: string, uri: string) => void;
  /** @default MAX_SHARDS */
  readonly maxShards?: number;
  /** Bucket listing pages of 1000 objects read before giving up on a sparse prefix. @default 100 */
  readonly maxPages?: number;
}

/** Manifest files larger than this are refused (10 000 URIs of 1 KiB each). */
const MAX_MANIFEST_BYTES = 10 * 1024 * 1024;
const PAGE_SIZE = 1000;

export function bad(message: string): never {
  throw new NonRetryableTrainingError(message);
}

let defaultStorage: Storage | undefined;
export function gcsStorage(storage?: Storage): Storage {
  return storage ?? (defaultStorage ??= createGcsStorage());
}

/** `gs://bucket/a/b` → bucket and object name. */
export function gcsLocation(uri: string): { bucket: string; name: string } {
  const rest = uri.slice('gs://'.length);
  const slash = rest.indexOf('/');
  return { bucket: slash < 0 ? rest : rest.slice(0, slash), name: slash < 0 ? '' : rest.slice(slash + 1) };
}

export const gcsRetry = { isTransient: isTransientError, deadlineMs: 60_000 } as const;

function tooMany(uri: string, max: number): never {
  return bad(`Expected \`params.uri\` of dataset sharded to match at most ${max} shards, got more than ${max} for ${uri}: name fewer, larger shards or a narrower glob`);
}

async function listFiles(uri: string, max: number, assertAllowed: (field: string, uri: string) => void): Promise<ShardInfo[]> {
  const g = splitGlob(uri);
  const folder = fileURLToPath(`${g.folder}/`);
  const names: string[] = [];
  if (!g.wild) {
    names.push(g.pattern);
  } else {
    const re = globRegExp(g.pattern);
    let dir: fs.Dir;
    try {
      dir = await fs.promises.opendir(folder);
    } catch (err) {
      return bad(`Expected \`params.uri\` of dataset sharded to name files in an existing folder, got ${uri}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    // Read lazily and stop past the bound: a folder of a million files is never listed whole.
    for await (const entry of dir) {
      if (!re.test(entry.name)) continue;
      names.push(entry.name);
      // Leaving the loop closes the folder.
      if (names.length > max) return tooMany(uri, max);
    }
  }
  const shards: ShardInfo[] = [];
  for (const name of names.sort()) {
    const file = path.join(folder, name);
    const shardUri = pathToFileURL(file).href;
    assertAllowed('params.uri', shardUri);
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(file);
    } catch {
      if (!g.wild) return bad(`Expected \`params.uri\` of dataset sharded to name an existing file, got ${uri}: it does not exist`);
      continue; // deleted while listing
    }
    if (!stat.isFile()) continue;
    shards.push({ uri: shardUri, size: stat.size });
  }
  return shards;
}

/** What listGcsObjects lists, and how it refuses too much. */
export interface GcsListing {
  /** The user's URI, named in errors. */
  readonly uri: string;
  readonly bucket: string;
  readonly prefix: string;
  /** Whether the object `name` (its full name in the bucket) is a shard. */
  readonly keep: (name: string) => boolean;
  /** More than this many kept objects is refused by `tooMany`. */
  readonly max: number;
  readonly tooMany: () => never;
  /** More than this many pages of PAGE_SIZE objects under the prefix is refused by `tooManyPages`. */
  readonly maxPages: number;
  readonly tooManyPages: (objects: number) => never;
}

/**
 * The objects under a prefix of a bucket that `keep` accepts, as shards sorted by URI (with their
 * generation and CRC32C): listed page by page, bounded in pages and in shards, a missing bucket
 * refused naming the user's URI.
 */
export async function listGcsObjects(storage: Storage, l: GcsListing): Promise<ShardInfo[]> {
  const { uri, bucket, prefix } = l;
  const shards: ShardInfo[] = [];
  let pageToken: string | undefined;
  for (let page = 0; ; page++) {
    if (page >= l.maxPages) return l.tooManyPages(l.maxPages * PAGE_SIZE);
    const [files, next] = await withRetry(
      () => storage.bucket(bucket).getFiles({ prefix, autoPaginate: false, maxResults: PAGE_SIZE, ...(pageToken !== undefined && { pageToken }) }),
      gcsRetry,
    ).catch((err: unknown) => {
      const code = (err as { code?: unknown }).code;
      if (code === 404) return bad(`Expected \`params.uri\` of dataset sharded to name an existing bucket, got ${uri}: bucket \`${bucket}\` does not exist`);
      throw err;
    });
    for (const f of files) {
      if (!l.keep(f.name)) continue;
      const m = f.metadata;
      shards.push({ uri: `gs://${bucket}/${f.name}`, size: Number(m.size ?? 0), generation: String(m.generation), ...(m.crc32c !== undefined && { crc32c: String(m.crc32c) }) });
      if (shards.length > l.max) return l.tooMany();
    }
    pageToken = (next as { pageToken?: string } | undefined)?.pageToken;
    if (!pageToken) break;
  }
  return shards.sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
}

function listGcs(uri: string, max: number, maxPages: number, storage: Storage): Promise<ShardInfo[]> {
  const g = splitGlob(uri);
  const { bucket, name: folderName } = gcsLocation(g.folder);
  const prefix = `${folderName === '' ? '' : `${folderName}/`}${g.literalPrefix}`;
  const re = g.wild ? globRegExp(g.pattern) : undefined;
  return listGcsObjects(storage, {
    uri,
    bucket,
    prefix,
    keep: (name) => {
      const last = name.slice(prefix.length - g.literalPrefix.length);
      return !last.includes('/') && (re ? re.test(last) : last === g.pattern);
    },
    max,
    tooMany: () => tooMany(uri, max),
    maxPages,
    tooManyPages: (objects) => bad(`Expected \`params.uri\` of dataset sharded to be a glob whose prefix lists at most ${objects} objects, got ${uri}: narrow the folder or the text before the first wildcard`),
  });
}

async function readManifest(uri: string, storage: Storage): Promise<string> {
  let bytes: Buffer;
  if (uri.startsWith('gs://')) {
    const { bucket, name } = gcsLocation(uri);
    const file = storage.bucket(bucket).file(name);
    const [meta] = await withRetry(() => file.getMetadata(), gcsRetry).catch((err: unknown) =>
      (err as { code?: unknown }).code === 404 ? bad(`Expected \`params.uri\` of dataset sharded to name an existing manifest, got ${uri}: it does not exist`) : Promise.reject(err),
    );
    if (Number(meta.size) > MAX_MANIFEST_BYTES) bad(`Expected the manifest \`params.uri\` of dataset sharded to be at most ${MAX_MANIFEST_BYTES} bytes, got ${meta.size} (${uri})`);
    [bytes] = await withRetry(() => file.download({ validation: 'crc32c' }), gcsRetry);
  } else {
    const file = fileURLToPath(uri);
    const stat = await fs.promises.stat(file).catch(() => bad(`Expected \`params.uri\` of dataset sharded to name an existing manifest, got ${uri}: it does not exist`));
    if (stat.size > MAX_MANIFEST_BYTES) bad(`Expected the manifest \`params.uri\` of dataset sharded to be at most ${MAX_MANIFEST_BYTES} bytes, got ${stat.size} (${uri})`);
    bytes = await fs.promises.readFile(file);
  }
  return bytes.toString('utf8');
}

async function listManifest(uri: string, max: number, options: ListOptions, assertAllowed: (field: string, uri: string) => void): Promise<ShardInfo[]> {
  const text = await readManifest(uri, gcsStorage(options.storage));
  const folder = uri.slice(0, uri.lastIndexOf('/'));
  const entries: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const entry = /^[a-z]+:/.test(line) ? line : `${folder}/${line}`;
    if (!(entry.startsWith('file:///') || entry.startsWith('gs://')) || /[*?[]/.test(entry) || entry.split('/').some((s, k) => k > 2 && (s === '' || s === '.' || s === '..'))) {
      bad(`Expected line ${i + 1} of the manifest \`params.uri\` (${uri}) to be a file:/// or gs:// URI of one shard, or a name in the manifest's folder, got ${JSON.stringify(line.slice(0, 200))}`);
    }
    entries.push(entry);
    if (entries.length > max) tooMany(uri, max);
  }
  const shards: ShardInfo[] = [];
  for (const entry of entries) {
    assertAllowed('params.uri (a manifest entry)', entry);
    const listed = entry.startsWith('gs://') ? await listGcs(entry, 1, 1, gcsStorage(options.storage)) : await listFiles(entry, 1, assertAllowed);
    if (listed.length === 0) bad(`The manifest \`params.uri\` (${uri}) names ${entry}, which does not exist`);
    shards.push(listed[0]!);
  }
  return shards;
}

/**
 * The shards `params` names, each checked against the allow-list (see the top of this file). A data
 * window's globs (`params.uris`, one per daily partition, oldest first) are listed one after the
 * other, each in name order; every one must match a shard (a missing day fails naming its glob), and
 * together at most `maxShards`.
 */
export async function listShards(params: Pick<ShardedParams, 'uri' | 'manifest' | 'uris' | 'window'> & Partial<Pick<ShardedParams, 'format'>>, options: ListOptions = {}): Promise<ShardInfo[]> {
  const uris = params.uris ?? (params.window ? undefined : [params.uri]);
  if (uris === undefined) {
    return bad(`Expected \`params.windowEnd\` of dataset sharded to be set (the workflow resolves the window of ${params.uri} when it starts), got none: start the run through trainModel or retrainModel, or pin \`windowEnd\``);
  }
  const max = options.maxShards ?? MAX_SHARDS;
  const all: ShardInfo[] = [];
  for (const uri of uris) {
    all.push(...(await listOneUri(uri, params.manifest, { ...options, maxShards: max - all.length }, params.format === 'imagefolder')));
  }
  const seen = new Set<string>();
  const dup = all.find((s) => seen.has(s.uri) || !seen.add(s.uri));
  if (dup) bad(`Expected the globs of \`params.uri\` (${params.uri}) to name each shard once, got ${dup.uri} twice`);
  return all;
}

async function listOneUri(uri: string, manifest: boolean, options: ListOptions, imageFolder = false): Promise<ShardInfo[]> {
  const max = options.maxShards ?? MAX_SHARDS;
  const assertAllowed = options.assertAllowed ?? assertAllowedUri;
  const params = { uri, manifest };
  assertAllowed('params.uri', uri);
  let shards: ShardInfo[];
  try {
    if (params.manifest) shards = await listManifest(uri, max, options, assertAllowed);
    else if (imageFolder) shards = await listImageFolder(uri, max, options.maxPages ?? 100, () => gcsStorage(options.storage), assertAllowed);
    else if (uri.startsWith('gs://')) shards = await listGcs(uri, max, options.maxPages ?? 100, gcsStorage(options.storage));
    else if (uri.startsWith('file:///')) shards = await listFiles(uri, max, assertAllowed);
    else return bad(`Expected \`params.uri\` of dataset sharded to be a file:/// or gs:// URI, got ${JSON.stringify(uri.slice(0, 200))}`);
  } catch (err) {
    if (err instanceof Error && /unclosed `\[`/.test(err.message)) bad(`Expected \`params.uri\` of dataset sharded to be a valid glob, got ${uri}: ${err.message}`);
    throw err;
  }
  if (shards.length === 0) bad(`Expected \`params.uri\` of dataset sharded to match at least one shard, got none for ${uri}`);
  const seen = new Set<string>();
  const dup = shards.find((s) => seen.has(s.uri) || !seen.add(s.uri));
  if (dup) bad(`Expected the manifest \`params.uri\` (${uri}) to name each shard once, got ${dup.uri} twice`);
  return shards;
}
