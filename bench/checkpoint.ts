/**
 * Checkpoint save/load throughput for a ~10 M parameter model, through the real checkpoint path
 * (serializeModel + writeCheckpoint; loadLatestCheckpoint + deserializeModel), to file:// and to
 * the GCS emulator (fake-gcs-server), beside the raw write/read speed of the same bytes.
 *
 *   npx tsx bench/checkpoint.ts [repeats=5]
 *
 * The checkpoint holds model.json, weights.bin and a state.json (no optimizer slots: an Adam run
 * would add 2x the weights in optimizer.bin). MB = 10^6 bytes of the checkpoint's objects.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import * as tf from '@tensorflow/tfjs';

import { loadLatestCheckpoint, writeCheckpoint } from '../src/checkpoints/format';
import { GcsCheckpointStore } from '../src/checkpoints/gcs-store';
import { openStore } from '../src/checkpoints/open-store';
import type { CheckpointStore } from '../src/checkpoints/store';
import { deserializeModel, serializeModel } from '../src/training/eager/serialization';
import { startGcsEmulator } from '../test/helpers/gcs-emulator';

const REPEATS = Number(process.argv[2] ?? 5);
const BUCKET = 'dt-bench';

async function selectBackend(): Promise<string> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-node');
    await tf.setBackend('tensorflow');
    await tf.ready();
    return 'tensorflow (@tensorflow/tfjs-node, native)';
  } catch (err) {
    await tf.setBackend('cpu');
    await tf.ready();
    return `cpu (@tensorflow/tfjs-backend-cpu) - FALLBACK: @tensorflow/tfjs-node not usable: ${(err as Error).message.split('\n')[0]}`;
  }
}

function buildModel(): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.dense({ units: 2048, activation: 'relu', inputShape: [784] }));
  model.add(tf.layers.dense({ units: 2048, activation: 'relu' }));
  model.add(tf.layers.dense({ units: 2048, activation: 'relu' }));
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return model;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function timeIt(fn: (i: number) => Promise<void>): Promise<number> {
  const seconds: number[] = [];
  await fn(-1); // warm-up, not counted
  for (let i = 0; i < REPEATS; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    seconds.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  return median(seconds);
}

interface Row {
  target: string;
  operation: string;
  mb: number;
  seconds: number;
}

async function main(): Promise<void> {
  const backend = await selectBackend();
  const model = buildModel();
  const params = model.countParams();

  // One serialization to know the bytes; the timed saves serialize again each time.
  const probe = await serializeModel(model);
  const stateJson = Buffer.from(JSON.stringify({ format: 'durable-train/state@1', note: 'bench' }));
  const checkpointBytes = probe.modelJson.length + probe.weights.length + stateJson.length;
  const mb = checkpointBytes / 1e6;
  const rawBytes = probe.weights; // the raw baseline: one buffer of the weights' size
  const rawMb = rawBytes.length / 1e6;

  const rows: Row[] = [];
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'dt-bench-'));
  const emu = await startGcsEmulator({ buckets: [BUCKET], backend: 'filesystem' });
  try {
    const targets: Array<{ name: string; open: (run: string) => CheckpointStore }> = [
      { name: 'file://', open: (run) => openStore(pathToFileURL(path.join(tmp, run)).href) },
      { name: 'gs:// (emulator)', open: (run) => new GcsCheckpointStore(`gs://${BUCKET}/${run}`, { storage: emu.storage }) },
    ];

    for (const target of targets) {
      // Checkpoint save: serialize + write objects + manifest + latest.json, a fresh run each time.
      let run = 0;
      const save = async (): Promise<CheckpointStore> => {
        const store = target.open(`run-${run++}`);
        const { modelJson, weights } = await serializeModel(model);
        await writeCheckpoint(store, 1, new Map([['model.json', modelJson], ['weights.bin', weights], ['state.json', stateJson]]));
        return store;
      };
      rows.push({ target: target.name, operation: 'checkpoint save (serializeModel + writeCheckpoint)', mb, seconds: await timeIt(async () => void (await save())) });

      const saved = await save();
      rows.push({
        target: target.name,
        operation: 'checkpoint load (loadLatestCheckpoint + deserializeModel)',
        mb,
        seconds: await timeIt(async () => {
          const ckpt = await loadLatestCheckpoint(saved, Number.MAX_SAFE_INTEGER);
          if (!ckpt) throw new Error('no checkpoint');
          const loaded = await deserializeModel(ckpt.objects.get('model.json')!, ckpt.objects.get('weights.bin')!);
          loaded.dispose();
        }),
      });
    }

    // Raw baselines: the same number of bytes, one buffer, no format, no checksums.
    const rawFile = path.join(tmp, 'raw.bin');
    rows.push({ target: 'file://', operation: 'raw fs.writeFile (one buffer)', mb: rawMb, seconds: await timeIt(() => fsp.writeFile(rawFile, rawBytes)) });
    rows.push({ target: 'file://', operation: 'raw fs.readFile', mb: rawMb, seconds: await timeIt(async () => void (await fsp.readFile(rawFile))) });
    const rawObject = emu.storage.bucket(BUCKET).file('raw.bin');
    rows.push({
      target: 'gs:// (emulator)',
      operation: 'raw Storage file.save (one request)',
      mb: rawMb,
      seconds: await timeIt(() => rawObject.save(rawBytes, { resumable: false })),
    });
    rows.push({
      target: 'gs:// (emulator)',
      operation: 'raw Storage file.download',
      mb: rawMb,
      seconds: await timeIt(async () => void (await rawObject.download())),
    });
  } finally {
    await emu.dispose();
    await fsp.rm(tmp, { recursive: true, force: true });
    model.dispose();
  }

  const cpus = os.cpus();
  console.log(`Backend: ${backend}`);
  console.log(`Machine: ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.arch()}`);
  console.log(`Model: dense 784-2048-2048-2048-10, ${(params / 1e6).toFixed(2)} M parameters; checkpoint ${mb.toFixed(1)} MB (weights.bin ${rawMb.toFixed(1)} MB); median of ${REPEATS} after 1 warm-up`);
  console.log('');
  console.log('| target | operation | MB | median s | MB/s |');
  console.log('|---|---|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.target} | ${r.operation} | ${r.mb.toFixed(1)} | ${r.seconds.toFixed(3)} | ${(r.mb / r.seconds).toFixed(0)} |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
