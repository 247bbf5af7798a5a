/**
 * Small HTTP servers (node:http, loopback) that stand in for an MLflow server where a test needs to
 * see what the worker sends, not what MLflow stores: `startRecordingMlflow` answers the REST calls
 * durable-train makes (enough for a run to be created and its metrics logged) and records each
 * request's method, path and Authorization header; `startRedirector` answers everything with a
 * redirect to another URL. The real MLflow server is test/helpers/mlflow-server.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  /** The Authorization header as received, undefined when there was none. */
  readonly authorization: string | undefined;
}

export interface RecordingServer {
  readonly uri: string;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; uri: string }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const closer = (server: http.Server) => () =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** Answers what MlflowClient calls; every request is recorded before it is answered. */
export async function startRecordingMlflow(): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  let runs = 0;
  const { server, uri } = await listen((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => {
      const json = (body: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (path.endsWith('/experiments/get-by-name')) return json({ experiment: { experiment_id: '1' } });
      if (path.endsWith('/runs/search')) return json({});
      if (path.endsWith('/runs/create')) return json({ run: { info: { run_id: `run${++runs}` } } });
      if (path.endsWith('/metrics/get-history')) return json({ metrics: [] });
      if (path.endsWith('/runs/log-batch') || path.endsWith('/runs/update')) return json({});
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 'ENDPOINT_NOT_FOUND' }));
    });
  });
  return { uri, requests, close: closer(server) };
}

/** Answers every request with `status` and `Location: <to><request path>`; records them too. */
export async function startRedirector(to: string, status = 307): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  const { server, uri } = await listen((req, res) => {
    requests.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, authorization: req.headers.authorization });
    req.resume();
    res.writeHead(status, { location: `${to}${req.url ?? '/'}` });
    res.end();
  });
  return { uri, requests, close: closer(server) };
}
