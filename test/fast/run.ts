/**
 * `npm run test:fast`: every test file not named `*.e2e.test.ts` (test/helpers/tiers.ts): pure
 * logic, in-process tfjs, history replay, and every workflow with scripted activities
 * (test/fast/harness.ts). One dev server (with the search attributes) and one workflow bundle
 * serve every file; a server given in DT_TEST_TEMPORAL_ADDRESS is used instead.
 *
 *   npm run test:fast                          every fast test
 *   npm run test:fast -- test/fast/x.test.ts   only these files
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { DevServer } from '../../src/dev-server';
import { SANDBOX } from '../helpers/cleanup';
import { fastTestFiles, ROOT } from '../helpers/tiers';

async function main(): Promise<number> {
  const started = Date.now();
  const files = process.argv.length > 2 ? process.argv.slice(2) : fastTestFiles();
  const shared = process.env.DT_TEST_TEMPORAL_ADDRESS;
  const [server, bundle] = await Promise.all([
    shared ? undefined : DevServer.start(),
    bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: new DefaultLogger('WARN') }),
  ]);
  const bundlePath = path.join(SANDBOX, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, bundle.code);
  const address = server?.address ?? shared!;
  console.log(`[test:fast] dev server ${address} and workflow bundle ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
        cwd: ROOT,
        env: { ...process.env, DT_TEST_TEMPORAL_ADDRESS: address, DT_TEST_WORKFLOW_BUNDLE: bundlePath },
        stdio: 'inherit',
      });
      child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
    });
    return code;
  } finally {
    await server?.stop();
    console.log(`[test:fast] ${files.length} files in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
