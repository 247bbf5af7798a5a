// Early stopping and LR-on-plateau, step by step against the real Keras callbacks' recorded outcomes
// (test/fixtures/keras-callbacks.json, made by tools/keras_callbacks_reference.py).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { EarlyStoppingConfig, ReduceLrOnPlateauConfig } from '../src/config/train-config';
import {
  type EarlyStoppingState,
  type JsonFloat,
  type PlateauState,
  fromJsonFloat,
  initialEarlyStopping,
  initialPlateau,
  restoreEpoch,
  stepEarlyStopping,
  stepPlateau,
  toJsonFloat,
} from '../src/workflows/callbacks';

type FixtureValue = JsonFloat | null;

interface EsCase {
  name: string;
  config: EarlyStoppingConfig;
  metrics: FixtureValue[];
  expected: {
    epochs: { epoch: number; wait: number; best: FixtureValue; stop: boolean }[];
    epochsRun: number;
    kerasStoppedEpoch: number;
    kerasBestEpoch: number;
    bestWeightsRecorded: boolean;
    finalWeightsEpoch: number;
  };
}

interface RpCase {
  name: string;
  config: ReduceLrOnPlateauConfig;
  initialLr: number;
  metrics: FixtureValue[];
  expected: {
    initialLr: number;
    epochs: { epoch: number; lr: number; wait: number; cooldownCounter: number; best: FixtureValue }[];
  };
}

interface Fixture {
  versions: { keras: string; tensorflow: string };
  earlyStopping: EsCase[];
  reduceLrOnPlateau: RpCase[];
}

const fixture = JSON.parse(readFileSync(path.join(__dirname, 'fixtures', 'keras-callbacks.json'), 'utf8')) as Fixture;

/** The logs Keras got: another metric always, the monitored one unless the fixture says null. */
function logs(monitor: string, value: FixtureValue): Record<string, number> {
  return value === null ? { loss_other: 0.25 } : { loss_other: 0.25, [monitor]: fromJsonFloat(value) };
}

function roundTrip<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Runs a case; with `continueAsNewAfter`, the state goes through JSON after that epoch. */
function runEarlyStopping(c: EsCase, continueAsNewAfter?: number) {
  let state: EarlyStoppingState = initialEarlyStopping();
  const epochs: EsCase['expected']['epochs'] = [];
  let epochsRun = 0;
  for (const [i, value] of c.metrics.entries()) {
    const epoch = i + 1;
    const metrics = deepFreeze(logs(c.config.monitor, value));
    const before = structuredClone(state);
    const step = stepEarlyStopping(c.config, deepFreeze(state), epoch, metrics);
    assert.deepEqual(state, before, 'input state not mutated');
    assert.notEqual(step.state, state, 'a new state object');
    assert.equal(step.missing, value === null, `missing flag at epoch ${epoch}`);
    assert.equal(step.warmup, value !== null && epoch - 1 < c.config.startFromEpoch, `warmup flag at epoch ${epoch}`);
    if (step.improved) assert.equal(step.state.bestEpoch, epoch, 'an improving epoch becomes bestEpoch');
    state = step.state;
    assert.deepEqual(roundTrip(state), state, 'state is plain JSON');
    epochsRun = epoch;
    epochs.push({ epoch, wait: state.wait, best: state.best, stop: step.stop });
    if (epoch === continueAsNewAfter) state = roundTrip(state);
    if (step.stop) break;
  }
  return { state, epochs, epochsRun };
}

function checkEarlyStopping(c: EsCase, continueAsNewAfter?: number): void {
  const cfg = deepFreeze(structuredClone(c.config));
  const { state, epochs, epochsRun } = runEarlyStopping({ ...c, config: cfg }, continueAsNewAfter);
  const e = c.expected;
  assert.deepEqual(epochs, e.epochs, 'wait, best and stop after each epoch');
  assert.equal(epochsRun, e.epochsRun, 'epochs run');
  assert.equal(state.stoppedEpoch, e.kerasStoppedEpoch > 0 ? e.kerasStoppedEpoch + 1 : null, 'stopped epoch');
  assert.equal(state.bestEpoch === null ? 0 : state.bestEpoch - 1, e.kerasBestEpoch, 'best epoch (Keras index)');
  assert.equal(cfg.restoreBestWeights && state.bestEpoch !== null, e.bestWeightsRecorded, 'best weights recorded');
  assert.equal(restoreEpoch(cfg, state) ?? epochsRun, e.finalWeightsEpoch, 'epoch whose weights are the final model');
  assert.deepEqual(cfg, c.config, 'config not mutated');
}

function runPlateau(c: RpCase, continueAsNewAfter?: number) {
  const cfg = deepFreeze(structuredClone(c.config));
  let state: PlateauState = initialPlateau(cfg, c.initialLr);
  let lr = c.initialLr;
  const epochs: RpCase['expected']['epochs'] = [];
  for (const [i, value] of c.metrics.entries()) {
    const epoch = i + 1;
    const metrics = deepFreeze(logs(cfg.monitor, value));
    const before = structuredClone(state);
    const step = stepPlateau(cfg, deepFreeze(state), metrics, lr);
    assert.deepEqual(state, before, 'input state not mutated');
    assert.notEqual(step.state, state, 'a new state object');
    assert.equal(step.missing, value === null, `missing flag at epoch ${epoch}`);
    assert.equal(step.reduced, step.newLr !== Math.fround(lr), `reduced flag at epoch ${epoch}`);
    assert.equal(step.state.lr, step.newLr, 'state.lr follows newLr');
    state = step.state;
    assert.deepEqual(roundTrip(state), state, 'state is plain JSON');
    lr = step.newLr;
    epochs.push({ epoch, lr, wait: state.wait, cooldownCounter: state.cooldownCounter, best: state.best });
    if (epoch === continueAsNewAfter) state = roundTrip(state);
  }
  assert.deepEqual(cfg, c.config, 'config not mutated');
  return { initial: initialPlateau(cfg, c.initialLr), epochs };
}

