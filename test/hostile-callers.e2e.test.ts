/**
 * The hostile-caller suite: every attack in test/attacks/*.ts against a real dev server and worker,
 * one test each, and a table at the end: attack, outcome, seconds, victim unchanged.
 *
 *   node --import tsx --test test/hostile-callers.e2e.test.ts
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Attack, AttackOutcome } from './attacks/attack';
import { removeDirs, tempDir, useStackAndWorker } from './helpers/temporal';

function loadAttacks(): Attack[] {
  const folder = path.join(__dirname, 'attacks');
  return fs
    .readdirSync(folder)
    .filter((f) => f.endsWith('.ts') && f !== 'attack.ts')
    .sort()
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    .flatMap((f) => (require(path.join(folder, f)) as { attacks?: Attack[] }).attacks ?? []);
}

const attacks = loadAttacks();
const table: Array<{ name: string; origin: string; outcome: string; seconds: number; unchanged: string }> = [];
const oneLine = (s: string, max = 110) => {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

describe('hostile callers', { timeout: 900_000 }, () => {
  const sw = useStackAndWorker();
  const dirs: string[] = [];

  after(() => {
    removeDirs(...dirs);
    if (table.length > 0) {
      const rows = table.map((r) => `| ${r.name} | ${r.origin} | ${r.outcome} | ${r.seconds.toFixed(1)} | ${r.unchanged} |`);
      console.log(['| attack | from | outcome | s | victim unchanged |', '|---|---|---|---:|---|', ...rows].join('\n'));
    }
  });

  test('there are attacks to run', () => {
    assert.ok(attacks.length > 0, 'test/attacks/*.ts export no attacks');
  });

  for (const attack of attacks) {
    test(attack.name, { timeout: attack.timeoutMs ?? 120_000 }, async () => {
      const dir = tempDir('dt-hostile-');
      dirs.push(dir);
      const started = Date.now();
      let result: AttackOutcome | undefined;
      try {
        result = await attack.run({ stack: sw.stack, worker: sw.worker, dir });
      } finally {
        table.push({
          name: attack.name,
          origin: attack.origin,
          outcome: oneLine(result?.outcome ?? 'the attack did not end as expected (see the failure)'),
          seconds: (Date.now() - started) / 1000,
          unchanged: result === undefined ? '?' : result.victimUnchanged === 'n/a' ? 'n/a' : result.victimUnchanged ? 'yes' : 'NO',
        });
      }
      assert.notEqual(result.victimUnchanged, false, `${attack.name}: the victim changed`);
    });
  }
});
