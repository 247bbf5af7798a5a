/**
 * The README and docs/ stay a guide: docs/cli.md is what the CLI's --help prints (regenerate with
 * scripts/docs-cli.ts), every relative link of the README names a file that exists, every heading in
 * its contents resolves, and no table cell is a paragraph (at most 300 characters).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { cliReference } from '../scripts/docs-cli';

const ROOT = path.resolve(__dirname, '..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

test('docs/cli.md is the CLI usage as --help prints it', () => {
  assert.equal(fs.readFileSync(path.join(ROOT, 'docs/cli.md'), 'utf8'), cliReference(), 'stale: run node --import tsx scripts/docs-cli.ts');
});

test("the README's relative links name files that exist, and its contents' anchors name headings", () => {
  const missing = [...readme.matchAll(/\]\(((?!https?:|#)[^)\s]+)\)/g)].map((m) => m[1]!.split('#')[0]!).filter((f) => !fs.existsSync(path.join(ROOT, f)));
  assert.deepEqual(missing, []);
  const slug = (t: string) => t.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
  const anchors = new Set([...readme.matchAll(/^#{2,3} (.+)$/gm)].map((m) => slug(m[1]!)));
  const broken = [...readme.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!).filter((a) => !anchors.has(a));
  assert.deepEqual(broken, []);
});

test('no table cell in the README or docs/ is over 300 characters', () => {
  const long: string[] = [];
  for (const file of ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]) {
    for (const line of fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n')) {
      if (!line.startsWith('|')) continue;
      for (const cell of line.split(/(?<!\\)\|/)) if (cell.trim().length > 300) long.push(`${file}: ${cell.trim().slice(0, 60)}… (${cell.trim().length})`);
    }
  }
  assert.deepEqual(long, []);
});
