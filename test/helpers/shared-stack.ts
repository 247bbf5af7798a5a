/**
 * What the suite runners (test/run.ts for `npm test`, test/fast/run.ts for `npm run test:fast`)
 * share with every test file they start: one Temporal dev server (the one in
 * DT_TEST_TEMPORAL_ADDRESS when .ci/run started it, else one started here) and one workflow
 * bundle, passed to the files in DT_TEST_TEMPORAL_ADDRESS and DT_TEST_WORKFLOW_BUNDLE
 * (test/helpers/temporal.ts reads both), and as a cached bundle in DT_TEST_SHARED_BUNDLES for the
 * worker processes the files start (./cleanup links it into each file's worker cache). Files that
 * restart a server start their own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger } from '@temporalio/worker';
import { DevServer } from '../../src/dev-server';
import { cachedWorkflowBundle } from '../../src/workflow-bundle';
import { SANDBOX } from './cleanup';

export interface SharedStack {
  readonly address: string;
  /** The environment a test file gets: the server's address and the bundle's path. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startSharedStack(): Promise<SharedStack> {
  const shared = process.env.DT_TEST_TEMPORAL_ADDRESS;
  // Built into a cache of the suite's own (src/workflow-bundle.ts, as a worker process does), which
  // every test process links into its own worker cache (./cleanup): worker processes reuse it.
  const cacheDir = path.join(SANDBOX, 'suite-cache');
  const [server, bundle] = await Promise.all([
    shared ? undefined : DevServer.start(),
    cachedWorkflowBundle({ workflowsPath: require.resolve('../../src/workflows'), logger: new DefaultLogger('WARN') }, { ...process.env, DT_CACHE_DIR: cacheDir, DT_WORKFLOW_BUNDLE_CACHE: '1' }),
  ]);
  const bundlePath = path.join(SANDBOX, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, bundle.bundle.code);
  const address = server?.address ?? shared!;
  return {
    address,
    env: {
      DT_TEST_TEMPORAL_ADDRESS: address,
      DT_TEST_WORKFLOW_BUNDLE: bundlePath,
      ...(bundle.file && { DT_TEST_SHARED_BUNDLES: path.dirname(bundle.file) }),
    },
    stop: async () => {
      await server?.stop();
    },
  };
}
