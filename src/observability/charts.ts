/**
 * Learning curves and search leaderboards as Vega-Lite charts, rendered to SVG in Node by Vega
 * and to PNG by resvg. The chart is data → spec (pure, tested on its own) → SVG → PNG; the same
 * records always give the same bytes.
 *
 * Vega 6 is ESM with top-level await: CommonJS cannot require() it, and TypeScript's CommonJS
 * output turns `import()` into require(), so the modules are loaded through a real dynamic import.
 */
/** A Vega-Lite spec (plain JSON; vega-lite's own types need moduleResolution node16). */
export type TopLevelSpec = Record<string, unknown>;

/** One evaluated epoch, as the run recorded it (metrics/epoch-*.json). */
export interface CurvePoint {
  readonly epoch: number;
  readonly learningRate: number;
  readonly metrics: Readonly<Record<string, number>>;
  /** The training of this epoch resumed from a checkpoint after an interruption this many times. */
  readonly interruptions?: number;
}

export interface CurveMarkers {
  /** The epoch whose checkpoint the run exports (early stopping's best with restoreBestWeights). */
  readonly bestEpoch?: number | null;
  /** The epoch after which early stopping ended the run. */
  readonly earlyStoppedEpoch?: number | null;
}

export type MarkerKind = 'best' | 'lr reduced' | 'early stop' | 'resumed';
export interface Marker {
  readonly epoch: number;
  readonly kind: MarkerKind;
}

const MARKER_COLORS: Record<MarkerKind, string> = { best: '#2ca02c', 'lr reduced': '#9467bd', 'early stop': '#d62728', resumed: '#ff7f0e' };
const MARKER_KINDS = Object.keys(MARKER_COLORS) as MarkerKind[];
const WIDTH = 640;
const PANEL_HEIGHT = 170;

/** Every marker the records and the run's outcome imply, in epoch order. */
export function curveMarkers(points: readonly CurvePoint[], markers: CurveMarkers = {}): Marker[] {
  const out: Marker[] = [];
  points.forEach((p, i) => {
    const prev = points[i - 1];
    if (prev && p.learningRate < prev.learningRate) out.push({ epoch: p.epoch, kind: 'lr reduced' });
    if ((p.interruptions ?? 0) > 0) out.push({ epoch: p.epoch, kind: 'resumed' });
  });
  if (markers.bestEpoch != null) out.push({ epoch: markers.bestEpoch, kind: 'best' });
  if (markers.earlyStoppedEpoch != null) out.push({ epoch: markers.earlyStoppedEpoch, kind: 'early stop' });
  return out.sort((a, b) => a.epoch - b.epoch || a.kind.localeCompare(b.kind));
}

const isLoss = (name: string): boolean => /(^|_)loss$/.test(name);

function panel(title: string, rows: object[], markers: Marker[], y: object, line: object = {}, legend = true): object {
  return {
    title: { text: title, anchor: 'start', fontSize: 12 },
    width: WIDTH,
    height: PANEL_HEIGHT,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'line', point: rows.length <= 60, ...line },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
          y: { field: 'value', type: 'quantitative', ...y },
          color: { field: 'series', type: 'nominal', title: null, scale: { scheme: 'category10' } },
        },
      },
      {
        data: { values: markers },
        mark: { type: 'rule', strokeDash: [4, 3], strokeWidth: 1.5 },
        encoding: {
          x: { field: 'epoch', type: 'quantitative' },
          stroke: {
            field: 'kind',
            type: 'nominal',
            title: 'markers',
            ...(!legend && { legend: null }),
            scale: { domain: MARKER_KINDS, range: Object.values(MARKER_COLORS) },
          },
        },
      },
      // Markers that share an epoch (best and resumed, say) would hide each other's rule: a row of
      // symbols along the top, one lane per kind, keeps every one visible.
      {
        data: { values: markers.map((m) => ({ ...m, lane: 4 + 7 * MARKER_KINDS.indexOf(m.kind) })) },
        mark: { type: 'point', filled: true, size: 45, opacity: 1 },
        encoding: {
          x: { field: 'epoch', type: 'quantitative' },
          y: { field: 'lane', type: 'quantitative', scale: null },
          fill: { field: 'kind', type: 'nominal', legend: null, scale: { domain: MARKER_KINDS, range: Object.values(MARKER_COLORS) } },
          shape: { field: 'kind', type: 'nominal', legend: null, scale: { domain: MARKER_KINDS, range: ['diamond', 'triangle-down', 'square', 'circle'] } },
          tooltip: [{ field: 'kind' }, { field: 'epoch' }],
        },
      },
    ],
    resolve: { scale: { color: 'independent', stroke: 'independent', fill: 'independent', shape: 'independent', y: 'independent' } },
  };
}

