/**
 * The hostile-caller suite's contract (test/hostile-callers.e2e.test.ts runs every attack in
 * test/attacks/*.ts against one real dev server and worker, and prints the table).
 *
 * An attack is what a caller who may start workflows, but owns nothing else, tries against another
 * caller's results or against the worker. `run` sets up its victim (if any), attacks, asserts the
 * outcome it expects (throwing on anything else) and reports whether the victim's bytes are
 * unchanged. A module exports `attacks: Attack[]`; one module per concern, so the files can grow
 * independently.
 */
import type { Stack, InProcessWorker } from '../helpers/temporal';

export interface AttackContext {
  readonly stack: Stack;
  /** A worker on the suite's server with the test allow-list (TEST_ALLOWED_URIS). */
  readonly worker: InProcessWorker;
  /** A fresh folder for this attack, inside the allow-list, removed after the suite. */
  readonly dir: string;
}

export interface AttackOutcome {
  /** What happened, one line: `FAILED InvalidConfig: …` (bounded by the suite when printed). */
  readonly outcome: string;
  /** The victim's bytes (exported weights, checkpoint list, results) compared before and after; 'n/a' when the attack has no victim (it targets the worker). */
  readonly victimUnchanged: boolean | 'n/a';
}

export interface Attack {
  /** What the attacker does, one line. */
  readonly name: string;
  /** Where it comes from: `#20 ownership`, `#11 trust`, … */
  readonly origin: string;
  /** Upper bound for the whole attack (setup included), ms. */
  readonly timeoutMs?: number;
  run(ctx: AttackContext): Promise<AttackOutcome>;
}
