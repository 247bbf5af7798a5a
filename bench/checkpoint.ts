/**
 * Checkpoint save/load throughput for a ~10 M parameter model through the real checkpoint path
 * (serializeModel, then writeCheckpoint under a lease: lease checks, create-only objects, hashes,
 * manifest, latest.json), beside raw writes of the same bytes, as MB/s and a ratio.
 *
 *   npx tsx bench/checkpoint.ts [--repeats 5] [--gcs] [--baseline <tree>]
 *
 * `--baseline <tree>`: a checkout of an older commit (with a node_modules link): its
 * serializeModel, writeCheckpoint, stores and lease are timed in the same run, interleaved with
 * this tree's. `--gcs` adds the GCS emulator (fake-gcs-server). The checkpoint holds model.json,
 * weights.bin and a state.json (an Adam run adds 2x the weights in optimizer.bin). MB = 10^6 bytes.
 * "write" rows time writeCheckpoint alone on objects already in host memory (the part that runs
 * while training goes on); "save" rows add serializeModel (the host copy training waits for).
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import * as tf from '@tensorflow/tfjs';

import type * as FormatModule from '../src/checkpoints/format';
import * as format from '../src/checkpoints/format';
import type * as GcsStoreModule from '../src/checkpoints/gcs-store';
import * as gcsStore from '../src/checkpoints/gcs-store';
import type * as LeaseModule from '../src/checkpoints/lease';
import * as lease from '../src/checkpoints/lease';
import type * as OpenStoreModule from '../src/checkpoints/open-store';
import * as openStoreModule from '../src/checkpoints/open-store';
import type { CheckpointStore } from '../src/checkpoints/store';
import type * as SerializationModule from '../src/training/eager/serialization';
import * as serialization from '../src/training/eager/serialization';
import { startGcsEmulator } from '../test/helpers/gcs-emulator';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const REPEATS = Number(arg('repeats') ?? 5);
const BASELINE = arg('baseline');
const GCS = process.argv.includes('--gcs');
const BUCKET = 'dt-bench';
const HOLDER = { workflowId: 'bench', workflowRunId: 'checkpoint', activityId: '1', attempt: 1 };

/** An object's bytes: this tree's serializeModel gives chunks, an older one one buffer. */
type Bytes = Buffer | readonly Buffer[];
/** A tree's checkpoint path: its format, serialization, stores and lease, all from that tree. */
interface Path {
  readonly name: string;
  readonly format: Pick<typeof FormatModule, 'writeCheckpoint' | 'loadLatestCheckpoint'>;
  readonly serialization: { serializeModel(model: tf.LayersModel): Promise<{ modelJson: Buffer; weights: Bytes }> } & Pick<typeof SerializationModule, 'deserializeModel'>;
  readonly openStore: typeof OpenStoreModule.openStore;
  readonly GcsCheckpointStore: typeof GcsStoreModule.GcsCheckpointStore;
  readonly acquireLease: typeof LeaseModule.acquireLease;
  /** Objects in the form this tree's writeCheckpoint takes (an older one: one buffer each). */
  readonly asObjects: (objects: ReadonlyMap<string, Bytes>) => ReadonlyMap<string, Bytes>;
}

const joinedObjects = (objects: ReadonlyMap<string, Bytes>): ReadonlyMap<string, Bytes> =>
  new Map([...objects].map(([name, data]) => [name, Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[])]));

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

interface Row {
  readonly target: string;
  readonly operation: string;
  readonly mb: number;
  readonly seconds: number[];
}

/**
 * Runs every row's work once per round, rows interleaved, so that load drifts hit them alike. A
 * row's work may return the seconds to count (a part of it), else the whole call is timed.
 */
async function interleaved(rows: Array<Row & { readonly run: () => Promise<unknown> }>): Promise<Row[]> {
  for (const r of rows) await r.run(); // warm-up, not counted
  for (let i = 0; i < REPEATS; i++) {
    for (const r of rows) {
      const t = process.hrtime.bigint();
      const counted = await r.run();
      r.seconds.push(typeof counted === 'number' ? counted : Number(process.hrtime.bigint() - t) / 1e9);
    }
  }
  return rows;
}

