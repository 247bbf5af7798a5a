/** A pure stand-in for the hyperparameterSearch workflow loop, to drive searchers and schedulers in unit tests. */
import assert from 'node:assert/strict';
import type { SearchConfig } from '../src/config/search-config';
import { createSearch, plannedTrials, type Searcher, type TrialDecision, type TrialScheduler } from '../src/workflows/search';
import { unitDraw } from '../src/workflows/search/random';

const roundTrip = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** A trial's run: its metric, or a failure, or an early stop, as a pure function of (seed, trial, epochs). */
export interface Run {
  readonly failed: boolean;
  readonly value: number;
  readonly epochs: number;
  readonly runStatus: 'completed' | 'early-stopped';
}
export function runOf(seed: number, trial: number, fromEpochs: number, toEpochs: number): Run {
  const u = (what: string) => unitDraw(seed, trial, `${what}@${toEpochs}`);
  const early = u('early') < 0.15 && toEpochs - fromEpochs > 1;
  // Two decimals: ties happen, and are broken by the lower trial number.
  return { failed: u('fail') < 0.08, value: Math.round(u('value') * 20) / 100, epochs: early ? toEpochs - 1 : toEpochs, runStatus: early ? 'early-stopped' : 'completed' };
}

export type Row = { status: string; rung: number; value: number | null; epochs: number; runStatus: string | null };
export interface Outcome {
  /** `<trial>/<rung>` of every run started, in start order. */
  readonly launches: string[];
  readonly rows: Record<number, Row>;
  /** Most runs in flight at once. */
  readonly maxRunning: number;
}

/**
 * Drives a strategy the way the workflow does: suggestions as slots free up, decisions applied in
 * order, promotions queued (later rungs first), runs ending in a seeded order; every `roundTripEvery`
 * results the searcher and scheduler are rebuilt from their JSON state (a continue-as-new).
 */
export function drive(config: SearchConfig, seed: number, maxParallel: number, roundTripEvery = 0): Outcome {
  const planned = plannedTrials(config);
  let parts: { searcher: Searcher; scheduler: TrialScheduler } = createSearch(config, planned);
  const rows: Record<number, Row> = {};
  const queue: Array<{ trial: number; rung: number }> = [];
  const running: Array<{ trial: number; rung: number }> = [];
  const launches: string[] = [];
  const decisions: TrialDecision[] = [];
  let suggested = 0;
  let results = 0;
  let maxRunning = 0;
  for (;;) {
    while (decisions.length > 0) {
      const reached: number[] = [];
      for (const d of decisions.splice(0)) {
        const row = rows[d.trial]!;
        if (d.action === 'promote') {
          const target = parts.scheduler.maxEpochsAt(d.rung)!;
          if (row.runStatus === 'completed' && row.epochs < target) {
            row.status = 'pending';
            queue.push({ trial: d.trial, rung: d.rung });
          } else {
            row.rung = d.rung;
            row.status = 'paused';
            reached.push(d.trial);
          }
        } else {
          row.status = d.action === 'pause' ? 'paused' : d.action === 'stop' ? 'pruned' : 'completed';
        }
      }
      for (const t of reached) decisions.push(...parts.scheduler.onTrialResult(t, { rung: rows[t]!.rung, value: rows[t]!.value, epochs: rows[t]!.epochs, runStatus: rows[t]!.runStatus! }));
    }
    while (running.length < maxParallel) {
      queue.sort((a, b) => b.rung - a.rung || a.trial - b.trial);
      let next = queue.shift();
      if (!next && suggested < planned) {
        const s = parts.searcher.suggest(++suggested);
        assert.equal(s.kind, 'trial');
        rows[suggested] = { status: 'pending', rung: 1, value: null, epochs: 0, runStatus: null };
        next = { trial: suggested, rung: 1 };
      }
      if (!next) break;
      launches.push(`${next.trial}/${next.rung}`);
      rows[next.trial]!.status = 'running';
      running.push(next);
    }
    maxRunning = Math.max(maxRunning, running.length);
    if (running.length === 0) {
      const last = parts.scheduler.onSearchEnd();
      if (last.length === 0) break;
      decisions.push(...last);
      continue;
    }
    const [done] = running.splice(Math.floor(unitDraw(seed, results, 'order') * running.length), 1);
    const row = rows[done!.trial]!;
    const run = runOf(seed, done!.trial, row.epochs, parts.scheduler.maxEpochsAt(done!.rung)!);
    row.rung = done!.rung;
    if (run.failed) {
      Object.assign(row, { status: 'failed', value: null });
      decisions.push(...parts.scheduler.onTrialError(done!.trial, done!.rung));
    } else {
      Object.assign(row, { status: 'completed', value: run.value, epochs: run.epochs, runStatus: run.runStatus });
      decisions.push(...parts.scheduler.onTrialResult(done!.trial, { rung: done!.rung, value: run.value, epochs: run.epochs, runStatus: run.runStatus }));
    }
    if (roundTripEvery > 0 && (results + 1) % roundTripEvery === 0) {
      parts = createSearch(config, planned, roundTrip({ searcher: parts.searcher.getState(), scheduler: parts.scheduler.getState() }));
    }
    results++;
  }
  for (const row of Object.values(rows)) if (row.status === 'paused') row.status = 'pruned';
  return { launches, rows, maxRunning };
}

