/**
 * The patch ids live in one module (src/workflows/patches.ts): workflow code calls `patched()` and
 * `deprecatePatch()` only with its constants, PATCH_IDS lists every one of them, and no two share a
 * value (two changes behind one id would replay each other's branches).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as patches from '../../src/workflows/patches';

const WORKFLOWS = path.join(__dirname, '../../src/workflows');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

test('PATCH_IDS lists every exported patch id, each value once', () => {
  const exported = Object.entries(patches)
    .filter(([name]) => name.endsWith('_PATCH'))
    .map(([, value]) => value as string);
  assert.ok(exported.length >= 11, `only ${exported.length} patch constants exported`);
  assert.deepEqual([...patches.PATCH_IDS].sort(), [...exported].sort());
  assert.equal(new Set(exported).size, exported.length, `duplicate patch id values: ${exported.join(', ')}`);
});

test('workflow code passes only the constants of patches.ts to patched() and deprecatePatch()', () => {
  const calls: string[] = [];
  for (const file of sourceFiles(WORKFLOWS)) {
    if (path.basename(file) === 'patches.ts') continue;
    // Comments may name patched() freely; calls may not pass a literal.
    const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    for (const m of text.matchAll(/\b(?:patched|deprecatePatch)\(([^)]*)\)/g)) {
      const arg = (m[1] ?? '').trim();
      const rel = path.relative(WORKFLOWS, file);
      assert.ok(/^[A-Z][A-Z0-9_]*_PATCH$/.test(arg), `${rel}: patched(${arg}) — use a constant from src/workflows/patches.ts`);
      assert.ok(arg in patches, `${rel}: ${arg} is not exported by src/workflows/patches.ts`);
      calls.push(arg);
    }
    assert.doesNotMatch(text, /export const [A-Z0-9_]+_PATCH\b/, `${path.relative(WORKFLOWS, file)} defines a patch id outside patches.ts`);
  }
  assert.ok(calls.length >= 11, `found only ${calls.length} patched() calls`);
});
