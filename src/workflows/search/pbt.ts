/**
 * Population-based training (Jaderberg et al. 2017, "Population Based Training of Neural
 * Networks") as a scheduler. The searcher's first `maxTrials` trials are the population; they train
 * in rounds of `roundEpochs` epochs (rungs in the trial table; the last one ends at `base.maxEpochs`).
 * When every living trial has reported a round, the bottom `quantile` of the round's ranking
 * exploits: it takes a copy of a top-`quantile` trial's checkpoint at the round's step (weights and
 * optimizer state, copied through the store by the workflow) and explores: every searched value of
 * the donor is perturbed (×0.8 or ×1.2 within its range; a list's neighbouring value), the learning
 * rate reaching the restored optimizer as ReduceLROnPlateau's does. Everyone else continues its own run.
 *
 * Rounds are synchronous (a round is decided when all of it has reported), so the decisions depend
 * on the results only, never on the order they arrived in: a search restarted at any moment decides
 * exactly as an uninterrupted one. Donors and perturbations are pure functions of (seed, round,
 * trial). A trial whose run ended before the round's epochs (early-stopped, stopped) is ranked but
 * is never a donor (it has no checkpoint at the round's step), and leaves the population.
 */
import type { Mode } from '../../config/train-config';
import type { SearchConfig, SpaceEntry } from '../../config/search-config';
import type { JsonValue, Rung, TrialParams } from '../../config/search-types';
import { describe, type ConfigIssue } from '../../config/validate';
import { rankTrials } from '../search-space';
import { unitDraw } from './random';
import type { SchedulerFactory, TrialDecision, TrialScheduler } from './types';

export interface PbtReport {
  readonly trial: number;
  readonly value: number | null;
  /** Its run trained to the round's epochs and completed: it has a committed checkpoint there. */
  readonly eligible: boolean;
  readonly params: TrialParams;
}

/** Plain JSON, carried through continue-as-new. */
export interface PbtState {
  /** Epochs at the end of each round (round r is index r - 1). */
  readonly epochs: readonly number[];
  /** Trials still training: not failed, not stopped, not ended before a round's epochs. */
  alive: number[];
  /** Per round, every report, in arrival order. */
  readonly reports: PbtReport[][];
  /** The last round decided (0: none): a round is decided once. */
  decided: number;
}

/** Round budgets: roundEpochs, twice that, …, the last one exactly maxEpochs. */
export function pbtEpochs(roundEpochs: number, maxEpochs: number): number[] {
  const out: number[] = [];
  for (let e = roundEpochs; e < maxEpochs; e += roundEpochs) out.push(e);
  return [...out, maxEpochs];
}

/**
 * Population × rounds: every round's reports (and the exploits among them, the lineage) are kept in
 * the search's state, which continue-as-new carries whole within Temporal's 2 MB payload.
 */
export const MAX_PBT_REPORTS = 5000;

/** The issue of a PBT search whose reports and lineage would outgrow workflow state (checked at its start). */
export function pbtBoundIssues(config: Pick<SearchConfig, 'strategy' | 'roundEpochs' | 'base'>, population: number): ConfigIssue[] {
  const maxEpochs = config.base.maxEpochs;
  if (config.strategy !== 'pbt' || config.roundEpochs === undefined || typeof maxEpochs !== 'number') return [];
  const rounds = Math.ceil(maxEpochs / config.roundEpochs);
  if (population * rounds <= MAX_PBT_REPORTS) return [];
  const fewest = Math.ceil(maxEpochs / Math.max(1, Math.floor(MAX_PBT_REPORTS / population)));
  return [{
    field: 'roundEpochs',
    expected: `a whole number that keeps population × rounds within ${MAX_PBT_REPORTS} (every round's reports and exploits are kept in workflow state): with ${population} trials and \`base.maxEpochs\` ${maxEpochs}, at least ${fewest}`,
    received: `${describe(config.roundEpochs)}: ${rounds} rounds`,
  }];
}

const PERTURB = [0.8, 1.2] as const;

/** One searched value, moved a little: a pure function of (seed, round, trial, path). */
export function perturbValue(entry: SpaceEntry, value: unknown, u: number): unknown {
  const { dimension: d } = entry;
  const up = u >= 0.5;
  if (d.kind === 'values' || d.kind === 'choice') {
    const i = d.values.findIndex((v) => JSON.stringify(v) === JSON.stringify(value));
    if (i < 0) return value;
    return d.values[Math.min(d.values.length - 1, Math.max(0, i + (up ? 1 : -1)))];
  }
  if (typeof value !== 'number') return value;
  const moved = value * PERTURB[up ? 1 : 0];
  const clamped = Math.min(d.hi, Math.max(d.lo, moved));
  return d.kind === 'int' ? Math.min(d.hi, Math.max(d.lo, Math.round(clamped) === value ? value + (up ? 1 : -1) : Math.round(clamped))) : clamped;
}

