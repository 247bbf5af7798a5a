/**
 * Getting at a SavedModel: the tfjs-node module that runs it (the tensorflow backend only), and a
 * local directory holding it: file:// as is; gs:// mirrored into a folder private to the worker.
 *
 * The mirror (a SavedModel is code, and what TensorFlow loads must be what the store holds):
 * - lives under the worker's cache, `DT_CACHE_DIR`, else `~/.cache/durable-train` (not the shared
 *   temp directory), in `savedmodels/`, a folder of mode 0700 owned by the worker's user (made so,
 *   or refused if another user owns it);
 * - is keyed by the URI and the generations of its objects: a SavedModel replaced in the bucket is
 *   mirrored again, into another folder (the older mirrors of the same URI are then removed);
 * - is verified every time it is used, against the checksums the bucket lists now (md5, else
 *   crc32c) and the objects' sizes, and holds nothing else: a file changed, missing or added is a
 *   tampered mirror, removed and downloaded again. Each download is checked against the same
 *   listed checksums and generation before it is written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { CRC32C } from '@google-cloud/storage';
import type * as TfNodeModule from '@tensorflow/tfjs-node';
import { nativeModule } from '../backend';
import { assertAllowedUri } from '../../checkpoints/open-store';
import { GcsCheckpointStore } from '../../checkpoints/gcs-store';
import { validateKey } from '../../checkpoints/keys';
import { isTransientError, withRetry } from '../../checkpoints/retry';
import type { RouteDeps } from '../route';
import { fail } from './metadata';

export type TfNode = typeof TfNodeModule;
export type Handle = Awaited<ReturnType<TfNode['node']['loadSavedModel']>>;
export type SignatureDefs = Awaited<ReturnType<TfNode['node']['getMetaGraphsFromSavedModel']>>[number]['signatureDefs'];

/** The tfjs-node module of the active backend (tfjs-node or tfjs-node-gpu), or a clear error. */
export function tfNode(deps: Pick<RouteDeps, 'backend'>): TfNode {
  if (deps.backend.name !== 'tensorflow') {
    fail(
      `Models of kind \`savedmodel\` run through TensorFlow's SavedModel runner, which needs the tensorflow backend ` +
        `(@tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu); this worker runs on \`${deps.backend.name}\``,
    );
  }
  return nativeModule(deps.backend.package) as TfNode;
}

export const CACHE_DIR_ENV = 'DT_CACHE_DIR';
/** At most this many objects in a mirrored SavedModel. */
export const MAX_MIRROR_OBJECTS = 10_000;
const MANIFEST = '.mirror.json';

/** The worker's cache: DT_CACHE_DIR, else ~/.cache/durable-train. */
export function workerCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env[CACHE_DIR_ENV];
  if (dir !== undefined && dir !== '') {
    if (!path.isAbsolute(dir)) throw new Error(`Expected \`${CACHE_DIR_ENV}\` to be an absolute path, got ${JSON.stringify(dir)}`);
    return dir;
  }
  return path.join(os.homedir(), '.cache', 'durable-train');
}

/** <cache>/savedmodels, mode 0700 and owned by this user, made so if needed. */
export function privateMirrorRoot(env: NodeJS.ProcessEnv = process.env): string {
  const root = path.join(workerCacheDir(env), 'savedmodels');
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(root);
  if (!st.isDirectory()) throw new Error(`The SavedModel mirror folder ${root} is not a directory (a symlink?); remove it or set ${CACHE_DIR_ENV}`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new Error(`The SavedModel mirror folder ${root} belongs to user ${st.uid}, not to this worker's user (${uid}); remove it or set ${CACHE_DIR_ENV}`);
  }
  if ((st.mode & 0o077) !== 0) fs.chmodSync(root, 0o700);
  return root;
}

/** One object of the SavedModel as the bucket lists it now. */
interface ListedObject {
  readonly key: string;
  readonly generation: string;
  readonly size: number;
  readonly md5Hash?: string;
  readonly crc32c?: string;
}

