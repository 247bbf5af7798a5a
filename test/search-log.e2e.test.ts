/**
 * The search log on gs://, against the real fake-gcs-server (test/helpers/gcs-emulator.ts); the same
 * contract as test/search-log.test.ts runs on file://. Each openStore is a client of its own.
 *
 *   node --import tsx --test test/search-log.e2e.test.ts
 */
import { after, before } from 'node:test';
import { GcsCheckpointStore } from '../src/checkpoints/gcs-store';
import { createGcsStorage } from '../src/checkpoints/gcs-client';
import { startGcsEmulator, type GcsEmulator } from './helpers/gcs-emulator';
import { searchLogSuite } from './search-log-suite';

const BUCKET = 'search-logs';
let emu: GcsEmulator;
before(async () => {
  emu = await startGcsEmulator({ buckets: [BUCKET] });
});
after(() => emu?.dispose());

let n = 0;
searchLogSuite('gs://', {
  newSearchUri: () => `gs://${BUCKET}/s-${process.pid}-${n++}`,
  openStore: (uri) => new GcsCheckpointStore(uri, { storage: createGcsStorage({ apiEndpoint: emu.endpoint, projectId: emu.projectId }) }),
});
