/**
 * The null scheduler (Ray's FIFOScheduler): every trial runs once, to the base input's `maxEpochs`,
 * and is completed when its run ends. Grid and random searches use it.
 */
import type { Rung } from '../../config/search-types';
import type { SchedulerFactory, TrialScheduler } from './types';

export const fifoScheduler: SchedulerFactory = {
  create({ config, plannedTrials }): TrialScheduler {
    const epochs = typeof config.base.maxEpochs === 'number' ? config.base.maxEpochs : 0;
    const rungs: readonly Rung[] = [{ rung: 1, trials: plannedTrials, epochs }];
    return {
      maxEpochsAt: () => undefined,
      onTrialResult: (trial) => [{ trial, action: 'continue' }],
      onTrialError: () => [],
      onSearchEnd: () => [],
      progress: () => ({ rung: 1, rungs }),
      getState: () => null,
    };
  },
};
