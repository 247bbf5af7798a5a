/**
 * Listing an image folder (`format: "imagefolder"` without `manifest`): `uri` names the root, and its
 * shards are the files `<root>/<class>/<file>.jpg|jpeg|png`, one record each (images.ts), in name
 * order. Only one level of class folders; other files, deeper folders and symlinked class folders
 * are skipped; every file is checked against the allow-list (symlinks resolved). Bounded like any
 * listing (MAX_SHARDS files; on gs://, the pages of the bucket listing under the root).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Storage } from '@google-cloud/storage';
import { bad, gcsLocation, listGcsObjects, type ShardInfo } from '../source';

const IMAGE_FILE = /\.(jpe?g|png)$/i;

function tooMany(uri: string, max: number): never {
  return bad(`Expected the image folder \`params.uri\` (${uri}) to hold at most ${max} images, got more: write the images into tar shards (format \`tar\`)`);
}

async function listFolder(uri: string, max: number, assertAllowed: (field: string, uri: string) => void): Promise<ShardInfo[]> {
  const root = fileURLToPath(uri.endsWith('/') ? uri : `${uri}/`);
  let classes: fs.Dirent[];
  try {
    classes = await fs.promises.readdir(root, { withFileTypes: true });
  } catch (err) {
    return bad(`Expected \`params.uri\` of dataset sharded (format imagefolder) to name an existing folder, got ${uri}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const files: string[] = [];
  for (const c of classes.filter((d) => d.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const dir = await fs.promises.opendir(path.join(root, c.name));
    const names: string[] = [];
    for await (const entry of dir) {
      if (!entry.isFile() || !IMAGE_FILE.test(entry.name)) continue;
      names.push(entry.name);
      if (files.length + names.length > max) return tooMany(uri, max);
    }
    files.push(...names.sort().map((n) => path.join(root, c.name, n)));
  }
  const shards: ShardInfo[] = [];
  for (const file of files) {
    const shardUri = pathToFileURL(file).href;
    assertAllowed('params.uri', shardUri);
    const stat = await fs.promises.stat(file).catch(() => undefined);
    if (stat?.isFile()) shards.push({ uri: shardUri, size: stat.size });
  }
  return shards;
}

function listBucket(uri: string, max: number, maxPages: number, storage: Storage): Promise<ShardInfo[]> {
  const { bucket, name } = gcsLocation(uri.replace(/\/$/, ''));
  const prefix = name === '' ? '' : `${name}/`;
  return listGcsObjects(storage, {
    uri,
    bucket,
    prefix,
    keep: (objectName) => {
      const rest = objectName.slice(prefix.length).split('/');
      return rest.length === 2 && rest[0] !== '' && IMAGE_FILE.test(rest[1]!);
    },
    max,
    tooMany: () => tooMany(uri, max),
    maxPages,
    tooManyPages: (objects) => bad(`Expected the image folder \`params.uri\` (${uri}) to list at most ${objects} objects, got more: write the images into tar shards (format \`tar\`)`),
  });
}

/** The images of the folder `uri` names (see the top of this file). */
export function listImageFolder(uri: string, max: number, maxPages: number, storage: () => Storage, assertAllowed: (field: string, uri: string) => void): Promise<ShardInfo[]> {
  if (/[*?[\]]/.test(uri)) bad(`Expected \`params.uri\` of an image folder to name its root folder (no wildcards; or list the files in a manifest), got ${uri}`);
  return uri.startsWith('gs://') ? listBucket(uri, max, maxPages, storage()) : listFolder(uri, max, assertAllowed);
}
