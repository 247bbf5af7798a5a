/**
 * The seed a fault test draws its moments from: printed, and replayed with DT_TEST_SEED=<n>.
 * The generator is the project's own (src/training/rng.ts), so tests never carry a copy of it.
 */
export { mulberry32 } from '../../src/training/rng';

export function testSeed(suite: string): number {
  const seed = process.env.DT_TEST_SEED !== undefined ? Number(process.env.DT_TEST_SEED) : Date.now() % 1_000_000;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`Expected DT_TEST_SEED to be a whole number from 0, got ${JSON.stringify(process.env.DT_TEST_SEED)}`);
  console.log(`[${suite}] seed ${seed} (replay with DT_TEST_SEED=${seed})`);
  return seed;
}
