/** `tracking` in a trainModel input: where the run's metrics go besides its own folder. */
import type { Checker } from './validate';

export interface TrackingConfig {
  /** MLflow: the worker's MLFLOW_TRACKING_URI unless `uri` names another server the worker allows. */
  readonly mlflow?: {
    readonly uri?: string;
    /** @default `durable-train` */
    readonly experiment?: string;
    /** Set by hyperparameterSearch: the search's MLflow run, which its trials nest under. */
    readonly parentRunId?: string;
  };
}

/** Parses `tracking`; reports every bad field on `c`. */
export function parseTracking(c: Checker, value: unknown): TrackingConfig | undefined {
  const o = c.object('tracking', value, false);
  if (!o) return undefined;
  c.noUnknownKeys('tracking', o, ['mlflow']);
  const m = c.object('tracking.mlflow', o.mlflow, false);
  if (!m) return {};
  c.noUnknownKeys('tracking.mlflow', m, ['uri', 'experiment', 'parentRunId']);
  const uri = c.string('tracking.mlflow.uri', m.uri, { required: false });
  if (uri !== undefined && (!/^https?:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/.test(uri) || /\/\.\.?(\/|$)|%/.test(uri) || uri.length > 2000)) {
    // Never echo credentials a user put in the URL.
    c.fail('tracking.mlflow.uri', 'an http(s) URL without credentials, query, fragment, `.`/`..` segments or percent-escapes', uri.slice(0, 200).replace(/\/\/[^/]*@/, '//***@'));
  }
  const experiment = c.string('tracking.mlflow.experiment', m.experiment, { required: false });
  if (experiment !== undefined && experiment.length > 500) c.fail('tracking.mlflow.experiment', 'at most 500 characters', experiment);
  const parentRunId = c.string('tracking.mlflow.parentRunId', m.parentRunId, { required: false });
  if (parentRunId !== undefined && !/^[A-Za-z0-9]{1,64}$/.test(parentRunId)) c.fail('tracking.mlflow.parentRunId', 'an MLflow run id', parentRunId);
  return {
    mlflow: {
      ...(uri !== undefined && { uri }),
      ...(experiment !== undefined && { experiment }),
      ...(parentRunId !== undefined && { parentRunId }),
    },
  };
}
