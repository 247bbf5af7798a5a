/**
 * `file:///abs/path` checkpoint store: objects are plain files under a root directory.
 *
 * - put: temp file in the same directory, fsync, rename (readers never see a torn object).
 * - create-only (createObjects, putIfVersion with no expected version): temp file, fsync,
 *   `link(temp, final)`, which fails with EEXIST when the name is taken: atomic, and no lock. A
 *   batch stages all its temp files at once (their fsyncs overlap), links them in order and
 *   fsyncs each folder once.
 * - putIfVersion with an expected version: version = sha256 hex of the content; the compare-and-swap
 *   runs under an exclusive lock file (`open(..., 'wx')`) so two processes cannot both win.
 * - Internal files (temp files, lock files) start with `.dt-` and are never listed; keys with a
 *   segment starting with `.dt-` are rejected so they cannot collide.
 * - Paths are taken under the root's real path, resolved once when the store is opened (the path
 *   the allow-list checked a moment before). Every write, lock and delete checks at each open that
 *   its folder is still that very path, with no symlink below it (fs-atomic.ts): a folder swapped
 *   for a symlink after the check fails the write (WriteRefusedError) instead of leading it
 *   elsewhere. Reads follow symlinks as the allow-list resolved them.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { PreconditionFailedError, type CheckpointStore, type CreateObjectsOptions, type NewObject, type VersionedObject } from './store';
import { sha256 } from './digest';
import { CREATE_NOFOLLOW, atomicWrite, ensureRealDir, fsyncDir, linkIfAbsent, stageFile, WriteRefusedError } from './fs-atomic';
import { failIfDiskFull, killAt } from './fault-hooks';
import { lockHolderIsDead, lockToken, takeBreakerLock } from './fs-lock';

import { INTERNAL_PREFIX, InvalidKeyError, validateKey, validatePrefix } from './keys';

export { INTERNAL_PREFIX, InvalidKeyError, validateKey, validatePrefix, WriteRefusedError };

export interface FileStoreOptions {
  /** How long putIfVersion waits for a held lock before giving up. Default 10 000 ms. */
  lockWaitMs?: number;
  /** A lock file older than this is considered abandoned and broken. Default 30 000 ms. */
  staleLockMs?: number;
  /**
   * Longest one store call may take (a hung NFS mount, a FIFO where an object should be) before
   * it fails with StoreDeadlineError, a fault the caller retries. Default `DT_STORE_CALL_SECONDS`
   * seconds, else 120 s.
   */
  callDeadlineMs?: number;
}

/** A file:// store call outlived its deadline (the file system did not answer). Retryable. */
export class StoreDeadlineError extends Error {
  override readonly name = 'StoreDeadlineError';
}

