/**
 * Everything in the trainer process that exists only for tests, in one place: fault injection read
 * from the environment (the seeded kill suites set these) and the two requests that report
 * TensorFlow's memory. Nothing here runs unless a test sets a `DT_FAULT_*` variable or sends
 * `memory`/`numTensors`.
 *
 *   DT_FAULT_PAUSE_BEFORE_STEP       global steps, comma-separated: hold before the first one reached
 *   DT_FAULT_KILL_DURING_CHECKPOINT  a global step: SIGKILL the process group while saving it
 *   DT_FAULT_HANG_BEFORE_STEP        a global step: block the event loop there
 *   DT_FAULT_STEP_DELAY_MS           milliseconds before every step
 *   DT_FAULT_KILL_IN_EVALUATION      a step: SIGKILL once its evaluation is computed, before the answer
 */
import { execFileSync } from 'node:child_process';
import type { Engine } from './engine';
import type { EngineFaults } from './step-loop';

/** SIGKILLs this process's whole process group (the worker and its trainer), as a crash would. */
export function killProcessGroup(): void {
  let pgid = process.ppid;
  try {
    pgid = Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(process.pid)], { encoding: 'utf8' }).trim()) || pgid;
  } catch {
    // no ps: the worker that forked us leads the group when it was started detached
  }
  process.kill(-pgid, 'SIGKILL');
}

/** The step-loop faults the environment asks for, or undefined (the usual case). */
export function faultsFromEnv(env: NodeJS.ProcessEnv): EngineFaults | undefined {
  const step = (name: string, v = env[name]): number | undefined => {
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`Expected \`${name}\` to be a step from 1 and up, got ${JSON.stringify(v)}`);
    return n;
  };
  const pauses = env.DT_FAULT_PAUSE_BEFORE_STEP;
  const pauseBeforeSteps =
    pauses === undefined || pauses === ''
      ? undefined
      : new Set(
          pauses.split(',').map((one, i) => {
            if (!/^\s*\d+\s*$/.test(one)) throw new Error(`Expected \`DT_FAULT_PAUSE_BEFORE_STEP\` to be steps from 1 and up separated by commas, got ${JSON.stringify(pauses)} (item ${i + 1} is ${JSON.stringify(one)})`);
            return step('DT_FAULT_PAUSE_BEFORE_STEP', one)!;
          }),
        );
  const killDuringCheckpoint = step('DT_FAULT_KILL_DURING_CHECKPOINT');
  const hangBeforeStep = step('DT_FAULT_HANG_BEFORE_STEP');
  const stepDelayMs = step('DT_FAULT_STEP_DELAY_MS');
  if (pauseBeforeSteps === undefined && killDuringCheckpoint === undefined && hangBeforeStep === undefined && stepDelayMs === undefined) return undefined;
  return {
    ...(stepDelayMs !== undefined && { stepDelayMs }),
    ...(pauseBeforeSteps !== undefined && { pauseBeforeSteps }),
    ...(killDuringCheckpoint !== undefined && { killDuringCheckpoint }),
    ...(hangBeforeStep !== undefined && { hangBeforeStep }),
    kill: killProcessGroup,
  };
}

/** DT_FAULT_KILL_IN_EVALUATION: the evaluation of `step` is computed, its answer (and the epoch record after it) not yet sent. */
export function killIfEvaluationFault(step: number, env: NodeJS.ProcessEnv = process.env): void {
  if (env.DT_FAULT_KILL_IN_EVALUATION === String(step)) killProcessGroup();
}

/** `memory`: tf.memory() after dropping the engine's sessions (the leak checks). */
export async function memoryAfterDispose(engine: Engine): Promise<unknown> {
  engine.dispose();
  const tf = await import('@tensorflow/tfjs');
  return tf.memory();
}

/** `numTensors`: tf.memory() without dropping anything (the engine and its session stay as they are). */
export async function memoryNow(): Promise<unknown> {
  const tf = await import('@tensorflow/tfjs');
  return tf.memory();
}