/** Hashes chunks as the listing does: md5 when it lists one (composite objects have none), else crc32c. */
function listedDigest(o: ListedObject): { update(chunk: Buffer): void; matches(): boolean } {
  if (o.md5Hash) {
    const h = createHash('md5');
    return { update: (chunk) => h.update(chunk), matches: () => h.digest('base64') === o.md5Hash };
  }
  const c = new CRC32C();
  return { update: (chunk) => c.update(chunk), matches: () => c.toString() === o.crc32c };
}

/** Whether downloaded bytes are the listed object's. */
function matchesListed(data: Buffer, o: ListedObject): boolean {
  if (data.length !== o.size) return false;
  const d = listedDigest(o);
  d.update(data);
  return d.matches();
}

/** Whether a mirrored file is the listed object's, read in 1 MiB chunks (variables can be large). */
function fileMatchesListed(file: string, o: ListedObject): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    if (fs.fstatSync(fd).size !== o.size) return false;
    const d = listedDigest(o);
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let n = fs.readSync(fd, chunk); n > 0; n = fs.readSync(fd, chunk)) d.update(chunk.subarray(0, n));
    return d.matches();
  } finally {
    fs.closeSync(fd);
  }
}

async function listObjects(store: GcsCheckpointStore): Promise<ListedObject[]> {
  const keys = await store.list(''); // the store's own error mapping: a missing bucket, no permission
  if (!keys.includes('saved_model.pb')) fail(`No SavedModel at ${store.uri}: there is no saved_model.pb`);
  if (keys.length > MAX_MIRROR_OBJECTS) fail(`The SavedModel at ${store.uri} has ${keys.length} objects; a SavedModel is mirrored with at most ${MAX_MIRROR_OBJECTS}`);
  const base = store.prefix ? `${store.prefix}/` : '';
  const listed: ListedObject[] = [];
  let pageToken: string | undefined;
  do {
    const token = pageToken;
    const [files, next] = await withRetry(
      () => store.storage.bucket(store.bucketName).getFiles({ prefix: base, autoPaginate: false, maxResults: 1000, ...(token !== undefined ? { pageToken: token } : {}) }),
      { isTransient: isTransientError },
    );
    for (const f of files) {
      if (!f.name.startsWith(base) || f.name.endsWith('/')) continue;
      const m = f.metadata;
      listed.push({
        key: f.name.slice(base.length),
        generation: String(m.generation ?? ''),
        size: Number(m.size ?? NaN),
        ...(typeof m.md5Hash === 'string' ? { md5Hash: m.md5Hash } : {}),
        ...(typeof m.crc32c === 'string' ? { crc32c: m.crc32c } : {}),
      });
      if (listed.length > MAX_MIRROR_OBJECTS) fail(`The SavedModel at ${store.uri} has more than ${MAX_MIRROR_OBJECTS} objects`);
    }
    pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken;
  } while (pageToken);
  listed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (listed.map((o) => o.key).join('\n') !== keys.join('\n')) {
    throw new Error(`The SavedModel at ${store.uri} changed while it was being listed; try again`);
  }
  for (const o of listed) {
    validateKey(o.key);
    if (o.key.split('/').some((s) => s === '.' || s === '..' || s === MANIFEST)) fail(`The SavedModel at ${store.uri} has an object named ${JSON.stringify(o.key)}, which cannot be mirrored`);
    if (!o.generation || !Number.isSafeInteger(o.size) || (!o.md5Hash && !o.crc32c)) {
      throw new Error(`GCS listed ${store.uriOf(o.key)} without its generation, size and checksum; cannot mirror it safely`);
    }
  }
  return listed;
}

/** Every regular file under `dir` (relative, '/'-separated); a symlink or other special file makes it undefined. */
function filesUnder(dir: string): string[] | undefined {
  const out: string[] = [];
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) stack.push(r);
      else if (e.isFile()) out.push(r);
      else return undefined;
    }
  }
  return out.sort();
}

