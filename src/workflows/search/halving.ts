/**
 * Synchronous successive halving (Jamieson & Talwalkar 2016) as a scheduler: every trial runs
 * `minEpochs`; when the last trial of a rung has reported, the best floor(n/eta) are promoted to
 * eta× the epochs (capped at `base.maxEpochs`) and continue their own runs, the rest are pruned,
 * until one trial is left or the budget reaches `maxEpochs`. A trial waits (paused) at its rung
 * until the rung is full.
 */
import type { Mode } from '../../config/train-config';
import type { JsonValue, Rung } from '../../config/search-types';
import { rankTrials, type Ranked } from '../search-space';
import type { SchedulerFactory, TrialDecision, TrialScheduler } from './types';

/**
 * Successive halving's rungs: all `trials` run `minEpochs`, then the best floor(n/eta) go on with
 * eta× the epochs (capped at `maxEpochs`), until one trial is left or the budget reaches `maxEpochs`.
 */
export function halvingSchedule(trials: number, eta: number, minEpochs: number, maxEpochs: number): Rung[] {
  const rungs: Rung[] = [{ rung: 1, trials, epochs: Math.min(minEpochs, maxEpochs) }];
  for (;;) {
    const last = rungs[rungs.length - 1]!;
    const next = Math.floor(last.trials / eta);
    if (next < 1 || last.trials <= 1 || last.epochs >= maxEpochs) return rungs;
    rungs.push({ rung: last.rung + 1, trials: next, epochs: Math.min(last.epochs * eta, maxEpochs) });
  }
}

/** The best `keep` trials that have a metric (a trial without one never survives). */
export function selectSurvivors<T extends Ranked>(trials: readonly T[], keep: number, mode: Mode): T[] {
  return rankTrials(trials, mode)
    .filter((t) => t.value !== null && Number.isFinite(t.value))
    .slice(0, Math.max(0, keep));
}

/** Plain JSON, carried through continue-as-new. */
export interface HalvingState {
  readonly rungs: readonly Rung[];
  /** The rung being run (1-based). */
  rung: number;
  /** Trials that will report at this rung: all planned ones at rung 1, then the promoted ones. */
  expected: number;
  /** Results at this rung so far (failed runs: value null, `failed`), in report order. */
  reported: Array<{ trial: number; value: number | null; failed: boolean }>;
}

export function halvingDecide(state: HalvingState, mode: Mode): TrialDecision[] {
  if (state.reported.length < state.expected) return [];
  const next = state.rungs[state.rung];
  if (!next) return [];
  // Trial order, as the rung's trials were numbered: promotions start (and archive) in that order.
  const candidates = state.reported.filter((r) => !r.failed).sort((a, b) => a.trial - b.trial);
  const survivors = new Set(selectSurvivors(candidates, next.trials, mode).map((r) => r.trial));
  const decisions: TrialDecision[] = candidates.map(({ trial }) =>
    survivors.has(trial) ? { trial, action: 'promote', rung: next.rung } : { trial, action: 'stop' },
  );
  if (survivors.size > 0) {
    state.rung = next.rung;
    state.expected = survivors.size;
    state.reported = [];
  }
  return decisions;
}

export const halvingScheduler: SchedulerFactory = {
  create({ config, plannedTrials }, saved: JsonValue | undefined): TrialScheduler {
    const state: HalvingState = saved
      ? (JSON.parse(JSON.stringify(saved)) as HalvingState)
      : {
          rungs: halvingSchedule(plannedTrials, config.eta, config.minEpochs!, config.base.maxEpochs as number),
          rung: 1,
          expected: plannedTrials,
          reported: [],
        };
    const isLast = (): boolean => state.rung >= state.rungs.length;
    return {
      maxEpochsAt: (rung) => state.rungs[rung - 1]?.epochs,
      onTrialResult(trial, result) {
        if (isLast()) return [{ trial, action: 'continue' }];
        state.reported.push({ trial, value: result.value, failed: false });
        const decisions = halvingDecide(state, config.mode);
        return decisions.some((d) => d.trial === trial) ? decisions : [{ trial, action: 'pause' }, ...decisions];
      },
      onTrialError(trial) {
        if (isLast()) return [];
        state.reported.push({ trial, value: null, failed: true });
        return halvingDecide(state, config.mode);
      },
      // Every rung decides all of its trials when it fills: none is left waiting.
      onSearchEnd: () => [],
      progress: () => ({ rung: state.rung, rungs: state.rungs }),
      getState: () => JSON.parse(JSON.stringify(state)) as JsonValue,
    };
  },
};
