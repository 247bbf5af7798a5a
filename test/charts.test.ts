import assert from 'node:assert/strict';
import { test } from 'node:test';
import { curveMarkers, leaderboardSpec, learningCurveSpec, renderPng, renderSvg, type CurvePoint } from '../src/observability/charts';

// A run that was interrupted in epoch 3, had its learning rate cut before epoch 5 and stopped early.
const points: CurvePoint[] = [1, 2, 3, 4, 5, 6].map((epoch) => ({
  epoch,
  learningRate: epoch < 5 ? 0.01 : 0.001,
  metrics: { loss: 2 / epoch, val_loss: 2.2 / epoch + (epoch > 4 ? 0.3 : 0), val_accuracy: 0.5 + epoch / 20 },
  interruptions: epoch === 3 ? 1 : 0,
}));

test('markers: learning-rate cuts and resumes come from the records, best and early stop from the outcome', () => {
  assert.deepEqual(curveMarkers(points, { bestEpoch: 4, earlyStoppedEpoch: 6 }), [
    { epoch: 3, kind: 'resumed' },
    { epoch: 4, kind: 'best' },
    { epoch: 5, kind: 'lr reduced' },
    { epoch: 6, kind: 'early stop' },
  ]);
  assert.deepEqual(curveMarkers([]), []);
});

test('the spec puts train and validation loss on one axis, metrics apart, and the learning rate as a step line', () => {
  const spec = learningCurveSpec('run', points) as any;
  const [loss, metrics, lr] = spec.vconcat;
  assert.deepEqual([...new Set(loss.layer[0].data.values.map((r: any) => r.series))], ['loss', 'val_loss']);
  assert.deepEqual([...new Set(metrics.layer[0].data.values.map((r: any) => r.series))], ['val_accuracy']);
  assert.equal(lr.layer[0].mark.interpolate, 'step-after');
  assert.equal(lr.layer[0].encoding.y.scale.type, 'log', 'a 10x learning-rate range is drawn on a log axis');
});

test('rendered SVG has real axes with values and every marker; PNG is a real image of the requested width', async () => {
  const svg = await renderSvg(learningCurveSpec('mnist run', points, { bestEpoch: 4, earlyStoppedEpoch: 6 }));
  for (const text of ['mnist run', '>loss<', '>val_loss<', '>val_accuracy<', '>learning rate<', '>epoch<', '>resumed<', '>lr reduced<', '>best<', '>early stop<']) {
    assert.ok(svg.includes(text), `SVG should contain ${text}`);
  }
  // y-axis tick labels of the loss panel are numbers (the old plot had none)
  assert.match(svg, />0\.[2-9]</);
  assert.equal(await renderSvg(learningCurveSpec('mnist run', points, { bestEpoch: 4, earlyStoppedEpoch: 6 })), svg, 'deterministic');
  const png = await renderPng(svg, 800);
  assert.equal(png.subarray(1, 4).toString('ascii'), 'PNG');
  assert.equal(png.readUInt32BE(16), 800, 'width from the IHDR chunk');
  assert.ok(png.length > 20_000 && png.length < 400_000, `PNG of ${png.length} bytes`);
});

test('the leaderboard ranks trials by the metric and colours the rung each reached', async () => {
  const rows = [
    { trial: 'trial-1', value: 0.4, rung: 1, status: 'pruned' },
    { trial: 'trial-2', value: 0.2, rung: 2, status: 'completed' },
    { trial: 'trial-3', value: null, rung: 1, status: 'failed' },
  ];
  const spec = leaderboardSpec('search', 'val_loss', 'min', rows) as any;
  assert.deepEqual(spec.data.values.map((r: any) => r.trial), ['trial-1', 'trial-2'], 'a failed trial has no bar');
  assert.equal(spec.encoding.y.sort.order, 'ascending');
  const svg = await renderSvg(spec);
  assert.ok(svg.includes('>trial-2<') && svg.includes('rung reached'));
});