/** Whether `dir` holds exactly the listed objects, byte for byte (by the listed checksums). */
function mirrorIsIntact(dir: string, listed: readonly ListedObject[]): { ok: true } | { ok: false; why: string } {
  if (!fs.existsSync(path.join(dir, MANIFEST))) return { ok: false, why: 'it was never completed' };
  const files = filesUnder(dir);
  if (!files) return { ok: false, why: 'it holds a link or special file' };
  const want = [...listed.map((o) => o.key), MANIFEST].sort();
  if (files.join('\n') !== want.join('\n')) return { ok: false, why: 'files were added or removed' };
  for (const o of listed) {
    if (!fileMatchesListed(path.join(dir, o.key), o)) return { ok: false, why: `${o.key} does not match its checksum` };
  }
  return { ok: true };
}

const TMP_PREFIX = '.tmp-';
const ABANDONED_AFTER_MS = 60 * 60 * 1000;

/** Half-written mirrors of killed trainers (an hour old: no live download takes that long between writes). */
function removeAbandonedDownloads(root: string): void {
  for (const name of fs.readdirSync(root)) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    const at = path.join(root, name);
    try {
      if (Date.now() - fs.lstatSync(at).mtimeMs > ABANDONED_AFTER_MS) fs.rmSync(at, { recursive: true, force: true });
    } catch {
      // removed by another trainer meanwhile
    }
  }
}

/**
 * A local directory holding the SavedModel at `uri`: file:// read in place, gs:// mirrored (see the
 * top of this file) and verified on every use.
 */
export async function localSavedModelDir(uri: string, openStore: RouteDeps['openStore'], log: (message: string) => void = () => undefined): Promise<string> {
  if (uri.startsWith('file://')) {
    assertAllowedUri('model.uri', uri); // read in place, not through the (guarded) store
    return fileURLToPath(uri).replace(/\/+$/, '');
  }
  const store = openStore(uri);
  if (!(store instanceof GcsCheckpointStore)) fail(`A SavedModel is read from file:// or gs://, got ${uri}`);
  const listed = await listObjects(store);
  const root = privateMirrorRoot();
  const uriKey = createHash('sha256').update(store.uri).digest('hex').slice(0, 16);
  const versionKey = createHash('sha256').update(JSON.stringify(listed.map((o) => [o.key, o.generation]))).digest('hex').slice(0, 16);
  const dir = path.join(root, `${uriKey}-${versionKey}`);
  if (fs.existsSync(dir)) {
    const intact = mirrorIsIntact(dir, listed);
    if (intact.ok) return dir;
    log(`[durable-train] the local mirror of ${store.uri} (${dir}) is not what the bucket holds (${intact.why}); downloading it again`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  removeAbandonedDownloads(root);
  const tmp = path.join(root, `${TMP_PREFIX}${uriKey}-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(tmp, { mode: 0o700 });
  try {
    for (const o of listed) {
      const got = await store.getVersioned(o.key);
      if (!got || got.version !== o.generation || !matchesListed(got.data, o)) {
        throw new Error(`${store.uriOf(o.key)} changed while the SavedModel was being mirrored (or arrived damaged); try again`);
      }
      const file = path.join(tmp, o.key);
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(file, got.data, { mode: 0o600, flag: 'wx' });
    }
    const manifest = { uri: store.uri, mirroredAt: new Date().toISOString(), objects: listed };
    fs.writeFileSync(path.join(tmp, MANIFEST), JSON.stringify(manifest, null, 1), { mode: 0o600, flag: 'wx' });
    try {
      fs.renameSync(tmp, dir);
    } catch (err) {
      // Another trainer mirrored the same generations first: use theirs if it is intact.
      if (!fs.existsSync(dir) || !mirrorIsIntact(dir, listed).ok) throw err;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  // Mirrors of older generations of the same URI are not used again.
  for (const name of fs.readdirSync(root)) {
    if (name.startsWith(`${uriKey}-`) && name !== path.basename(dir)) fs.rmSync(path.join(root, name), { recursive: true, force: true });
  }
  return dir;
}
