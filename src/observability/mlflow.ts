/**
 * MLflow tracking through its REST API (no Python on the worker), exactly once:
 * - one MLflow run per durable-train run: it is found again by a tag holding the run's key before a
 *   new one is created, so a retried activity, a restarted worker or continue-as-new never forks it;
 * - params are logged once, when the MLflow run is created;
 * - metrics are logged by step, and only the (key, step) pairs the MLflow run does not have yet, with
 *   the timestamp the epoch was first recorded at: a resumed epoch never adds a second point.
 * Credentials come from the worker's environment (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME
 * and MLFLOW_TRACKING_PASSWORD), never from a workflow input, and are never put in a message. They
 * belong to one server: they are sent only to the origin of the tracking URI they were configured
 * for (MLFLOW_TRACKING_URI), never to another server an input may name, and no redirect is followed
 * (a server that answers 3xx would otherwise receive the request, and on the same origin the
 * credentials, wherever it points).
 */
import { escapeText } from '../config/validate';

/** A metric series point as MLflow stores it. */
export interface MlflowMetric {
  readonly key: string;
  readonly value: number;
  readonly step: number;
  /** Milliseconds since the Unix epoch. */
  readonly timestamp: number;
}

export type MlflowRunStatus = 'RUNNING' | 'FINISHED' | 'FAILED' | 'KILLED';

/** The tag that names the durable-train run an MLflow run belongs to. */
export const RUN_KEY_TAG = 'durable_train.run_key';

/** An MLflow API failure. `retryable`: the server was unreachable or answered 5xx/429. */
export class MlflowError extends Error {
  override readonly name = 'MlflowError';
  constructor(message: string, readonly retryable: boolean) {
    super(message);
  }
}

