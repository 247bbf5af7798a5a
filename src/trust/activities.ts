/**
 * The worker's side of the trust boundary for activities: the `checkUris` local activity that
 * workflows call before anything runs. (Every activity's store opener is guarded by
 * checkpoints/open-store.ts guardedOpenStore, its refusal mapped by activities/failures.ts.)
 */
import type { ConfigIssue } from '../config/validate';
import type { AllowList } from './allow-list';
import { trackingUriProblem, type TrackingAllowList } from './tracking-uris';

/** One URI of an input and the field it came from (`data.train.params.uri`, `trial-2: checkpoint.uri`...). */
export interface UriField {
  readonly field: string;
  readonly uri: string;
  /** `tracking`: an MLflow server, checked against the worker's tracking servers. @default a store URI */
  readonly kind?: 'store' | 'tracking';
}

export interface CheckUrisResult {
  /** One issue per refused URI, in the order given; empty when every URI is allowed. */
  readonly issues: readonly ConfigIssue[];
}

export function createTrustActivities(deps: { readonly allow: AllowList; readonly tracking?: TrackingAllowList }) {
  return {
    /**
     * Checks every URI of an input against the worker's allow-list (normal form, symlinks
     * resolved on this worker). Run as a local activity at workflow start, so a refused URI fails
     * the workflow before any activity task; the workflow turns the issues into InvalidConfig.
     */
    async checkUris(input: { readonly uris: readonly UriField[] }): Promise<CheckUrisResult> {
      const issues: ConfigIssue[] = [];
      for (const { field, uri, kind } of input.uris) {
        if (kind === 'tracking') {
          const problem = trackingUriProblem(uri, deps.tracking ?? {});
          if (problem) issues.push({ field, ...problem });
          continue;
        }
        const r = deps.allow.check(uri);
        if (!r.ok) issues.push({ field, expected: r.expected, received: r.received });
      }
      return { issues };
    },
  };
}

export type TrustActivities = ReturnType<typeof createTrustActivities>;
