/**
 * Stateless randomness: every draw is a pure function of (seed, stream, index), so a run
 * resumed at any step draws exactly what an uninterrupted run would have drawn.
 */

/** Mixes integers into one 32-bit value (a splitmix/murmur-style finalizer). */
export function hash32(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    let k = Math.imul(part | 0, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    // Fold in the high bits too, so parts above 2^32 (large steps) still count.
    h ^= Math.floor(part / 4294967296) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32: a small, fast generator of floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The order of examples in data pass `pass`: a Fisher-Yates shuffle seeded by (seed, pass). */
export function permutation(n: number, seed: number, pass: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const random = mulberry32(hash32(seed, 0x5eed, pass));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = order[i]!;
    order[i] = order[j]!;
    order[j] = tmp;
  }
  return order;
}

/**
 * The example indices of global step `step`: positions [step*B, (step+1)*B) of the endless
 * stream made of one permutation per pass over the data. Pure in (seed, step), so the data
 * cursor of a checkpoint is just its step.
 */
export class BatchSampler {
  private pass = -1;
  private order: Uint32Array = new Uint32Array(0);

  constructor(readonly size: number, readonly batchSize: number, readonly seed: number) {
    if (size < 1) throw new Error(`A dataset needs at least one example, got ${size}`);
  }

  indices(step: number, out: Uint32Array = new Uint32Array(this.batchSize)): Uint32Array {
    const start = step * this.batchSize;
    for (let k = 0; k < this.batchSize; k++) {
      const position = start + k;
      const pass = Math.floor(position / this.size);
      if (pass !== this.pass) {
        this.order = permutation(this.size, this.seed, pass);
        this.pass = pass;
      }
      out[k] = this.order[position - pass * this.size]!;
    }
    return out;
  }
}