/** The Vega-Lite spec: a loss panel (train and validation on one axis), a metric panel, the learning rate. */
export function learningCurveSpec(title: string, points: readonly CurvePoint[], markers: CurveMarkers = {}): TopLevelSpec {
  const names = [...new Set(points.flatMap((p) => Object.keys(p.metrics)))].sort();
  const rowsOf = (keep: (n: string) => boolean) =>
    points.flatMap((p) => names.filter(keep).flatMap((n) => (Number.isFinite(p.metrics[n]) ? [{ epoch: p.epoch, series: n, value: p.metrics[n] }] : [])));
  const all = curveMarkers(points, markers);
  const panels = [panel('loss', rowsOf(isLoss), all, { title: 'loss', scale: { zero: false } })];
  const others = rowsOf((n) => !isLoss(n));
  if (others.length > 0) panels.push(panel('metrics', others, all, { title: 'value', scale: { zero: false } }, {}, false));
  const lrs = points.map((p) => p.learningRate).filter((v) => v > 0);
  const logScale = lrs.length > 0 && Math.max(...lrs) / Math.min(...lrs) >= 10;
  panels.push(
    panel('learning rate', points.map((p) => ({ epoch: p.epoch, series: 'learning rate', value: p.learningRate })), all, {
      title: 'learning rate',
      scale: logScale ? { type: 'log' } : { zero: false },
      axis: { format: '~e' },
    }, { interpolate: 'step-after' }, false),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start' },
    background: 'white',
    padding: 12,
    config: { font: 'DejaVu Sans, Arial, sans-serif', legend: { orient: 'right' } },
    vconcat: panels,
  };
}

export interface LeaderboardRow {
  readonly trial: string;
  readonly value: number | null;
  /** Successive halving: the last rung the trial reached. */
  readonly rung: number;
  readonly status: string;
}

/** One bar per trial (the ranked metric), coloured by the rung it reached, best first. */
export function leaderboardSpec(title: string, metric: string, mode: 'min' | 'max', rows: readonly LeaderboardRow[]): TopLevelSpec {
  const values = rows.filter((r) => r.value !== null && Number.isFinite(r.value));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start' },
    background: 'white',
    padding: 12,
    config: { font: 'DejaVu Sans, Arial, sans-serif' },
    width: WIDTH,
    height: { step: 16 },
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'trial', type: 'nominal', sort: { field: 'value', order: mode === 'min' ? 'ascending' : 'descending' }, title: null },
      x: { field: 'value', type: 'quantitative', title: `${metric} (${mode === 'min' ? 'lower' : 'higher'} is better)`, scale: { zero: false } },
      color: { field: 'rung', type: 'ordinal', title: 'rung reached', scale: { scheme: 'blues' } },
      tooltip: [{ field: 'trial' }, { field: 'value' }, { field: 'rung' }, { field: 'status' }],
    },
  };
}

const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<any>;

/** Compiles a Vega-Lite spec and renders it to SVG (no browser, no canvas). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, vegaLite] = await Promise.all([importEsm('vega'), importEsm('vega-lite')]);
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders SVG to PNG at `width` pixels with the system's fonts. */
export async function renderPng(svg: string, width = 1280): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  return Buffer.from(new Resvg(svg, { fitTo: { mode: 'width', value: width }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng());
}
