/**
 * Writes what a hyperparameter search leaves beside its trials' checkpoints: `results.json` (the
 * whole summary), `results.csv` (one row per trial) and `results.svg` (the metric of every trial).
 */
import { MODEL_DIR, RESULTS_CSV, RESULTS_JSON, RESULTS_SVG, modelJsonKey, rungModelDir } from '../checkpoints/layout';
import type { CheckpointStore } from '../checkpoints/store';
import type { TrialRow } from '../config/search-types';
import type { Mode } from '../config/train-config';
import { storeCall } from './store-and-trainer';
import { escapeXml } from './svg';

export interface SearchResultDeps {
  readonly openStore: (uri: string) => CheckpointStore;
}

export interface WriteSearchResultsInput {
  /** The search's folder, `<root>/<search runId>`. */
  readonly searchUri: string;
  readonly title: string;
  readonly strategy: string;
  readonly metric: string;
  readonly mode: Mode;
  /** Trial number of the winner, or null. */
  readonly bestTrial: number | null;
  readonly trials: readonly TrialRow[];
}

export interface WriteSearchResultsOutput {
  readonly resultsUri: string;
  readonly csvUri: string;
  readonly plotUri: string;
}

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One row per trial; each searched path is a column of its own. */
export function resultsCsv(input: WriteSearchResultsInput): string {
  const paths = [...new Set(input.trials.flatMap((t) => Object.keys(t.params)))];
  const header = ['trial', 'id', 'status', 'rung', 'epochs', 'step', input.metric, ...paths, 'runStatus', 'workflowId', 'modelUri', 'error'];
  const rows = input.trials.map((t) => [
    t.trial, t.id, t.status, t.rung, t.epochs, t.step, t.value, ...paths.map((p) => t.params[p]), t.runStatus, t.workflowId, t.modelUri, t.error,
  ]);
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

const STATUS_COLORS: Record<string, string> = { completed: '#1f77b4', paused: '#1f77b4', pruned: '#aaaaaa', failed: '#d62728' };

/** The metric of every trial that has one, trial number on x; the best is ringed. Dependency-free SVG. */
export function metricByTrialSvg(input: WriteSearchResultsInput): string {
  const width = 720;
  const height = 400;
  const m = { left: 64, right: 24, top: 40, bottom: 48 };
  const points = input.trials.filter((t): t is TrialRow & { value: number } => t.value !== null && Number.isFinite(t.value));
  const n = Math.max(1, ...input.trials.map((t) => t.trial));
  const values = points.map((p) => p.value);
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const span = hi - lo || Math.abs(hi) || 1;
  const x = (trial: number): number => m.left + (n === 1 ? 0.5 : (trial - 1) / (n - 1)) * (width - m.left - m.right);
  const y = (v: number): number => height - m.bottom - ((v - lo) / span) * (height - m.top - m.bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${m.left}" y="24" font-size="14">${escapeXml(input.title)}</text>`,
    `<line x1="${m.left}" y1="${height - m.bottom}" x2="${width - m.right}" y2="${height - m.bottom}" stroke="#333"/>`,
    `<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${height - m.bottom}" stroke="#333"/>`,
    `<text x="${(width + m.left - m.right) / 2}" y="${height - 10}" text-anchor="middle">trial</text>`,
    `<text x="16" y="${(height - m.bottom + m.top) / 2}" transform="rotate(-90 16 ${(height - m.bottom + m.top) / 2})" text-anchor="middle">${escapeXml(`${input.metric} (${input.mode})`)}</text>`,
    `<text x="${m.left - 6}" y="${y(lo) + 4}" text-anchor="end">${lo.toPrecision(3)}</text>`,
    `<text x="${m.left - 6}" y="${y(hi) + 4}" text-anchor="end">${hi.toPrecision(3)}</text>`,
    `<text x="${x(1)}" y="${height - m.bottom + 16}" text-anchor="middle">1</text>`,
    `<text x="${x(n)}" y="${height - m.bottom + 16}" text-anchor="middle">${n}</text>`,
  ];
  for (const p of points) {
    const color = STATUS_COLORS[p.status] ?? '#1f77b4';
    parts.push(`<circle cx="${x(p.trial).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="4" fill="${color}"><title>${escapeXml(`${p.id} ${p.status}: ${p.value}`)}</title></circle>`);
    if (p.trial === input.bestTrial) {
      parts.push(`<circle cx="${x(p.trial).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="8" fill="none" stroke="#2ca02c" stroke-width="2"/>`);
    }
  }
  for (const t of input.trials.filter((t) => t.status === 'failed')) {
    parts.push(`<text x="${x(t.trial).toFixed(1)}" y="${height - m.bottom - 4}" text-anchor="middle" fill="#d62728">×</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}

export interface ArchiveTrialModelInput {
  /** The trial's folder, `<search folder>/trial-<n>`. */
  readonly runUri: string;
  /** The rung whose export is archived. */
  readonly rung: number;
}

export function createSearchResultActivities(deps: SearchResultDeps) {
  return {
    /**
     * Moves a trial's exported model (`model/`) to `rungs/rung-<r>/model/` before a later rung of
     * successive halving continues the same run: trainModel refuses to overwrite an export with
     * different bytes. Copies first, deletes last, so a retry after a crash finds the copy.
     */
    async archiveTrialModel(input: ArchiveTrialModelInput): Promise<{ readonly modelUri: string | null }> {
      const store = deps.openStore(input.runUri);
      const source = `${MODEL_DIR}/`;
      const target = `${rungModelDir(input.rung)}/`;
      return storeCall(async () => {
        for (const key of await store.list(source)) {
          const data = await store.get(key);
          if (data) await store.put(`${target}${key.slice(source.length)}`, data);
        }
        await store.deletePrefix(source);
        const archived = await store.get(modelJsonKey(rungModelDir(input.rung)));
        return { modelUri: archived ? store.uriOf(modelJsonKey(rungModelDir(input.rung))) : null };
      });
    },

    /** Writes results.json, results.csv and results.svg into the search's folder (overwriting: the latest summary wins). */
    async writeSearchResults(input: WriteSearchResultsInput): Promise<WriteSearchResultsOutput> {
      const store = deps.openStore(input.searchUri);
      await storeCall(async () => {
        await store.put(RESULTS_JSON, Buffer.from(JSON.stringify(input, null, 2) + '\n'));
        await store.put(RESULTS_CSV, Buffer.from(resultsCsv(input)));
        await store.put(RESULTS_SVG, Buffer.from(metricByTrialSvg(input)));
      });
      return { resultsUri: store.uriOf(RESULTS_JSON), csvUri: store.uriOf(RESULTS_CSV), plotUri: store.uriOf(RESULTS_SVG) };
    },
  };
}

export type SearchResultActivities = ReturnType<typeof createSearchResultActivities>;
