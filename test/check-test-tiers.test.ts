/**
 * scripts/check-test-tiers.ts: a file's name says its tier. What a file starts is read from its
 * code through every project module it imports; these sources stand in for test files.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkTiers, startsIn } from '../scripts/check-test-tiers';

const at = 'test/pretend.test.ts';

test('a file that starts a dev server through a helper is found, with the chain down to the process', () => {
  const src = `import { test } from 'node:test';\nimport { useStackAndWorker } from './helpers/temporal';\nconst env = useStackAndWorker();\ntest('x', () => {});\n`;
  const [first, ...rest] = startsIn(at, src);
  assert.equal(rest.length, 0);
  assert.equal(first?.line, 3);
  assert.match(first?.chain ?? '', /^useStackAndWorker -> .*node:child_process$/);
});

test('a trainer, the GCS emulator, Worker.create, a child process and a local wrapper are each found', () => {
  const cases: Record<string, RegExp> = {
    [`import { TrainerClient } from '../src/training/trainer-client';\nnew TrainerClient({});`]: /^TrainerClient -> .*node:child_process/,
    [`import { startGcsEmulator } from './helpers/gcs-emulator';\nvoid startGcsEmulator();`]: /^startGcsEmulator -> /,
    [`import { Worker } from '@temporalio/worker';\nvoid Worker.create({} as never);`]: /Worker\.create/,
    [`import { execFileSync } from 'node:child_process';\nexecFileSync('true');`]: /^execFileSync -> node:child_process$/,
    [`import { startStack } from './helpers/temporal';\nfunction mine() { return startStack(); }\nvoid mine();`]: /^mine -> startStack -> /,
    [`const cp = require('node:child_process');\ncp.spawn('x');`]: /^cp -> node:child_process$/,
  };
  for (const [src, chain] of Object.entries(cases)) {
    const found = startsIn(at, src);
    assert.ok(found.some((v) => chain.test(v.chain)), `${src}\n-> ${JSON.stringify(found)}`);
  }
});

test('pure use of the same modules starts nothing: types, temp folders, the fast harness, replay', () => {
  const src = [
    `import { Worker } from '@temporalio/worker';`,
    `import type { Stack } from './helpers/temporal';`,
    `import { tempDir, uniqueId } from './helpers/temporal';`,
    `import { Harness } from './fast/harness';`,
    `import { TrainerClient } from '../src/training/trainer-client';`,
    `let s: Stack | undefined; let t: TrainerClient | undefined;`,
    `void Worker.runReplayHistories({} as never, [] as never);`,
    `tempDir(uniqueId('x')); void Harness.start();`,
  ].join('\n');
  assert.deepEqual(startsIn(at, src), []);
  const allowed = `import { TrainerClient } from '../src/training/trainer-client';\n// tiers: starts nothing: it throws first\nnew TrainerClient({});`;
  assert.deepEqual(startsIn(at, allowed), []);
  const allowedImport = `// tiers: starts nothing: it throws first\nimport { TrainerClient } from '../src/training/trainer-client';\nnew TrainerClient({});\nnew TrainerClient({});`;
  assert.deepEqual(startsIn(at, allowedImport), []);
});

test('this tree: every file is named for its tier', () => {
  assert.deepEqual(checkTiers(), []);
});
