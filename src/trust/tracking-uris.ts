/**
 * Which MLflow servers an input may make the worker call: the worker's own (MLFLOW_TRACKING_URI)
 * and the URL prefixes its operator allows (DT_ALLOWED_TRACKING_URIS). Checked twice with the same
 * rule: by `checkUris` at workflow start (a refused URI fails the run with InvalidConfig before
 * anything trains) and by the tracking activity itself (the last word, whatever called it).
 * Being allowed to receive a run's metrics is not being trusted with the worker's credentials:
 * those go only to the worker's own server (src/activities/tracking.ts, MlflowClient's `credentialsFor`).
 */
import { escapeText } from '../config/validate';

export interface TrackingAllowList {
  readonly mlflowTrackingUri?: string;
  readonly allowedTrackingUris?: readonly string[];
}

/** Why `requested` is refused ({ expected, received }), or undefined when the worker allows it. */
export function trackingUriProblem(requested: string, allow: TrackingAllowList): { expected: string; received: string } | undefined {
  const allowed = [allow.mlflowTrackingUri, ...(allow.allowedTrackingUris ?? [])].filter((u): u is string => !!u);
  if (allowed.some((prefix) => requested === prefix || requested.startsWith(prefix.replace(/\/*$/, '/')))) return undefined;
  return {
    expected: `the worker's MLflow server or under DT_ALLOWED_TRACKING_URIS (${allowed.map(shownServer).join(', ') || 'none configured'})`,
    received: `"${escapeText(requested.slice(0, 200))}"`,
  };
}

/**
 * A configured server as a message may show it, to whoever started the run: scheme, host and path
 * only. An operator's URL may carry credentials (`https://user:token@…`, `?token=`), which must not
 * reach a workflow's history.
 */
function shownServer(uri: string): string {
  try {
    const u = new URL(uri);
    return escapeText(`${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`);
  } catch {
    return '(an entry that is not a URL)';
  }
}