/** The origin (`scheme://host:port`) of a URL, or undefined when it is not one. */
function originOf(uri: string | undefined): string | undefined {
  if (!uri) return undefined;
  try {
    const origin = new URL(uri).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

function authHeaders(env: NodeJS.ProcessEnv): Record<string, string> {
  if (env.MLFLOW_TRACKING_TOKEN) return { authorization: `Bearer ${env.MLFLOW_TRACKING_TOKEN}` };
  if (env.MLFLOW_TRACKING_USERNAME) {
    const basic = Buffer.from(`${env.MLFLOW_TRACKING_USERNAME}:${env.MLFLOW_TRACKING_PASSWORD ?? ''}`).toString('base64');
    return { authorization: `Basic ${basic}` };
  }
  return {};
}

/** MLflow's search filter quotes a string with single quotes; a quote inside is escaped. */
const quote = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

export interface MlflowClientOptions {
  /** Where credentials are read from. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Longest one request may take, ms. @default 30000 */
  readonly timeoutMs?: number;
  /**
   * The tracking URI the credentials were configured for: they are sent only when this client's
   * server has the same origin; `null` sends none. @default `env.MLFLOW_TRACKING_URI`
   */
  readonly credentialsFor?: string | null;
}

export class MlflowClient {
  private readonly base: string;
  /** True when the environment's credentials belong to this server (same origin as `credentialsFor`). */
  private readonly sendsCredentials: boolean;

  constructor(trackingUri: string, private readonly options: MlflowClientOptions = {}) {
    const url = new URL(trackingUri);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new MlflowError(`Expected an http(s) MLflow tracking URI, got ${JSON.stringify(trackingUri.slice(0, 100))}`, false);
    }
    if (url.username || url.password || url.search || url.hash) {
      throw new MlflowError('The MLflow tracking URI must carry no credentials, query or fragment: credentials go in the worker environment', false);
    }
    this.base = url.href.replace(/\/+$/, '');
    const owner = options.credentialsFor === undefined ? (options.env ?? process.env).MLFLOW_TRACKING_URI : options.credentialsFor;
    this.sendsCredentials = owner !== null && originOf(owner) === url.origin;
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, allow404 = false): Promise<T | undefined> {
    const url = `${this.base}/api/2.0/mlflow/${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { 'content-type': 'application/json', ...(this.sendsCredentials && authHeaders(this.options.env ?? process.env)) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        // A redirect is answered, never followed: the request (and its credentials) goes to the configured server only.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new MlflowError(`MLflow at ${this.base} did not answer ${path.split('?')[0]}: ${(err as Error).message}`, true);
    }
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel().catch(() => undefined);
      let to: string | undefined;
      try {
        to = originOf(new URL(res.headers.get('location') ?? '', url).href);
      } catch {
        to = undefined; // not a URL: the message says where it was sent, not where it pointed
      }
      const where = to ? ` to ${escapeText(to.slice(0, 200))}` : '';
      throw new MlflowError(
        `MLflow at ${this.base} answered ${path.split('?')[0]} with a redirect (${res.status}${where}): redirects are refused, so set the tracking URI to the server that answers`,
        false,
      );
    }
    if (res.status === 404 && allow404) return undefined;
    if (!res.ok) {
      // Only MLflow's own error code: a response body (an HTML page, say) never goes into a message.
      const body = (await res.json().catch(() => null)) as { error_code?: unknown } | null;
      const code = typeof body?.error_code === 'string' ? ` ${body.error_code.slice(0, 64)}` : '';
      throw new MlflowError(`MLflow ${path.split('?')[0]} answered ${res.status}${code}`, res.status >= 500 || res.status === 429);
    }
    return (await res.json()) as T;
  }

  /** The id of experiment `name`, created when missing. */
  async experimentId(name: string): Promise<string> {
    const found = await this.call<{ experiment: { experiment_id: string } }>('GET', `experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`, undefined, true);
    if (found) return found.experiment.experiment_id;
    try {
      const created = await this.call<{ experiment_id: string }>('POST', 'experiments/create', { name });
      return created!.experiment_id;
    } catch (err) {
      // Created meanwhile by another worker: read it again.
      const again = await this.call<{ experiment: { experiment_id: string } }>('GET', `experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`, undefined, true);
      if (again) return again.experiment.experiment_id;
      throw err;
    }
  }

  /** The MLflow run tagged with `runKey` in the experiment, if there is one. */
  async findRun(experimentId: string, runKey: string): Promise<string | undefined> {
    const res = await this.call<{ runs?: Array<{ info: { run_id: string; start_time?: number } }> }>('POST', 'runs/search', {
      experiment_ids: [experimentId],
      filter: `tags.\`${RUN_KEY_TAG}\` = ${quote(runKey)}`,
      max_results: 10,
      order_by: ['attributes.start_time ASC'],
    });
    return res?.runs?.[0]?.info.run_id;
  }

  /**
   * The one MLflow run of `runKey`: found again, or created with its params and tags (a child of
   * `parentRunId` when given: a search's trials nest under the search).
   */
  async ensureRun(o: {
    experimentId: string;
    runKey: string;
    runName: string;
    startTime: number;
    params: Readonly<Record<string, string>>;
    tags?: Readonly<Record<string, string>>;
    parentRunId?: string;
  }): Promise<{ runId: string; created: boolean }> {
    const existing = await this.findRun(o.experimentId, o.runKey);
    if (existing) return { runId: existing, created: false };
    if (o.parentRunId) await this.checkParent(o.parentRunId, o.experimentId);
    const tags = { ...o.tags, [RUN_KEY_TAG]: o.runKey, 'mlflow.runName': o.runName, ...(o.parentRunId && { 'mlflow.parentRunId': o.parentRunId }) };
    const res = await this.call<{ run: { info: { run_id: string } } }>('POST', 'runs/create', {
      experiment_id: o.experimentId,
      run_name: o.runName,
      start_time: o.startTime,
      tags: Object.entries(tags).map(([key, value]) => ({ key, value })),
    });
    const runId = res!.run.info.run_id;
    // MLflow caps a param value at 6000 characters and a batch at 100 params.
    const params = Object.entries(o.params).map(([key, value]) => ({ key, value: value.slice(0, 6000) }));
    for (let i = 0; i < params.length; i += 100) await this.call('POST', 'runs/log-batch', { run_id: runId, params: params.slice(i, i + 100) });
    return { runId, created: true };
  }

  /**
   * A parent must be a durable-train run (it has a run key) of the same experiment: an input's
   * `parentRunId` must not hang runs under someone else's MLflow run, or under another experiment's.
   */
  private async checkParent(parentRunId: string, experimentId: string): Promise<void> {
    let parent: { run: { info: { experiment_id?: string }; data: { tags?: Array<{ key: string; value: string }> } } } | undefined;
    try {
      parent = await this.call('GET', `runs/get?run_id=${encodeURIComponent(parentRunId)}`, undefined, true);
    } catch (err) {
      // MLflow answers an unknown run id with 400 or 404 depending on the version: either is "no such run".
      if (!(err instanceof MlflowError) || err.retryable) throw err;
    }
    const isOurs = parent?.run.data.tags?.some((t) => t.key === RUN_KEY_TAG) === true;
    if (!parent || parent.run.info.experiment_id !== experimentId || !isOurs) {
      const shown = /^[A-Za-z0-9]{1,64}$/.test(parentRunId) ? parentRunId : 'an invalid id';
      throw new MlflowError(`Expected \`tracking.mlflow.parentRunId\` to be a durable-train run of experiment ${experimentId}, got \`${shown}\``, false);
    }
  }

  /** Steps already logged for `key` in the run. */
  async loggedSteps(runId: string, key: string): Promise<Set<number>> {
    const steps = new Set<number>();
    let pageToken: string | undefined;
    do {
      const q = `metrics/get-history?run_id=${encodeURIComponent(runId)}&metric_key=${encodeURIComponent(key)}&max_results=25000${pageToken ? `&page_token=${encodeURIComponent(pageToken)}` : ''}`;
      const res = await this.call<{ metrics?: Array<{ step?: number | string }>; next_page_token?: string }>('GET', q);
      for (const m of res?.metrics ?? []) steps.add(Number(m.step ?? 0));
      pageToken = res?.next_page_token || undefined;
    } while (pageToken);
    return steps;
  }

  /** Logs the points whose (key, step) the run does not have yet; returns how many were logged. */
  async logMissing(runId: string, metrics: readonly MlflowMetric[]): Promise<number> {
    const keys = [...new Set(metrics.map((m) => m.key))];
    const have = new Map<string, Set<number>>();
    for (const key of keys) have.set(key, await this.loggedSteps(runId, key));
    const missing = metrics.filter((m) => Number.isFinite(m.value) && !have.get(m.key)!.has(m.step));
    for (let i = 0; i < missing.length; i += 1000) {
      await this.call('POST', 'runs/log-batch', { run_id: runId, metrics: missing.slice(i, i + 1000) });
    }
    return missing.length;
  }

  async setStatus(runId: string, status: MlflowRunStatus, endTime?: number): Promise<void> {
    await this.call('POST', 'runs/update', { run_id: runId, status, ...(endTime !== undefined && { end_time: endTime }) });
  }

  async getRun(runId: string): Promise<{ status: string; params: Record<string, string>; tags: Record<string, string> }> {
    const res = await this.call<{ run: { info: { status: string }; data: { params?: Array<{ key: string; value: string }>; tags?: Array<{ key: string; value: string }> } } }>(
      'GET',
      `runs/get?run_id=${encodeURIComponent(runId)}`,
    );
    const pairs = (xs?: Array<{ key: string; value: string }>) => Object.fromEntries((xs ?? []).map((x) => [x.key, x.value]));
    return { status: res!.run.info.status, params: pairs(res!.run.data.params), tags: pairs(res!.run.data.tags) };
  }
}
