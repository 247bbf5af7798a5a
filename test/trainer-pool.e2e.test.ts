/**
 * Trainer slots (issue #15): which slot a request goes to (pure logic, with fake trainers), how the
 * slot count and each slot's device and threads are derived, and a real pool of two trainer
 * processes: two requests at once run in two processes, each with its share of the cores.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { describe, test } from 'node:test';
import type { DescribeResult, RequestBody } from '../src/training/protocol';
import { TrainerClient, shutdownSecondsFromEnv, type RequestOptions } from '../src/training/trainer-client';
import { TrainerPool, chooseSlot, runOf, slotCount, slotEnvironments, visibleGpus, type SlotTrainer, type SlotView } from '../src/training/trainer-pool';

const view = (over: Partial<SlotView> = {}): SlotView => ({ inFlight: 0, started: true, lastRun: undefined, lastUsed: 0, ...over });
const train = (runUri: string): RequestBody => ({ type: 'train', request: { runUri } as never });

/** A trainer that answers when the test says so, and records what it was sent. */
class FakeTrainer implements SlotTrainer {
  readonly received: RequestBody[] = [];
  readonly answers: (() => void)[] = [];
  allowed: readonly string[] = [];
  closed = false;
  private started = false;
  constructor(private readonly id: number) {}
  get pid(): number | undefined {
    return this.started ? 1000 + this.id : undefined;
  }
  request<T>(body: RequestBody, _opts?: RequestOptions): Promise<T> {
    this.started = true;
    this.received.push(body);
    return new Promise<T>((resolve) => this.answers.push(() => resolve(undefined as T)));
  }
  allowUris(prefixes: readonly string[]): void {
    this.allowed = prefixes;
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  /** Answers the oldest open request and lets the pool see it. */
  async answer(): Promise<void> {
    this.answers.shift()!();
    await new Promise((r) => setImmediate(r));
  }
}

describe('chooseSlot', () => {
  test('a run goes back to its own slot when that slot is free', () => {
    assert.equal(chooseSlot([view({ lastRun: 'a', lastUsed: 2 }), view({ lastRun: 'b', lastUsed: 1 })], 'b'), 1);
  });
  test('its own slot busy, any free slot: the one holding no session first, then the least recently used', () => {
    assert.equal(chooseSlot([view({ lastRun: 'b', inFlight: 1 }), view({ lastRun: 'c', lastUsed: 5 }), view({ lastUsed: 9 })], 'b'), 2);
    assert.equal(chooseSlot([view({ lastRun: 'b', inFlight: 1 }), view({ lastRun: 'c', lastUsed: 5 }), view({ lastRun: 'd', lastUsed: 3 })], 'b'), 2);
  });
  test('a running trainer before one that has to start', () => {
    assert.equal(chooseSlot([view({ started: false }), view({ lastRun: 'x', lastUsed: 7 })], 'y'), 1);
    assert.equal(chooseSlot([view({ started: false }), view({ lastRun: 'x', inFlight: 1 })], 'y'), 0);
  });
  test('no slot free: the least busy one, its own among equals', () => {
    assert.equal(chooseSlot([view({ inFlight: 2 }), view({ inFlight: 1 })], undefined), 1);
    assert.equal(chooseSlot([view({ inFlight: 1, lastRun: 'a' }), view({ inFlight: 1, lastRun: 'b' })], 'b'), 1);
  });
  test('requests about no run (describe) take any free slot', () => {
    assert.equal(runOf({ type: 'describe' }), undefined);
    assert.equal(runOf(train('file:///r')), 'file:///r');
    assert.equal(chooseSlot([view({ inFlight: 1 }), view({ lastRun: 'a' })], undefined), 1);
  });
});

describe('TrainerPool routing (fake trainers)', () => {
  test('two runs at once use both slots; each run comes back to its slot; describe takes the free one', async () => {
    const fakes = [new FakeTrainer(0), new FakeTrainer(1)];
    const pool = new TrainerPool(fakes);
    pool.allowUris(['file:///data/']);
    assert.deepEqual(fakes.map((f) => f.allowed), [['file:///data/'], ['file:///data/']]);
    assert.equal(pool.size, 2);

    const a1 = pool.request(train('A'));
    const b1 = pool.request(train('B'));
    assert.deepEqual(fakes.map((f) => f.received.length), [1, 1], 'the second run went to the free slot');
    assert.deepEqual(pool.pids, [1000, 1001]);
    await fakes[0]!.answer();
    await fakes[1]!.answer();
    await Promise.all([a1, b1]);

    // B's next request first: it goes to B's slot although slot 0 is free and used less recently.
    const b2 = pool.request(train('B'));
    const a2 = pool.request(train('A'));
    assert.deepEqual(fakes.map((f) => f.received.map(runOf)), [['A', 'A'], ['B', 'B']]);
    await fakes[1]!.answer();
    await b2;
    const d = pool.request({ type: 'describe' });
    assert.equal(fakes[1]!.received.at(-1)!.type, 'describe', 'describe took the free slot');
    await fakes[1]!.answer();
    await d;
    // A's slot busy: A's next request moves to the free slot (engine.open reloads it from the checkpoint there).
    const a3 = pool.request(train('A'));
    assert.equal(runOf(fakes[1]!.received.at(-1)!), 'A');
    assert.deepEqual(pool.status().map((s) => [s.inFlight, s.lastRun]), [[1, 'A'], [1, 'A']]);
    await fakes[0]!.answer();
    await fakes[1]!.answer();
    await Promise.all([a2, a3]);
    assert.deepEqual(pool.status().map((s) => s.inFlight), [0, 0]);
    await pool.close();
    assert.ok(fakes.every((f) => f.closed));
  });

  test('shutdown reaches every slot at once', async () => {
    const reasons: (string | undefined)[] = [];
    const slot = (): SlotTrainer => {
      let reason: string | undefined;
      return {
        pid: undefined,
        request: () => Promise.reject(new Error('unused')),
        allowUris: () => undefined,
        close: () => Promise.resolve(),
        get shutdownReason() {
          return reason;
        },
        shutdown(r?: string) {
          reason = r;
          reasons.push(r);
          return Promise.resolve();
        },
      };
    };
    const pool = new TrainerPool([slot(), slot(), slot()]);
    assert.equal(pool.shutdownReason, undefined);
    await pool.shutdown('SIGTERM');
    assert.deepEqual(reasons, ['SIGTERM', 'SIGTERM', 'SIGTERM']);
    assert.equal(pool.shutdownReason, 'SIGTERM');
  });

  test('a failed request frees its slot too', async () => {
    const failing: SlotTrainer = { pid: 1, request: () => Promise.reject(new Error('trainer died')), allowUris: () => undefined, close: () => Promise.resolve() };
    const pool = new TrainerPool([failing]);
    await assert.rejects(pool.request(train('A')), /trainer died/);
    assert.equal(pool.status()[0]!.inFlight, 0);
  });
});

describe('slot configuration', () => {
  test('slot count: the option, else DT_TRAINER_SLOTS, else one per GPU, else 1; anything else is refused', () => {
    assert.equal(slotCount(3, { DT_TRAINER_SLOTS: '5' }, []), 3);
    assert.equal(slotCount(undefined, { DT_TRAINER_SLOTS: '5' }, ['0']), 5);
    assert.equal(slotCount(undefined, {}, ['0', '1', '2']), 3);
    assert.equal(slotCount(undefined, { DT_TRAINER_SLOTS: ' ' }, []), 1);
    assert.throws(() => slotCount(undefined, { DT_TRAINER_SLOTS: 'two' }, []), /Expected `trainer.slots` \(or DT_TRAINER_SLOTS\) to be a whole number from 1 to 64, got `"two"` \(string\)/);
    // Every slot is a TensorFlow process started with the worker: a bound, and no exotic spellings.
    for (const raw of ['65', '5000000', '99999999999999999999', '1e3', '0x10', 'Infinity', '\u202e2']) {
      assert.throws(() => slotCount(undefined, { DT_TRAINER_SLOTS: raw }, []), /a whole number from 1 to 64, got `"/, raw);
    }
    assert.throws(() => slotCount(undefined, { DT_TRAINER_SLOTS: '\u202e2' }, []), (e: Error) => !e.message.includes('\u202e'));
    assert.equal(slotCount(undefined, {}, Array.from({ length: 100 }, (_, i) => String(i))), 64);
    assert.throws(() => slotCount(0, {}, []), /got `0` \(number\)/);
    assert.throws(() => slotCount(1.5, {}, []), /got `1.5` \(number\)/);
  });

  test('visible GPUs: CUDA_VISIBLE_DEVICES up to its first non-device entry, else nvidia-smi -L, else none', () => {
    const smi = () => 'GPU 0: NVIDIA H100 (UUID: GPU-aaa)\nGPU 1: NVIDIA H100 (UUID: GPU-bbb)\n';
    assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '2,3' }, smi), ['2', '3']);
    assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '1,-1,2' }, smi), ['1']);
    assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: '' }, smi), []);
    assert.deepEqual(visibleGpus({ CUDA_VISIBLE_DEVICES: 'GPU-aaa' }, smi), ['GPU-aaa']);
    assert.deepEqual(visibleGpus({}, smi), ['0', '1']);
    assert.deepEqual(visibleGpus({}, () => ''), []);
  });

  test('each slot: its GPU, and with several slots an equal share of the cores unless the worker sets them', () => {
    assert.deepEqual(slotEnvironments(2, ['2', '3'], 16, {}), [
      { CUDA_VISIBLE_DEVICES: '2', TF_NUM_INTRAOP_THREADS: '8', TF_NUM_INTEROP_THREADS: '8', OMP_NUM_THREADS: '8' },
      { CUDA_VISIBLE_DEVICES: '3', TF_NUM_INTRAOP_THREADS: '8', TF_NUM_INTEROP_THREADS: '8', OMP_NUM_THREADS: '8' },
    ]);
    assert.deepEqual(slotEnvironments(1, [], 2, {}), [{}], 'one slot on CPU: TensorFlow defaults, as before');
    assert.deepEqual(slotEnvironments(3, ['0'], 2, { TF_NUM_INTEROP_THREADS: '2' }).map((e) => [e.CUDA_VISIBLE_DEVICES, e.TF_NUM_INTRAOP_THREADS, e.TF_NUM_INTEROP_THREADS]), [
      ['0', '1', undefined],
      ['0', '1', undefined],
      ['0', '1', undefined],
    ]);
  });
});

describe('TrainerPool with real trainer processes', () => {
  test('two requests at once run in two processes, each with its share of the cores in its environment', async (t) => {
    const pool = TrainerPool.create({ slots: 2, log: () => undefined });
    try {
      const [a, b] = await Promise.all([pool.request<DescribeResult>({ type: 'describe' }), pool.request<DescribeResult>({ type: 'describe' })]);
      assert.notEqual(a.pid, b.pid);
      assert.deepEqual([a.pid, b.pid].sort(), pool.pids.map(Number).sort(), 'the pids the trainers report are the pool\'s');
      const share = String(Math.max(1, Math.floor(os.availableParallelism() / 2)));
      for (const pid of [a.pid, b.pid]) {
        const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        const expected = process.env.TF_NUM_INTRAOP_THREADS ?? share;
        assert.ok(env.includes(`TF_NUM_INTRAOP_THREADS=${expected}`), `trainer ${pid} has TF_NUM_INTRAOP_THREADS=${expected}`);
        // TensorFlow names its inter-op pool's threads tf_Compute: one per TF_NUM_INTEROP_THREADS (threads are process-wide, so tfjs-node honours it).
        const names = fs.readdirSync(`/proc/${pid}/task`).map((task) => fs.readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim());
        const interOp = names.filter((n) => n === 'tf_Compute').length;
        t.diagnostic(`trainer ${pid}: ${names.length} threads, ${interOp} tf_Compute, TF_NUM_INTRAOP_THREADS=${expected}`);
        if (process.env.TF_NUM_INTEROP_THREADS === undefined) assert.equal(interOp, Number(share), `trainer ${pid} runs ${share} inter-op thread(s)`);
      }
    } finally {
      await pool.close();
    }
  });
});

describe('shutdown budget (DT_SHUTDOWN_SECONDS)', () => {
  test('plain seconds above 0 and at most an hour; anything else refused, shown escaped', () => {
    assert.equal(shutdownSecondsFromEnv({}), 25);
    assert.equal(shutdownSecondsFromEnv({ DT_SHUTDOWN_SECONDS: '12.5' }), 12.5);
    assert.equal(shutdownSecondsFromEnv({ DT_SHUTDOWN_SECONDS: '3600' }), 3600);
    // Past ~24 days Node's timers overflow and fire at once: a huge budget would be no budget.
    for (const raw of ['0', '-1', '3601', '1e9', '0x10', 'Infinity', '99999999999999999999', 'soon']) {
      assert.throws(() => shutdownSecondsFromEnv({ DT_SHUTDOWN_SECONDS: raw }), /Expected `DT_SHUTDOWN_SECONDS` to be a number of seconds above 0 and at most 3600, got /, raw);
    }
    assert.throws(() => new TrainerClient({ shutdownSeconds: 1e9 }), /Expected `shutdownSeconds` to be a number of seconds above 0 and at most 3600, got `1000000000` \(number\)/);
  });
});
