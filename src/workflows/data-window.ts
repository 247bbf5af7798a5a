/**
 * Resolving data windows in workflow code, once, when a run starts: a `sharded` spec with `window`
 * and no `windowEnd` gets `windowEnd` (the newest partition's UTC day: the nominal day minus
 * `windowLag`) and `uris` (its globs, oldest first), both written into the input itself. What the
 * run trains and evaluates on, its run.json fingerprint, a retrain's child input and champion
 * decision, and every continue-as-new then carry the same resolved window; nothing resolves twice.
 *
 * The nominal time is the schedule's: Temporal sets `TemporalScheduledStartTime` on every run a
 * Schedule starts (its spec time, a trigger's or a backfill's time), so a late or backfilled run reads
 * the partitions of its slot, not of the moment it happened to start; other runs use their start
 * time (`workflowInfo().startTime`). Both are in history, so a replay resolves the same window.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { workflowInfo } from '@temporalio/workflow';
import { DEFAULT_WINDOW_LAG, windowEndAt, windowUris } from '../config/data-window';
import { SHARDED_DATASET } from '../config/sharded-data';

const SCHEDULED_START = defineSearchAttributeKey('TemporalScheduledStartTime', 'DATETIME');

/** The time a run's windows are relative to: its schedule slot, else its start. */
export function nominalTime(): Date {
  const info = workflowInfo();
  return info.typedSearchAttributes.get(SCHEDULED_START) ?? info.startTime;
}

type Json = Readonly<Record<string, unknown>>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** One resolved window, as recorded. */
export interface ResolvedWindow {
  readonly field: 'data.train' | 'data.eval';
  readonly windowEnd: string;
  readonly uris: readonly string[];
}

/**
 * `trainInput` (a validated trainModel input) with the windows of `data.train` and `data.eval`
 * resolved at `at`; undefined when it has none to resolve (a plain URI, or `windowEnd` pinned).
 */
export function resolveDataWindows(trainInput: Json, at: Date): { readonly input: Json; readonly windows: readonly ResolvedWindow[] } | undefined {
  const data = trainInput.data;
  if (!isObject(data)) return undefined;
  const windows: ResolvedWindow[] = [];
  const resolved: Record<string, unknown> = { ...data };
  for (const key of ['train', 'eval'] as const) {
    const spec = data[key];
    if (!isObject(spec) || spec.name !== SHARDED_DATASET || !isObject(spec.params)) continue;
    const p = spec.params;
    if (p.window === undefined || p.windowEnd !== undefined || typeof p.uri !== 'string' || typeof p.window !== 'number') continue;
    const lag = typeof p.windowLag === 'number' ? p.windowLag : DEFAULT_WINDOW_LAG;
    const windowEnd = windowEndAt(at, lag);
    const uris = windowUris(p.uri, windowEnd, p.window);
    resolved[key] = { ...spec, params: { ...p, windowEnd, uris } };
    windows.push({ field: `data.${key}`, windowEnd, uris });
  }
  return windows.length > 0 ? { input: { ...trainInput, data: resolved }, windows } : undefined;
}
