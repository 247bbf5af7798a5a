/**
 * The chart renderer's worker thread (chart-thread.ts starts it): renders a Vega-Lite spec to SVG
 * and, when asked, PNG, off the worker's event loop. One request at a time, answered by id.
 */
import { parentPort } from 'node:worker_threads';
import { renderPng, renderSvg, type TopLevelSpec } from './charts';

export interface ChartRequest {
  readonly id: number;
  readonly spec: TopLevelSpec;
  /** PNG width in pixels; no PNG when absent. */
  readonly pngWidth?: number;
}

export type ChartReply =
  | { readonly id: number; readonly ok: true; readonly svg: string; readonly png?: Uint8Array }
  | { readonly id: number; readonly ok: false; readonly error: string };

parentPort?.on('message', (request: ChartRequest) => {
  void (async () => {
    try {
      const svg = await renderSvg(request.spec);
      const png = request.pngWidth === undefined ? undefined : new Uint8Array(await renderPng(svg, request.pngWidth));
      parentPort!.postMessage({ id: request.id, ok: true, svg, ...(png && { png }) } satisfies ChartReply, png ? [png.buffer as ArrayBuffer] : []);
    } catch (err) {
      parentPort!.postMessage({ id: request.id, ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) } satisfies ChartReply);
    }
  })();
});
