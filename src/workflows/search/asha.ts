/**
 * Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel Hyperparameter
 * Tuning", MLSys 2020) as a scheduler. Rungs are successive halving's (`minEpochs`, eta× more each,
 * capped at `base.maxEpochs`), but no rung waits to fill: a trial is promoted as soon as it is among
 * the top floor(n/eta) of the n trials that have reported at its rung, so a slot never idles while
 * a rung's slowest trial finishes. A trial that is not is paused; a later report at its rung may
 * lift it into the top and promote it then. Promoted trials continue their own run (no step twice).
 *
 * One difference from the paper: it looks for a promotable trial when a worker asks for a job; here
 * promotions are decided when a result arrives (as Ray Tune's ASHA does) and wait in the workflow's
 * queue, later rungs first. Both promote the same trials when results arrive one at a time.
 *
 * When the search runs out of work, the trials paused at the highest rung that any trial reached
 * complete (the best of them is the search's best), the rest are pruned.
 */
import type { JsonValue, Rung } from '../../config/search-types';
import { selectSurvivors } from './halving';
import type { SchedulerFactory, TrialDecision, TrialScheduler } from './types';

/** Plain JSON, carried through continue-as-new. */
export interface AshaState {
  /** Epochs at the end of each rung (rung r is index r - 1). */
  readonly epochs: readonly number[];
  /** Per rung, every trial that reported there with a metric (failures are not recorded), in report order. */
  readonly results: Array<Array<{ trial: number; value: number | null }>>;
  /** Per rung, the trials promoted out of it. */
  readonly promoted: number[][];
  /** The search ran out of work and the last decisions were made. */
  ended: boolean;
}

/** Rung budgets: minEpochs, eta× more each, the last one exactly maxEpochs. */
export function ashaEpochs(eta: number, minEpochs: number, maxEpochs: number): number[] {
  const out = [Math.min(minEpochs, maxEpochs)];
  while (out[out.length - 1]! < maxEpochs) out.push(Math.min(out[out.length - 1]! * eta, maxEpochs));
  return out;
}

/** Trials of rung `rung` now in its top floor(n/eta) and not promoted yet, best first. */
export function promotable(state: AshaState, rung: number, eta: number, mode: 'min' | 'max'): number[] {
  const results = state.results[rung - 1] ?? [];
  const promoted = new Set(state.promoted[rung - 1]);
  return selectSurvivors(results, Math.floor(results.length / eta), mode)
    .map((r) => r.trial)
    .filter((t) => !promoted.has(t));
}

export const ashaScheduler: SchedulerFactory = {
  create({ config }, saved: JsonValue | undefined): TrialScheduler {
    const epochs = ashaEpochs(config.eta, config.minEpochs!, config.base.maxEpochs as number);
    const state: AshaState = saved
      ? (JSON.parse(JSON.stringify(saved)) as AshaState)
      : { epochs, results: epochs.map(() => []), promoted: epochs.map(() => []), ended: false };
    const top = state.epochs.length;
    const pausedAt = (rung: number): number[] => {
      const promoted = new Set(state.promoted[rung - 1]);
      return state.results[rung - 1]!.map((r) => r.trial).filter((t) => !promoted.has(t));
    };
    return {
      maxEpochsAt: (rung) => state.epochs[rung - 1],
      onTrialResult(trial, result) {
        const rung = Math.min(result.rung, top);
        state.results[rung - 1]!.push({ trial, value: result.value });
        if (rung === top) return [{ trial, action: 'continue' }];
        const up = promotable(state, rung, config.eta, config.mode);
        state.promoted[rung - 1]!.push(...up);
        const decisions: TrialDecision[] = up.map((t) => ({ trial: t, action: 'promote', rung: rung + 1 }));
        return up.includes(trial) ? decisions : [{ trial, action: 'pause' }, ...decisions];
      },
      onTrialError: () => [],
      onSearchEnd() {
        if (state.ended) return [];
        state.ended = true;
        const highest = state.results.reduce((h, r, i) => (r.length > 0 ? i + 1 : h), 0);
        const decisions: TrialDecision[] = [];
        for (let rung = 1; rung < top; rung++) {
          for (const trial of pausedAt(rung)) decisions.push({ trial, action: rung === highest ? 'continue' : 'stop' });
        }
        return decisions;
      },
      progress: () => {
        const rungs: Rung[] = state.epochs.map((e, i) => ({ rung: i + 1, trials: state.results[i]!.length, epochs: e }));
        const reached = state.promoted.reduce((h, p, i) => (p.length > 0 ? i + 2 : h), 1);
        return { rung: reached, rungs };
      },
      getState: () => JSON.parse(JSON.stringify(state)) as JsonValue,
    };
  },
};