function checkPlateau(c: RpCase, continueAsNewAfter?: number): void {
  const { initial, epochs } = runPlateau(c, continueAsNewAfter);
  assert.equal(initial.lr, c.expected.initialLr, 'initial LR as float32');
  // Exact comparison: we fround like Keras's float32 variable does.
  assert.deepEqual(epochs, c.expected.epochs, 'LR, wait, cooldown and best after each epoch');
}

void describe('fixture', () => {
  void test('was made by real Keras and covers the table', () => {
    assert.match(fixture.versions.keras, /^3\./);
    assert.match(fixture.versions.tensorflow, /^2\./);
    assert.ok(fixture.earlyStopping.length >= 25, `${fixture.earlyStopping.length} EarlyStopping cases`);
    assert.ok(fixture.reduceLrOnPlateau.length >= 12, `${fixture.reduceLrOnPlateau.length} ReduceLROnPlateau cases`);
    const es = fixture.earlyStopping.map((c) => c.config);
    for (const p of [0, 1, 2, 3]) assert.ok(es.some((c) => c.patience === p), `patience ${p}`);
    for (const m of ['min', 'max']) assert.ok(es.some((c) => c.mode === m), `mode ${m}`);
    assert.ok(es.some((c) => c.minDelta > 0) && es.some((c) => c.baseline !== null) && es.some((c) => c.startFromEpoch > 0));
    assert.ok(es.some((c) => c.restoreBestWeights) && es.some((c) => !c.restoreBestWeights));
    assert.ok(fixture.earlyStopping.some((c) => c.metrics.includes(null)), 'a missing metric');
    assert.ok(fixture.earlyStopping.some((c) => c.expected.epochs.some((e) => e.stop)), 'a stop');
    assert.ok(fixture.earlyStopping.some((c) => c.expected.finalWeightsEpoch !== c.expected.epochsRun), 'a restore');
    const rp = fixture.reduceLrOnPlateau.map((c) => c.config);
    assert.ok(rp.some((c) => c.cooldown > 0) && rp.some((c) => c.minLr > 0) && rp.some((c) => c.mode === 'max'));
  });
});

void describe('stepEarlyStopping matches keras.callbacks.EarlyStopping', () => {
  for (const c of fixture.earlyStopping) void test(c.name, () => checkEarlyStopping(c));
});

void describe('stepPlateau matches keras.callbacks.ReduceLROnPlateau', () => {
  for (const c of fixture.reduceLrOnPlateau) void test(c.name, () => checkPlateau(c));
});

void describe('continue-as-new: state through JSON mid-sequence gives the same outcome', () => {
  void test('EarlyStopping, after every epoch of every case', () => {
    for (const c of fixture.earlyStopping) {
      for (let k = 1; k <= c.expected.epochsRun; k++) {
        assert.doesNotThrow(() => checkEarlyStopping(c, k), `${c.name}, continued as new after epoch ${k}`);
      }
    }
  });
  void test('ReduceLROnPlateau, after every epoch of every case', () => {
    for (const c of fixture.reduceLrOnPlateau) {
      for (let k = 1; k <= c.metrics.length; k++) {
        assert.doesNotThrow(() => checkPlateau(c, k), `${c.name}, continued as new after epoch ${k}`);
      }
    }
  });
  void test('a NaN best survives JSON (JSON.stringify would turn NaN into null, i.e. "no best yet")', () => {
    const cfg: EarlyStoppingConfig = {
      monitor: 'val_loss', mode: 'min', minDelta: 0, patience: 5, baseline: null, restoreBestWeights: true, startFromEpoch: 0,
    };
    const first = stepEarlyStopping(cfg, initialEarlyStopping(), 1, { val_loss: NaN });
    assert.equal(first.state.best, 'NaN');
    const second = stepEarlyStopping(cfg, roundTrip(first.state), 2, { val_loss: 0.5 });
    assert.equal(second.improved, false, 'nothing improves on a NaN best, as in Keras');
    assert.equal(second.state.wait, 1);
  });
});

void describe('helpers', () => {
  void test('JsonFloat round-trips every float', () => {
    for (const x of [0, -0.5, 1e-30, 3.4e38, NaN, Infinity, -Infinity]) {
      assert.ok(Object.is(fromJsonFloat(roundTrip(toJsonFloat(x))), x), String(x));
    }
  });
  void test('the first monitored epoch is never a stop, even with patience 0 (Keras: best starts as None)', () => {
    const cfg: EarlyStoppingConfig = {
      monitor: 'val_loss', mode: 'min', minDelta: 0, patience: 0, baseline: 0, restoreBestWeights: false, startFromEpoch: 0,
    };
    const step = stepEarlyStopping(cfg, initialEarlyStopping(), 1, { val_loss: 9 });
    assert.deepEqual(
      { stop: step.stop, improved: step.improved, state: step.state },
      { stop: false, improved: true, state: { wait: 1, best: 9, bestEpoch: 1, stoppedEpoch: null } },
    );
  });
});