async function durableWrite(file: string, data: Buffer): Promise<void> {
  const fh = await fsp.open(file, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function main(): Promise<void> {
  const backend = await selectBackend();
  const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const paths: Path[] = [
    { name: 'this tree', format, serialization, openStore: openStoreModule.openStore, GcsCheckpointStore: gcsStore.GcsCheckpointStore, acquireLease: lease.acquireLease, asObjects: (o) => o },
  ];
  if (BASELINE) {
    const root = path.resolve(BASELINE);
    const from = async <T>(file: string): Promise<T> => (await import(path.join(root, file))) as T;
    paths.push({
      name: `baseline ${path.basename(root)}`,
      format: await from<Path['format']>('src/checkpoints/format.ts'),
      serialization: await from<Path['serialization']>('src/training/eager/serialization.ts'),
      openStore: (await from<typeof OpenStoreModule>('src/checkpoints/open-store.ts')).openStore,
      GcsCheckpointStore: (await from<typeof GcsStoreModule>('src/checkpoints/gcs-store.ts')).GcsCheckpointStore,
      acquireLease: (await from<typeof LeaseModule>('src/checkpoints/lease.ts')).acquireLease,
      asObjects: joinedObjects,
    });
  }
  const model = buildModel();
  const params = model.countParams();
  const probe = await serialization.serializeModel(model);
  const stateJson = Buffer.from(JSON.stringify({ format: 'durable-train/state@1', note: 'bench' }));
  const probeObjects = new Map<string, Bytes>([['model.json', probe.modelJson], ['weights.bin', probe.weights], ['state.json', stateJson]]);
  const raw = Buffer.concat([...joinedObjects(probeObjects).values()] as Buffer[]);
  const mb = raw.length / 1e6;

  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'dt-bench-'));
  const emu = GCS ? await startGcsEmulator({ buckets: [BUCKET], backend: 'filesystem' }) : undefined;
  const results: Row[] = [];
  try {
    const targets: Array<{ name: string; open: (p: Path, run: string) => CheckpointStore }> = [
      { name: 'file://', open: (p, run) => p.openStore(pathToFileURL(path.join(tmp, run)).href) },
      // Each tree's own client (its createGcsStorage), so the A/B includes how each one checks uploads.
      ...(emu ? [{ name: 'gs:// (emulator)', open: (p: Path, run: string) => new p.GcsCheckpointStore(`gs://${BUCKET}/${run}`, { apiEndpoint: emu.endpoint, projectId: emu.projectId }) }] : []),
    ];
    let run = 0;
    for (const target of targets) {
      const saved = new Map<string, CheckpointStore>();
      const rows = paths.flatMap((p) => [
        {
          target: target.name,
          operation: `save (serializeModel + writeCheckpoint under a lease), ${p.name}`,
          mb,
          seconds: [],
          run: async () => {
            // A fresh run folder each time, as a new step is: nothing to find already there.
            const store = target.open(p, `run-${run++}`);
            const held = await p.acquireLease(store, HOLDER);
            const { modelJson, weights } = await p.serialization.serializeModel(model);
            const objects = new Map<string, Bytes>([['model.json', modelJson], ['weights.bin', weights], ['state.json', stateJson]]);
            await p.format.writeCheckpoint(store, 1, p.asObjects(objects), { lease: held });
            saved.set(p.name, store);
          },
        },
        {
          target: target.name,
          operation: `write (writeCheckpoint under a lease, state already in host memory), ${p.name}`,
          mb,
          seconds: [],
          run: async () => {
            const store = target.open(p, `run-${run++}`);
            const held = await p.acquireLease(store, HOLDER);
            const objects = p.asObjects(probeObjects);
            const t = process.hrtime.bigint();
            await p.format.writeCheckpoint(store, 1, objects, { lease: held });
            return Number(process.hrtime.bigint() - t) / 1e9;
          },
        },
        {
          target: target.name,
          operation: `load (loadLatestCheckpoint + deserializeModel), ${p.name}`,
          mb,
          seconds: [],
          run: async () => {
            const ckpt = await p.format.loadLatestCheckpoint(saved.get(p.name)!, Number.MAX_SAFE_INTEGER);
            if (!ckpt) throw new Error('no checkpoint');
            (await p.serialization.deserializeModel(ckpt.objects.get('model.json')!, ckpt.objects.get('weights.bin')!)).dispose();
          },
        },
      ]);
      if (target.name === 'file://') {
        const rawFile = path.join(tmp, 'raw.bin');
        rows.push(
          { target: target.name, operation: 'raw write + fsync (one buffer)', mb, seconds: [], run: () => durableWrite(rawFile, raw) },
          { target: target.name, operation: 'raw fs.writeFile (one buffer, no fsync)', mb, seconds: [], run: () => fsp.writeFile(rawFile, raw) },
          { target: target.name, operation: 'raw fs.readFile', mb, seconds: [], run: async () => void (await fsp.readFile(rawFile)) },
        );
      } else if (emu) {
        const object = emu.storage.bucket(BUCKET).file('raw.bin');
        rows.push(
          { target: target.name, operation: 'raw Storage file.save (one request)', mb, seconds: [], run: () => object.save(raw, { resumable: false }) },
          { target: target.name, operation: 'raw Storage file.download', mb, seconds: [], run: async () => void (await object.download()) },
        );
      }
      results.push(...(await interleaved(rows)));
    }
  } finally {
    await emu?.dispose();
    await fsp.rm(tmp, { recursive: true, force: true });
    model.dispose();
  }

  const cpus = os.cpus();
  console.log(`Backend: ${backend}`);
  console.log(`Machine: ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}; load ${loadAtStart} at the start`);
  console.log(`Model: dense 784-2048-2048-2048-10, ${(params / 1e6).toFixed(2)} M parameters; checkpoint ${mb.toFixed(1)} MB; median of ${REPEATS} after 1 warm-up, rows interleaved`);
  console.log('');
  const speed = (r: Row): number => r.mb / median(r.seconds);
  const rawOf = (target: string): Row | undefined => results.find((r) => r.target === target && (r.operation.startsWith('raw write + fsync') || r.operation.startsWith('raw Storage file.save')));
  const cached = results.find((r) => r.operation.startsWith('raw fs.writeFile'));
  console.log('| target | operation | MB | median s | MB/s | vs raw durable write (file: write + fsync; gs: file.save) | vs raw writeFile |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const writes = /^(save|write|raw (write|fs\.writeFile|Storage file\.save))/.test(r.operation);
    const ratio = (base: Row | undefined): string => (base && writes && base.target === r.target ? `${((100 * speed(r)) / speed(base)).toFixed(0)} %` : '');
    console.log(`| ${r.target} | ${r.operation} | ${r.mb.toFixed(1)} | ${median(r.seconds).toFixed(3)} | ${speed(r).toFixed(0)} | ${ratio(rawOf(r.target))} | ${ratio(cached)} |`);
  }
  console.log(`load at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
