/**
 * The quick-start run: starts its own Temporal dev server and a worker, trains an MLP on the MNIST
 * digits through the trainModel workflow with local checkpoints, prints each epoch, and says
 * where the model went. `npm run demo` (after scripts/setup.sh).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { DevServer } from '../src/dev-server';
import { runWorker } from '../src/worker';
import { fileURLToPath } from 'node:url';
import { epochRecordKey } from '../src/checkpoints/layout';
import { progressQuery, type TrainModelResult } from '../src/workflows';

async function main(): Promise<void> {
  const configPath = process.argv[2] ?? path.join(__dirname, '../examples/mnist-mlp.json');
  const input = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  Runtime.install({ logger: new DefaultLogger('WARN') });
  console.log(`Starting a Temporal dev server…`);
  const server = await DevServer.start();
  process.env.TEMPORAL_ADDRESS = server.address;
  let stopWorker!: () => void;
  const shutdown = new Promise<void>((resolve) => (stopWorker = resolve));
  const taskQueue = 'durable-train-demo';
  const worker = runWorker({ taskQueue, shutdown });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const workflowId = `demo-mnist-${Date.now()}`;
  try {
    const handle = await client.workflow.start('trainModel', { taskQueue, workflowId, args: [input] });
    console.log(`Started workflow ${workflowId} on ${server.address} (task queue ${taskQueue})`);
    console.log(`epoch  step   loss     val_loss  val_accuracy  lr`);
    // Epochs are printed from the run's own records (`metrics/epoch-N.json`), in order, each once:
    // polling the progress query's latest epoch misses any epoch that ends between two polls.
    let shown = 0;
    let runDir: string | undefined;
    const printNew = (): void => {
      if (!runDir) return;
      for (const h of newEpochRecords(runDir, shown)) {
        shown = h.epoch;
        const m = h.metrics;
        console.log(
          `${String(h.epoch).padStart(5)}  ${String(h.step).padStart(5)}  ${m.loss?.toFixed(4)}   ${m.val_loss?.toFixed(4)}    ${m.val_accuracy?.toFixed(4)}        ${h.learningRate}`,
        );
      }
    };
    let done = false;
    const poll = (async () => {
      while (!done) {
        const progress = await handle.query(progressQuery).catch(() => undefined);
        if (progress?.runUri.startsWith('file://')) runDir = fileURLToPath(progress.runUri);
        printNew();
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    let result: TrainModelResult;
    try {
      result = (await handle.result()) as TrainModelResult;
    } finally {
      done = true;
      await poll;
    }
    runDir ??= fileURLToPath(result.runUri);
    printNew();
    console.log(`\nRun ${result.runId}: ${result.status} after ${result.epochs} epochs on backend ${result.backend}`);
    console.log(`Final model (epoch ${result.modelStep / input.stepsPerEpoch}): val_accuracy ${result.finalMetrics?.val_accuracy?.toFixed(4)}, val_loss ${result.finalMetrics?.val_loss?.toFixed(4)}`);
    console.log(`Model:          ${result.modelUri}`);
    console.log(`Metrics:        ${result.metricsUri}`);
    console.log(`Learning curve: ${result.plotUri} (and .png beside it)`);
    console.log(`TensorBoard:    tensorboard --logdir ${result.runUri.replace(/^file:\/\//, '')}/tensorboard`);
  } finally {
    stopWorker();
    await worker;
    await connection.close();
    await server.stop();
  }
}

interface StoredEpoch {
  readonly epoch: number;
  readonly step: number;
  readonly learningRate: number;
  readonly metrics: Readonly<Record<string, number | undefined>>;
}

/** The epochs recorded in the run folder after `shown`, in order, stopping at the first gap (a later poll fills it). */
function newEpochRecords(runDir: string, shown: number): StoredEpoch[] {
  const out: StoredEpoch[] = [];
  for (let epoch = shown + 1; ; epoch++) {
    const file = path.join(runDir, epochRecordKey(epoch));
    if (!fs.existsSync(file)) return out;
    out.push(JSON.parse(fs.readFileSync(file, 'utf8')) as StoredEpoch);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
