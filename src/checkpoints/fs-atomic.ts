/**
 * How the file:// store writes a file: a temporary file in the same directory, fsync, rename,
 * fsync of the directory. Readers never see a torn object; a killed write leaves only a temporary
 * file (`.dt-tmp-…`, never listed, collected as a leftover).
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

import { beforeTmpWrite } from './fault-hooks';
import { INTERNAL_PREFIX } from './keys';
import { recordTime } from './timing';

/** fsync of an open file or directory, its time recorded for the checkpoint being written. */
async function sync(fh: fsp.FileHandle): Promise<void> {
  const started = performance.now();
  try {
    await fh.sync();
  } finally {
    recordTime('fsyncMs', performance.now() - started);
  }
}

/** Writes `data` to `file` atomically; `key` names it for the test-only fault hooks. */
export async function atomicWrite(file: string, data: Buffer, key: string): Promise<void> {
  const dir = path.dirname(file);
  await fsp.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `${INTERNAL_PREFIX}tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  let renamed = false;
  try {
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await beforeTmpWrite(key, tmp, () => fh.write(data.subarray(0, data.length >> 1)).then(() => fh.sync()));
      await fh.writeFile(data);
      await sync(fh);
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
    renamed = true;
    await fsyncDir(dir);
  } finally {
    if (!renamed) await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await fsp.open(dir, 'r');
    await sync(fh);
  } catch {
    // Directory fsync is not supported everywhere; the rename itself is still atomic.
  } finally {
    await fh?.close().catch(() => undefined);
  }
}