function defaultDeadlineMs(): number {
  const raw = process.env.DT_STORE_CALL_SECONDS;
  if (raw === undefined || raw === '') return 120_000;
  const seconds = Number(raw);
  if (!(seconds > 0)) throw new Error(`Expected \`DT_STORE_CALL_SECONDS\` to be a number of seconds above 0, got ${JSON.stringify(raw)}`);
  return seconds * 1000;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string'
    ? (err as { code: string }).code
    : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves `file:///abs/path` (or a plain absolute path) to the root directory. */
export function fileUriToRoot(uri: string): string {
  if (uri.startsWith('file:')) {
    let p: string;
    try {
      p = fileURLToPath(uri);
    } catch (err) {
      throw new Error(`Invalid file store URI ${uri}: ${(err as Error).message}`, { cause: err });
    }
    return path.resolve(p);
  }
  if (!path.isAbsolute(uri)) throw new Error(`File store root must be a file:// URI or an absolute path, got ${uri}`);
  return path.resolve(uri);
}

/**
 * The real path of `root`: the realpath of its longest existing prefix, plus the folders below it
 * that do not exist yet (as the allow-list resolves a URI).
 */
function realRootOf(root: string): string {
  const missing: string[] = [];
  for (let p = root; ; p = path.dirname(p)) {
    try {
      return path.join(realpathSync.native(p), ...missing.reverse());
    } catch {
      if (path.dirname(p) === p) return root;
      missing.push(path.basename(p));
    }
  }
}

export class FileCheckpointStore implements CheckpointStore {
  readonly uri: string;
  /** Absolute root directory, without a trailing separator. */
  readonly root: string;
  /** `root` with symlinks resolved when the store was opened: every path is taken under it. */
  readonly realRoot: string;
  private readonly lockWaitMs: number;
  private readonly staleLockMs: number;
  private readonly callDeadlineMs: number;

  constructor(uriOrPath: string, options: FileStoreOptions = {}) {
    const root = fileUriToRoot(uriOrPath);
    this.root = root.length > 1 ? root.replace(/[\\/]+$/, '') : root;
    this.uri = pathToFileURL(this.root).href.replace(/\/+$/, '');
    this.realRoot = realRootOf(this.root);
    this.lockWaitMs = options.lockWaitMs ?? 10_000;
    this.staleLockMs = options.staleLockMs ?? 30_000;
    this.callDeadlineMs = options.callDeadlineMs ?? defaultDeadlineMs();
  }

  /**
   * `work`, or StoreDeadlineError once the deadline passes. The file system call itself cannot be
   * interrupted; it finishes (or not) in the background, and its writes still go through temp
   * files and the lock, so a late one never tears an object.
   */
  private deadline<T>(op: string, key: string, work: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new StoreDeadlineError(`${op} ${this.uriOf(key)} did not finish within ${this.callDeadlineMs / 1000} s (DT_STORE_CALL_SECONDS)`)),
        this.callDeadlineMs,
      );
    });
    return Promise.race([work(), late]).finally(() => clearTimeout(timer));
  }

  uriOf(key: string): string {
    return `${this.uri}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  /** Absolute path of a validated key under the real root; double-checks that it stays there. */
  private pathOf(key: string): string {
    validateKey(key);
    const full = path.resolve(this.realRoot, ...key.split('/'));
    const rel = path.relative(this.realRoot, full);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) throw new InvalidKeyError(key, 'escapes the store root');
    return full;
  }

  async put(key: string, data: Buffer): Promise<void> {
    const file = this.pathOf(key);
    await this.deadline('put', key, () => atomicWrite(file, data, key, this.uriOf(key)));
    await killAt('after-put', key);
  }

  async get(key: string): Promise<Buffer | undefined> {
    const file = this.pathOf(key);
    return this.deadline('get', key, () => this.readIfExists(file));
  }

  async getVersioned(key: string): Promise<VersionedObject | undefined> {
    const file = this.pathOf(key);
    const data = await this.deadline('get', key, () => this.readIfExists(file));
    return data === undefined ? undefined : { data, version: sha256(data) };
  }

  async putIfVersion(key: string, data: Buffer, expectedVersion: string | undefined): Promise<void> {
    if (expectedVersion === undefined) {
      const [created] = await this.createObjects([{ key, data }]);
      if (!created) throw new PreconditionFailedError(this.uriOf(key));
      return;
    }
    const file = this.pathOf(key);
    await this.deadline('putIfVersion', key, () => this.swap(key, file, data, expectedVersion));
  }

  async createObjects(objects: readonly NewObject[], options: CreateObjectsOptions = {}): Promise<boolean[]> {
    const files = objects.map((o) => this.pathOf(o.key));
    const alsoSync = (options.syncWith ?? []).map((key) => this.pathOf(key));
    if (objects.length === 0 && alsoSync.length === 0) return [];
    return this.deadline('create', objects[0]?.key ?? '', () => this.createNow(objects, files, alsoSync, options));
  }

  private async createNow(objects: readonly NewObject[], files: readonly string[], alsoSync: readonly string[], options: CreateObjectsOptions): Promise<boolean[]> {
    // Each folder checked (and made) once per batch, before the temp files and again before any name.
    const folders = new Map<string, string>();
    files.forEach((file, i) => folders.has(path.dirname(file)) || folders.set(path.dirname(file), objects[i]!.key));
    const checkFolders = async (): Promise<void> => {
      for (const [dir, key] of folders) await ensureRealDir(dir, this.uriOf(key));
    };
    await checkFolders();
    const staged = await Promise.allSettled(objects.map((o, i) => stageFile(files[i]!, o.data, o.key)));
    const temps = staged.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const created: boolean[] = [];
    try {
      const failed = staged.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      await checkFolders();
      for (const [i, file] of files.entries()) {
        created.push(await linkIfAbsent(temps[i]!, file));
        await options.afterEach?.(i, created[i]!);
      }
    } finally {
      await Promise.all(temps.map((tmp) => fsp.rm(tmp, { force: true }).catch(() => undefined)));
    }
    if (options.syncFolders !== false) await Promise.all([...new Set([...folders.keys(), ...alsoSync.map((f) => path.dirname(f))])].map(fsyncDir));
    for (const [i, o] of objects.entries()) if (created[i]) await killAt('after-put', o.key);
    return created;
  }

  private async swap(key: string, file: string, data: Buffer, expectedVersion: string | undefined): Promise<void> {
    await ensureRealDir(path.dirname(file), this.uriOf(key));
    const lockPath = path.join(path.dirname(file), `${INTERNAL_PREFIX}lock-${path.basename(file)}`);
    const release = await this.acquireLock(lockPath, key);
    try {
      await killAt('holding-lock', key);
      const current = await this.readIfExists(file);
      const currentVersion = current === undefined ? undefined : sha256(current);
      if (currentVersion !== expectedVersion) throw new PreconditionFailedError(this.uriOf(key));
      await atomicWrite(file, data, key, this.uriOf(key));
    } finally {
      await release();
    }
    await killAt('after-put', key);
  }

  async list(prefix: string): Promise<string[]> {
    validatePrefix(prefix);
    return this.deadline('list', prefix, () => this.listNow(prefix));
  }

  private async listNow(prefix: string): Promise<string[]> {
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash < 0 ? '' : prefix.slice(0, slash);
    const startDir = dirKey === '' ? this.realRoot : path.join(this.realRoot, ...dirKey.split('/'));
    const keys: string[] = [];
    await this.walk(startDir, dirKey, prefix, keys);
    return keys.sort(compareKeys);
  }

  async deletePrefix(prefix: string): Promise<void> {
    const keys = await this.list(prefix);
    await this.deadline('deletePrefix', prefix, () => this.deleteKeys(keys));
  }

  private async deleteKeys(keys: readonly string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      const file = this.pathOf(key);
      const dir = path.dirname(file);
      // A folder swapped for a symlink since it was listed: delete nothing through it.
      if (!dirs.has(dir) && (await fsp.realpath(dir).catch(() => dir)) !== dir) {
        throw new WriteRefusedError(this.uriOf(key), 'Refused to delete through a folder that is now a symlink; file:// store deletes never follow a symlink below the allow-listed real path');
      }
      try {
        await fsp.unlink(file);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      dirs.add(dir);
    }
    // Prune directories left empty, deepest first, never the root itself.
    const ordered = [...dirs].sort((a, b) => b.length - a.length);
    for (let dir of ordered) {
      while (dir.startsWith(this.realRoot + path.sep)) {
        try {
          await fsp.rmdir(dir);
        } catch {
          break; // not empty (or already gone / raced with a writer): stop climbing
        }
        dir = path.dirname(dir);
      }
    }
  }

  async collectInternalLeftovers(olderThanMs: number): Promise<string[]> {
    const removed: string[] = [];
    const now = Date.now();
    const visit = async (dir: string): Promise<void> => {
      // Only folders that are what they were listed as: never collect through a symlink swapped in.
      if ((await fsp.realpath(dir).catch(() => '')) !== dir) return;
      const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []); // gone meanwhile: nothing to collect
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await visit(full);
        if (entry.isDirectory() || !entry.name.startsWith(INTERNAL_PREFIX)) continue;
        // A lock is abandoned by the same rule acquireLock breaks it by; a temp file lives only
        // for the length of one write.
        const limit = entry.name.startsWith(`${INTERNAL_PREFIX}lock-`) ? this.staleLockMs : olderThanMs;
        const stat = await fsp.stat(full).catch(() => undefined);
        if (!stat || now - stat.mtimeMs <= limit) continue;
        await fsp.rm(full, { force: true });
        removed.push(path.relative(this.realRoot, full).split(path.sep).join('/'));
      }
    };
    await visit(this.realRoot);
    return removed.sort(compareKeys);
  }

  private async walk(dir: string, dirKey: string, prefix: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(INTERNAL_PREFIX)) continue;
      const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
      if (entry.isDirectory()) {
        // Descend only where keys below could still match the prefix.
        const asDir = `${key}/`;
        if (asDir.startsWith(prefix) || prefix.startsWith(asDir)) await this.walk(path.join(dir, entry.name), key, prefix, out);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        out.push(key);
      }
    }
  }

  private async readIfExists(file: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(file);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw err;
    }
  }

  /**
   * Takes the exclusive lock file; returns its release function. A held lock is retried with a
   * short jittered sleep until `lockWaitMs`; one whose holder is provably dead (lockHolderIsDead)
   * or that is older than `staleLockMs` is broken.
   */
  private async acquireLock(lockPath: string, key: string): Promise<() => Promise<void>> {
    const token = lockToken();
    const deadline = Date.now() + this.lockWaitMs;
    for (;;) {
      try {
        const fh = await fsp.open(lockPath, CREATE_NOFOLLOW, 0o644);
        try {
          failIfDiskFull(lockPath);
          await fh.writeFile(token);
        } catch (err) {
          // A lock without its token is held by no one until it goes stale: give it back now.
          await fsp.rm(lockPath, { force: true });
          throw err;
        } finally {
          await fh.close();
        }
        return async () => {
          // Only remove the lock if it is still ours (it may have been broken as stale).
          const content = await fsp.readFile(lockPath, 'utf8').catch(() => undefined);
          if (content === token) await fsp.rm(lockPath, { force: true });
        };
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
      }
      const retryNow = await this.breakIfAbandoned(lockPath);
      if (Date.now() >= deadline) {
        throw new Error(`Timed out after ${this.lockWaitMs} ms waiting for lock ${lockPath} to write ${this.uriOf(key)}`);
      }
      if (!retryNow) await sleep(5 + Math.random() * 20);
    }
  }

  /**
   * Breaks the lock if its holder is provably dead, it is older than staleLockMs, or it is not a
   * lock file at all (a symlink or a folder no taker creates); true if the caller should retry at
   * once. Breakers take turns (breakerLock): a dead holder's lock cannot change while one breaks it
   * (only a live holder removes a lock, only a free path is taken), so no breaker ever moves
   * aside a lock another breaker has just freed and a new holder taken.
   */
  private async breakIfAbandoned(lockPath: string): Promise<boolean> {
    const releaseBreaker = await takeBreakerLock(`${lockPath}.${INTERNAL_PREFIX}break`, this.staleLockMs);
    if (!releaseBreaker) return false;
    try {
      let stat;
      let content = '';
      try {
        stat = await fsp.lstat(lockPath);
        if (stat.isFile()) content = await fsp.readFile(lockPath, 'utf8');
      } catch (err) {
        return errnoCode(err) === 'ENOENT'; // released meanwhile
      }
      const garbage = !stat.isFile();
      if (!garbage && !lockHolderIsDead(content) && Date.now() - stat.mtimeMs <= this.staleLockMs) return false;
      const aside = `${lockPath}.${INTERNAL_PREFIX}stale-${randomBytes(6).toString('hex')}`;
      try {
        await fsp.rename(lockPath, aside);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return true;
        throw err;
      }
      try {
        const moved = await fsp.lstat(aside);
        // A stale (not dead) holder may have released, and someone taken the free path, between our
        // read and the rename: that lock is live, put it back unless the path is taken again.
        if (!garbage && moved.ino !== stat.ino) await fsp.link(aside, lockPath).catch(() => undefined);
      } finally {
        await fsp.rm(aside, { force: true, recursive: true });
      }
      return true;
    } finally {
      await releaseBreaker();
    }
  }
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
