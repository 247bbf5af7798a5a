/**
 * The search log on the file store (the GCS emulator's run is test/search-log.e2e.test.ts).
 *
 *   node --import tsx --test test/search-log.test.ts
 */
import { pathToFileURL } from 'node:url';
import { openStore } from '../src/checkpoints/open-store';
import { tempDir } from './helpers/cleanup';
import { searchLogSuite } from './search-log-suite';

const root = pathToFileURL(tempDir()).href;
let n = 0;
searchLogSuite('file://', { newSearchUri: () => `${root}/search-${n++}`, openStore: (uri) => openStore(uri) });
