/**
 * Getting at a SavedModel: the tfjs-node module that runs it (the tensorflow backend only), and a
 * local directory holding it (file:// as is; gs:// and other stores mirrored once into a cache).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type * as TfNodeModule from '@tensorflow/tfjs-node';
import { nativeModule } from '../backend';
import { assertAllowedUri } from '../../checkpoints/open-store';
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

/** A local directory holding the SavedModel: file:// as is, other stores mirrored once into a cache. */
export async function localSavedModelDir(uri: string, openStore: RouteDeps['openStore']): Promise<string> {
  if (uri.startsWith('file://')) {
    assertAllowedUri('model.uri', uri); // read in place, not through the (guarded) store
    return fileURLToPath(uri).replace(/\/+$/, '');
  }
  const dir = path.join(os.tmpdir(), 'durable-train-savedmodels', createHash('sha256').update(uri).digest('hex').slice(0, 24));
  const done = path.join(dir, '.complete');
  if (fs.existsSync(done)) return dir;
  const store = openStore(uri);
  const keys = await store.list('');
  if (!keys.includes('saved_model.pb')) fail(`No SavedModel at ${uri}: there is no saved_model.pb`);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  for (const key of keys) {
    const data = await store.get(key);
    if (!data) continue;
    fs.mkdirSync(path.dirname(path.join(tmp, key)), { recursive: true });
    fs.writeFileSync(path.join(tmp, key), data);
  }
  fs.writeFileSync(path.join(tmp, '.complete'), uri);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  return dir;
}
