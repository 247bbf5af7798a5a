/**
 * What the suite runners (test/run.ts for `npm test`, test/fast/run.ts for `npm run test:fast`)
 * share with every test file they start: one Temporal dev server (the one in
 * DT_TEST_TEMPORAL_ADDRESS when .ci/run started it, else one started here) and one workflow
 * bundle, passed to the files in DT_TEST_TEMPORAL_ADDRESS and DT_TEST_WORKFLOW_BUNDLE
 * (test/helpers/temporal.ts reads both). Files that restart a server start their own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { DevServer } from '../../src/dev-server';
import { SANDBOX } from './cleanup';

export interface SharedStack {
  readonly address: string;
  /** The environment a test file gets: the server's address and the bundle's path. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startSharedStack(): Promise<SharedStack> {
  const shared = process.env.DT_TEST_TEMPORAL_ADDRESS;
  const [server, bundle] = await Promise.all([
    shared ? undefined : DevServer.start(),
    bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: new DefaultLogger('WARN') }),
  ]);
  const bundlePath = path.join(SANDBOX, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, bundle.code);
  const address = server?.address ?? shared!;
  return {
    address,
    env: { DT_TEST_TEMPORAL_ADDRESS: address, DT_TEST_WORKFLOW_BUNDLE: bundlePath },
    stop: async () => {
      await server?.stop();
    },
  };
}
