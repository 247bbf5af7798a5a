/**
 * The two test tiers, told apart by file name (README "What the tests check"):
 * `test/**\/*.e2e.test.ts` may start servers (Temporal, the GCS emulator, MLflow), workers, trainer
 * processes or any other process; every other `test/**\/*.test.ts` is pure and runs in
 * `npm run test:fast` (scripts/check-test-tiers.ts holds it to that).
 */
import fs from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');

export const isE2eTestFile = (file: string): boolean => file.endsWith('.e2e.test.ts');

/** Every test file under test/ (fixtures excluded), relative to the project root, sorted. */
export function allTestFiles(root = ROOT): string[] {
  return fs
    .readdirSync(path.join(root, 'test'), { recursive: true, encoding: 'utf8' })
    .map((f) => `test/${f.split(path.sep).join('/')}`)
    .filter((f) => f.endsWith('.test.ts') && !f.startsWith('test/fixtures/'))
    .sort();
}

export const fastTestFiles = (root = ROOT): string[] => allTestFiles(root).filter((f) => !isE2eTestFile(f));
export const e2eTestFiles = (root = ROOT): string[] => allTestFiles(root).filter(isE2eTestFile);
