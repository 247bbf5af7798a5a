/**
 * The user's trainer module is resolved where the user named it (the worker's working directory),
 * TypeScript gets tsx, and a module that cannot be found fails at once naming the file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { resolveTrainerModule } from '../src/training/trainer-module';
import { TrainerClient } from '../src/training/trainer-client';
import { tempDir } from './helpers/cleanup';

test('a relative trainer module resolves from the working directory; .ts gets the tsx loader, .js none', () => {
  const cwd = tempDir('dt-module-');
  fs.mkdirSync(path.join(cwd, 'lib'));
  fs.writeFileSync(path.join(cwd, 'lib/reg.ts'), 'export function register() {}\n');
  fs.writeFileSync(path.join(cwd, 'reg.js'), 'exports.register = () => {};\n');
  const ts = resolveTrainerModule('./lib/reg.ts', cwd);
  assert.equal(ts.file, path.join(cwd, 'lib/reg.ts'));
  assert.equal(ts.execArgv[0], '--import');
  assert.match(ts.execArgv[1] ?? '', /^file:\/\/.*tsx/);
  assert.deepEqual(resolveTrainerModule(path.join(cwd, 'reg.js'), '/').execArgv, []);
  assert.equal(resolveTrainerModule('../reg.js', path.join(cwd, 'lib')).file, path.join(cwd, 'reg.js'));
});

test('a missing module fails naming the spec, the resolved file and the working directory', () => {
  const cwd = tempDir('dt-module-');
  assert.throws(() => resolveTrainerModule('./my-registry.ts', cwd), (err: Error) => {
    assert.match(err.message, /`trainerModule` \(DT_TRAINER_MODULE\)/);
    assert.ok(err.message.includes('"./my-registry.ts"'), err.message);
    assert.ok(err.message.includes(path.join(cwd, 'my-registry.ts')), err.message);
    return true;
  });
  assert.throws(() => resolveTrainerModule('no-such-package-dt', cwd), /a package installed where the worker runs, got "no-such-package-dt": not found from/);
  // The worker fails at start, not at its first trainer request.
  const before = process.cwd();
  process.chdir(cwd);
  try {
    // tiers: starts nothing: the constructor refuses the missing module before any trainer process starts.
    assert.throws(() => new TrainerClient({ trainerModule: './nope.ts' }), /does not exist/);
  } finally {
    process.chdir(before);
  }
});