export function perturbParams(space: readonly SpaceEntry[], params: TrialParams, seed: number, round: number, trial: number): TrialParams {
  const out: Record<string, unknown> = { ...params };
  for (const entry of space) {
    if (entry.path in params) out[entry.path] = perturbValue(entry, params[entry.path], unitDraw(seed, trial, `pbt/${round}/${entry.path}`));
  }
  return out;
}

export interface RoundOptions {
  readonly round: number;
  readonly quantile: number;
  readonly mode: Mode;
  readonly seed: number;
  readonly space: readonly SpaceEntry[];
}

/**
 * The decisions at the end of round `round` for its eligible trials (trial order): the bottom
 * quantile exploits a random eligible trial of the top quantile and explores; the rest go on.
 * No eligible donor: the bottom goes on as it is.
 */
export function pbtRound(reports: readonly PbtReport[], o: RoundOptions): TrialDecision[] {
  const ranked = rankTrials(reports, o.mode);
  const k = ranked.length >= 2 ? Math.max(1, Math.floor(ranked.length * o.quantile)) : 0;
  const top = ranked.slice(0, k);
  const bottom = new Set(ranked.slice(ranked.length - k).map((r) => r.trial));
  const donors = top.filter((r) => r.eligible);
  const next = o.round + 1;
  return reports
    .filter((r) => r.eligible)
    .sort((a, b) => a.trial - b.trial)
    .map((r): TrialDecision => {
      if (!bottom.has(r.trial) || top.includes(r) || donors.length === 0) return { trial: r.trial, action: 'promote', rung: next };
      const donor = donors[Math.floor(unitDraw(o.seed, r.trial, `pbt/${o.round}/donor`) * donors.length)]!;
      return { trial: r.trial, action: 'exploit', rung: next, from: donor.trial, params: perturbParams(o.space, donor.params, o.seed, o.round, r.trial) };
    });
}

function roundOptions(config: SearchConfig, round: number): RoundOptions {
  return { round, quantile: config.quantile, mode: config.mode, seed: config.seed, space: config.space };
}

export const pbtScheduler: SchedulerFactory = {
  create({ config, plannedTrials }, saved: JsonValue | undefined): TrialScheduler {
    const epochs = pbtEpochs(config.roundEpochs!, config.base.maxEpochs as number);
    const state: PbtState = saved
      ? (JSON.parse(JSON.stringify(saved)) as PbtState)
      : { epochs, alive: Array.from({ length: plannedTrials }, (_, i) => i + 1), reports: epochs.map(() => []), decided: 0 };
    const top = state.epochs.length;
    /** The round's decisions once every living trial has reported it. */
    const decideIfComplete = (round: number): TrialDecision[] => {
      const reports = state.reports[round - 1]!;
      const reported = new Set(reports.map((r) => r.trial));
      if (round >= top || round <= state.decided || !state.alive.every((t) => reported.has(t))) return [];
      state.decided = round;
      const decided = pbtRound(reports, roundOptions(config, round));
      return decided.filter((d) => state.alive.includes(d.trial));
    };
    return {
      maxEpochsAt: (rung) => state.epochs[rung - 1],
      onTrialResult(trial, result) {
        const round = Math.min(result.rung, top);
        if (round === top) return [{ trial, action: 'continue' }];
        const eligible = result.runStatus === 'completed' && result.epochs === state.epochs[round - 1];
        state.reports[round - 1]!.push({ trial, value: result.value, eligible, params: result.params ?? {} });
        if (!eligible) state.alive = state.alive.filter((t) => t !== trial);
        const decisions = decideIfComplete(round);
        const own: TrialDecision[] = eligible ? (decisions.some((d) => d.trial === trial) ? [] : [{ trial, action: 'pause' }]) : [{ trial, action: 'continue' }];
        return [...own, ...decisions];
      },
      onTrialError(trial, rung) {
        state.alive = state.alive.filter((t) => t !== trial);
        return decideIfComplete(Math.min(rung, top));
      },
      onSearchEnd: () => [],
      progress: () => {
        const rungs: Rung[] = state.epochs.map((e, i) => ({ rung: i + 1, trials: state.reports[i]!.length, epochs: e }));
        const reached = state.reports.reduce((h, r, i) => (r.length > 0 ? i + 1 : h), 1);
        return { rung: reached, rungs };
      },
      getState: () => JSON.parse(JSON.stringify(state)) as JsonValue,
    };
  },
};
