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
import { startSharedStack } from '../helpers/shared-stack';
import { fastTestFiles, ROOT } from '../helpers/tiers';

async function main(): Promise<number> {
  const started = Date.now();
  const files = process.argv.length > 2 ? process.argv.slice(2) : fastTestFiles();
  const stack = await startSharedStack();
  console.log(`[test:fast] dev server ${stack.address} and workflow bundle ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  try {
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files], {
        cwd: ROOT,
        env: { ...process.env, ...stack.env },
        stdio: 'inherit',
      });
      child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
    });
    return code;
  } finally {
    await stack.stop();
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
