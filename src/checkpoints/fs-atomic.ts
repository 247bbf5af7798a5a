/**
 * How the file:// store writes a file: a temporary file in the same directory, fsync, rename,
 * fsync of the directory. Readers never see a torn object; a killed write leaves only a temporary
 * file (`.dt-tmp-…`, never listed, collected as a leftover). A create-only write (stageFile, then
 * linkIfAbsent) links the fsynced temporary file to its name instead of renaming it: `link` fails
 * with EEXIST when the name is taken, an atomic create-if-absent on POSIX that needs no lock, and
 * the directory's fsync is left to the caller (one per folder, however many objects it holds).
 *
 * Every write is resolved against the store's real root (the path the allow-list checked, symlinks
 * resolved when the store was opened) at each open and rename: the folder written into must be,
 * component by component, that very path (`realpath(dir) === dir`), folders are created one level
 * at a time and checked, and the final component is opened with O_NOFOLLOW. A symlink put in place
 * of a folder after the check (to a place outside the allow-list, say) fails the write with
 * WriteRefusedError instead of being followed. Node has no `openat`, so a swap in the microseconds
 * between the check and the open is not caught; one that happens between two writes always is.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

import { beforeTmpWrite } from './fault-hooks';
import { INTERNAL_PREFIX } from './keys';
import { joined, PermanentStoreError } from './store';
import { recordTime } from './timing';

/** Create-only, never through a symlink at the final component. */
export const CREATE_NOFOLLOW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const DIR_NOFOLLOW = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** A write whose folder is not the path the store was opened on (a symlink on the way). Retrying cannot fix it. */
export class WriteRefusedError extends PermanentStoreError {}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/** The first component of `dir` (from `/`) that is a symlink or not a folder; for the message only. */
async function firstDetour(dir: string): Promise<string> {
  const parts = dir.split(path.sep).filter((s) => s !== '');
  for (let n = 1; n <= parts.length; n++) {
    const p = path.sep + parts.slice(0, n).join(path.sep);
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st || !st.isDirectory()) return p;
  }
  return dir;
}

async function refuse(dir: string, uri: string): Promise<never> {
  const detour = await firstDetour(dir);
  throw new WriteRefusedError(
    uri,
    `Refused to write: ${pathToFileURL(detour).href} is not the folder the store was opened on (a symlink or another file now stands there); ` +
      'file:// store writes never follow a symlink below the allow-listed real path',
  );
}

/**
 * Makes sure `dir` exists and is itself, under no symlink: `realpath(dir) === dir`, creating missing
 * folders one level at a time (each checked, so `mkdir -p` never follows a planted link). `dir` is
 * a path under the store's real root, which holds no symlink; `uri` names the object for the error.
 */
export async function ensureRealDir(dir: string, uri: string): Promise<void> {
  let real: string;
  try {
    real = await fsp.realpath(dir);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    // Missing, or a dangling symlink on the way: make the parent, then this level.
    const parent = path.dirname(dir);
    if (parent === dir) throw err;
    await ensureRealDir(parent, uri);
    try {
      await fsp.mkdir(dir);
      return;
    } catch (mkdirErr) {
      if (errnoCode(mkdirErr) !== 'EEXIST') throw mkdirErr;
    }
    // There already (made by a concurrent writer, or a link planted meanwhile): check it as it is.
    real = await fsp.realpath(dir).catch(() => '');
  }
  if (real !== dir) await refuse(dir, uri);
}

/** fsync of an open file or directory, its time recorded for the checkpoint being written. */
async function sync(fh: fsp.FileHandle): Promise<void> {
  const started = performance.now();
  try {
    await fh.sync();
  } finally {
    recordTime('fsyncMs', performance.now() - started);
  }
}

function tempPathIn(dir: string): string {
  return path.join(dir, `${INTERNAL_PREFIX}tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Writes every chunk at the file's current offset with writev (one system call for all of them, as a rule). */
async function writeChunks(fh: fsp.FileHandle, chunks: readonly Buffer[]): Promise<void> {
  let rest = chunks.filter((c) => c.length > 0);
  while (rest.length > 0) {
    let { bytesWritten } = await fh.writev(rest);
    // A short write (rare on a regular file): go on from the first byte not written.
    const next: Buffer[] = [];
    for (const c of rest) {
      if (bytesWritten >= c.length) bytesWritten -= c.length;
      else {
        next.push(bytesWritten > 0 ? c.subarray(bytesWritten) : c);
        bytesWritten = 0;
      }
    }
    rest = next;
  }
}

/**
 * The first half of a create-only write: `data` (its chunks written in order with writev) in a
 * fresh temporary file beside `file`, fsynced; returns the temporary file's path. `file`'s folder
 * must have been checked (ensureRealDir); `key` names it for the test-only fault hooks.
 */
export async function stageFile(file: string, data: Buffer | readonly Buffer[], key: string): Promise<string> {
  const tmp = tempPathIn(path.dirname(file));
  let staged = false;
  try {
    const fh = await fsp.open(tmp, CREATE_NOFOLLOW, 0o644);
    try {
      await beforeTmpWrite(key, tmp, () => {
        const all = joined(data);
        return fh.write(all.subarray(0, all.length >> 1)).then(() => fh.sync());
      });
      await writeChunks(fh, Buffer.isBuffer(data) ? [data] : data);
      await sync(fh);
    } finally {
      await fh.close();
    }
    staged = true;
    return tmp;
  } finally {
    if (!staged) await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** Names the staged `tmp` as `file` unless `file` exists (any kind of entry, a symlink too): false then. */
export async function linkIfAbsent(tmp: string, file: string): Promise<boolean> {
  try {
    await fsp.link(tmp, file);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Writes `data` to `file` atomically; `key` names it for the test-only fault hooks and `uri` for
 * errors. `file` is a path under the store's real root: its folder is checked (ensureRealDir)
 * before the temporary file is created and again before the rename.
 */
export async function atomicWrite(file: string, data: Buffer, key: string, uri: string): Promise<void> {
  const dir = path.dirname(file);
  await ensureRealDir(dir, uri);
  const tmp = tempPathIn(dir);
  let renamed = false;
  try {
    const fh = await fsp.open(tmp, CREATE_NOFOLLOW, 0o644);
    try {
      await beforeTmpWrite(key, tmp, () => fh.write(data.subarray(0, data.length >> 1)).then(() => fh.sync()));
      await fh.writeFile(data);
      await sync(fh);
    } finally {
      await fh.close();
    }
    await ensureRealDir(dir, uri);
    await fsp.rename(tmp, file);
    renamed = true;
    await fsyncDir(dir);
  } finally {
    if (!renamed) await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** fsync of a folder, so the names created in it survive a crash of the machine. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await fsp.open(dir, DIR_NOFOLLOW);
    await sync(fh);
  } catch {
    // Directory fsync is not supported everywhere; the rename itself is still atomic.
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
