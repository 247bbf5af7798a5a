/**
 * Writes test/fixtures/image-shards/: the first 6 mnist digits as a WebDataset shard made by GNU tar
 * (not our writer), plain and gzip, with a folder, `./` prefixes and an extra `.json` member per
 * sample, so the fast tests check our parser against another writer without starting a process.
 *
 *   npx tsx scripts/make-image-fixtures.ts
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeDigit, mnistDigits } from './make-image-shards';

export const FIXTURE_DIGITS = 6;

async function main(): Promise<void> {
  const out = path.join(__dirname, '../test/fixtures/image-shards');
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'dt-image-fixtures-'));
  try {
    fs.mkdirSync(path.join(src, 'part'));
    const digits = mnistDigits(FIXTURE_DIGITS);
    for (const [n, d] of digits.entries()) {
      fs.writeFileSync(path.join(src, 'part', `s${n}.png`), await encodeDigit(d));
      fs.writeFileSync(path.join(src, 'part', `s${n}.cls`), `${d.label}\n`);
      fs.writeFileSync(path.join(src, 'part', `s${n}.json`), '{}');
    }
    const names = digits.flatMap((_, n) => [`./part/s${n}.png`, `./part/s${n}.cls`, `./part/s${n}.json`]);
    const fixed = ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--mode=a+r'];
    fs.mkdirSync(out, { recursive: true });
    execFileSync('tar', ['--format=gnu', ...fixed, '-cf', path.join(out, 'gnu.tar'), '-C', src, ...names]);
    execFileSync('tar', ['--format=pax', ...fixed, '-cf', path.join(out, 'pax.tar'), '-C', src, ...names]);
    fs.writeFileSync(path.join(out, 'gnu.tar.gz'), execFileSync('gzip', ['-9n', '-c', path.join(out, 'gnu.tar')]));
    console.log(`wrote gnu.tar, pax.tar and gnu.tar.gz to ${out} (${execFileSync('tar', ['--version']).toString().split('\n')[0]})`);
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
