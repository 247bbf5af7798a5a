/**
 * What a benchmark route is. Every file in bench/routes/ exports one (as `default` or as `route`),
 * and bench/run.ts measures each on the same model, data, batch size and step count.
 */
export type BenchModel = 'mlp' | 'cnn';

export interface MeasureOptions {
  readonly model: BenchModel;
  readonly batchSize: number;
  /** Timed training steps (a route adds its own untimed warm-up). */
  readonly steps: number;
}

export interface Measurement {
  /** Wall-clock milliseconds per training step over the timed steps. */
  readonly msPerStep: number;
  /** Shown under the table: what the number includes, which backend, anything unusual. */
  readonly note?: string;
  /** One line of detail for this case (printed under the table, with the case it belongs to). */
  readonly breakdown?: string;
  /** Workflow history events one more epoch adds (routes that run trainModel). */
  readonly eventsPerEpoch?: number;
  /** Checkpoint writing per epoch, as the trainer times it: milliseconds and MB/s (routes that run trainModel). */
  readonly checkpointMs?: number;
  readonly checkpointMBps?: number;
}

export interface BenchRoute {
  readonly name: string;
  /** `true`, or why the route cannot run here (it is then listed as skipped, with the reason). */
  available(): Promise<string | true>;
  measure(opts: MeasureOptions): Promise<Measurement>;
  /** Releases what the route started (servers, processes); called once at the end. */
  close?(): Promise<void>;
}
