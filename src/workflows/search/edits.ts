/**
 * Live edits of a running search (the `editSearch` Update): their validation, which runs in the
 * Update's validator so a bad edit is refused before it enters history, and their effect on the
 * search's state. Both are pure; the workflow sends the signals an edit asks for (stop, pause or
 * resume a running trial's trainModel). Every accepted edit is appended to `state.edits`, which is
 * carried through continue-as-new and returned in the result and in results.json.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { inputSizeIssues, MAX_UPDATE_BYTES } from '../../config/bounds';
import { MAX_TRIALS, STRATEGY_OPTIONS, type SearchConfig, type SearchStrategy } from '../../config/search-config';
import { Checker, ConfigError, isObject, type ConfigIssue } from '../../config/validate';
import { searcherFactoryOf } from './index';
import { editCount, newTrial, trialCount, type SearchState, type TrialTable } from './state';
import type { EditRecord, SearchEdit } from './types';
import { trialIssues } from './validate';

export type { EditRecord, SearchEdit } from './types';

export type EditOp = SearchEdit['op'];
export const EDIT_OPS: readonly EditOp[] = ['maxParallel', 'maxTrials', 'maxEpochs', 'stop', 'pause', 'resume', 'addTrials'];

/** The Update's reply. */
export interface EditReply {
  readonly edit: number;
  readonly changes: readonly string[];
}

/** A signal the workflow must send to a running trial's trainModel. */
export interface TrialSignal {
  readonly workflowId: string;
  readonly signal: 'stop' | 'pause' | 'resume';
}

/** Strategies whose trial count is fixed by their plan (synchronous rungs, a PBT population). */
const FIXED_POPULATION: readonly SearchStrategy[] = ['halving', 'pbt'];

/** The epoch budget of trials started now: the last edit's, else the base input's. */
export const epochBudget = (config: SearchConfig, state: SearchState): number | undefined =>
  state.maxEpochs ?? (typeof config.base.maxEpochs === 'number' ? config.base.maxEpochs : undefined);

function issues(edit: unknown, config: SearchConfig, state: SearchState, table: TrialTable): ConfigIssue[] {
  const c = new Checker();
  if (state.status !== 'searching') c.fail('search', 'a search that is still searching', state.status);
  const o = c.object('edit', edit);
  if (!o) return c.issues;
  const op = c.oneOf('op', o.op, EDIT_OPS);
  if (!op) return c.issues;
  const known: Record<EditOp, string[]> = {
    maxParallel: ['value'], maxTrials: ['value'], maxEpochs: ['value'], stop: ['trial'], pause: ['trial'], resume: ['trial'], addTrials: ['trials'],
  };
  c.noUnknownKeys('', o, ['op', ...known[op]]);
  const fixed = FIXED_POPULATION.includes(config.strategy);
  switch (op) {
    case 'maxParallel':
      c.number('value', o.value, { integer: true, min: 1, max: 1000 });
      break;
    case 'maxTrials': {
      if (fixed) return [...c.issues, { field: 'op', expected: `an edit the \`${config.strategy}\` strategy allows (its trials are fixed by its plan)`, received: '`maxTrials`' }];
      const value = c.number('value', o.value, { integer: true, min: state.trialLimit + 1, max: MAX_TRIALS });
      if (value === undefined) break;
      let limit = 0;
      try {
        limit = searcherFactoryOf(config).plannedTrials({ ...config, maxTrials: value });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
      }
      if (limit <= state.trialLimit) c.fail('value', `a number that adds trials (the searcher has ${limit} in all)`, value);
      break;
    }
    case 'maxEpochs': {
      if (STRATEGY_OPTIONS[config.strategy].rungs || STRATEGY_OPTIONS[config.strategy].rounds) {
        return [...c.issues, { field: 'op', expected: `an edit the \`${config.strategy}\` strategy allows (its rungs or rounds set the epochs)`, received: '`maxEpochs`' }];
      }
      c.number('value', o.value, { integer: true, min: (epochBudget(config, state) ?? 0) + 1, max: 1_000_000 });
      break;
    }
    case 'stop':
    case 'pause':
    case 'resume': {
      const trial = c.number('trial', o.trial, { integer: true, min: 1, max: Math.max(1, trialCount(state)) });
      if (trial === undefined) break;
      const t = table.get(trial);
      // Not in memory: a finished trial of a search that stores its rows.
      if (!t) {
        c.fail('trial', op === 'resume' ? 'a trial paused by an edit' : 'a trial that is waiting, running or paused', `trial-${trial} (finished)`);
        break;
      }
      const held = state.held.includes(trial);
      if (op === 'stop' && !['pending', 'running', 'paused'].includes(t.status)) c.fail('trial', 'a trial that is waiting, running or paused', `trial-${trial} (${t.status})`);
      if (op === 'pause' && (held || !['pending', 'running'].includes(t.status))) c.fail('trial', 'a waiting or running trial not paused by an edit', `trial-${trial} (${held ? 'held' : t.status})`);
      if (op === 'resume' && !held) c.fail('trial', 'a trial paused by an edit', `trial-${trial} (${t.status})`);
      break;
    }
    case 'addTrials': {
      if (fixed) return [...c.issues, { field: 'op', expected: `an edit the \`${config.strategy}\` strategy allows (its trials are fixed by its plan)`, received: '`addTrials`' }];
      const room = MAX_TRIALS - trialCount(state);
      if (!Array.isArray(o.trials) || o.trials.length === 0 || o.trials.length > room) {
        c.fail('trials', `a list of 1 to ${room} objects of values keyed by searched path`, o.trials);
        break;
      }
      const paths = config.space.map((s) => s.path);
      const seen = new Set<string>();
      o.trials.forEach((params: unknown, i) => {
        const field = `trials[${i}]`;
        if (!isObject(params) || Object.keys(params).length === 0) return c.fail(field, 'an object of values keyed by searched path', params);
        const unknown = Object.keys(params).filter((p) => !paths.includes(p));
        if (unknown.length > 0) return c.fail(`${field}.${unknown[0]!}`, `a searched path (${paths.map((p) => `\`${p}\``).join(', ')})`, unknown[0]);
        const n = trialCount(state) + i + 1;
        const r = trialIssues(config, n, params, { searchUri: state.searchUri, maxEpochs: epochBudget(config, state) }, seen);
        for (const issue of r.issues) c.issues.push({ ...issue, field: `${field}: ${issue.field}` });
        return undefined;
      });
      break;
    }
  }
  return c.issues;
}

/**
 * The edits log of a search started before search-store-rows lives in its state, which
 * continue-as-new carries whole (Temporal caps a payload at 2 MB): an edit past these bounds is
 * refused by the validator, so it never enters history. A search that stores its rows appends each
 * edit's record to its log: the bound is then the log's row size.
 */
export const MAX_EDITS = 1000;
export const MAX_EDITS_BYTES = 256 * 1024;
/** A log row's bound (MAX_SEARCH_LOG_ROW_BYTES of src/checkpoints/search-log.ts, which workflows do not import). */
export const MAX_EDIT_ROW_BYTES = 16 * 1024;

/** The table of a search that keeps every trial in `state.trials`, in trial order. */
export function wholeTable(state: SearchState): TrialTable {
  return {
    get: (n) => state.trials[n - 1],
    add: (params) => {
      const t = newTrial(state.searchUri, state.trials.length + 1, params);
      state.trials.push(t);
      return t;
    },
  };
}

/** The log's bounds, checked before the edit itself: refused edits leave no trace in history. */
function logIssues(edit: unknown, state: SearchState): ConfigIssue[] {
  const size = inputSizeIssues(edit, 'edit', { maxBytes: MAX_UPDATE_BYTES });
  if (size.length > 0) return size;
  if (state.store) {
    // The record repeats an edit's values in its `changes`; UTF-8 takes up to 3 bytes a character.
    const rowBytes = 3 * (2 * JSON.stringify(edit).length + 200);
    if (rowBytes <= MAX_EDIT_ROW_BYTES) return [];
    return [{ field: 'edit', expected: `an edit whose record fits one search log row (${MAX_EDIT_ROW_BYTES} bytes; add trials in smaller edits)`, received: `about ${rowBytes} bytes` }];
  }
  if (state.edits.length >= MAX_EDITS) {
    return [{ field: 'edit', expected: `at most ${MAX_EDITS} edits in one search (its edits log is kept in workflow state)`, received: `${state.edits.length} edits already applied` }];
  }
  const logBytes = JSON.stringify(state.edits).length + 2 * JSON.stringify(edit).length; // the record repeats an edit's values in its `changes`
  if (logBytes > MAX_EDITS_BYTES) {
    return [{ field: 'edit', expected: `an edit that keeps the edits log within ${MAX_EDITS_BYTES} bytes (it is kept in workflow state)`, received: `a log of ${logBytes} bytes with this edit` }];
  }
  return [];
}

/** The Update's validator: throws a non-retryable `InvalidEdit` naming every problem of `edit`. */
export function validateEdit(edit: unknown, config: SearchConfig, state: SearchState, table: TrialTable = wholeTable(state)): asserts edit is SearchEdit {
  const bounded = logIssues(edit, state);
  const found = bounded.length > 0 ? bounded : issues(edit, config, state, table);
  if (found.length === 0) return;
  const err = new ConfigError(found, 'Invalid search edit');
  throw ApplicationFailure.create({ message: err.message, type: 'InvalidEdit', nonRetryable: true, details: [found] });
}

/**
 * Applies a validated edit to `state` (appending it to the edits log, or counting it for a search
 * that stores its rows: the caller appends `record`) and says which signals to send.
 */
export function applyEdit(edit: SearchEdit, config: SearchConfig, state: SearchState, now: number, table: TrialTable): { reply: EditReply; signals: TrialSignal[]; record: EditRecord } {
  const changes: string[] = [];
  const signals: TrialSignal[] = [];
  switch (edit.op) {
    case 'maxParallel':
      changes.push(`maxParallel ${state.maxParallel} -> ${edit.value}`);
      state.maxParallel = edit.value;
      break;
    case 'maxTrials': {
      const limit = searcherFactoryOf(config).plannedTrials({ ...config, maxTrials: edit.value });
      changes.push(`trial limit ${state.trialLimit} -> ${limit}`);
      state.trialLimit = limit;
      state.searcherFinished = false;
      break;
    }
    case 'maxEpochs':
      changes.push(`epochs of trials started from now on ${epochBudget(config, state) ?? 'unset'} -> ${edit.value}`);
      state.maxEpochs = edit.value;
      break;
    case 'stop': {
      const t = table.get(edit.trial)!;
      state.stopped.push(t.trial);
      state.held = state.held.filter((n) => n !== t.trial);
      if (t.status === 'running' && t.workflowId) {
        signals.push({ workflowId: t.workflowId, signal: 'stop' });
        changes.push(`${t.id}: stop sent to ${t.workflowId}; it is pruned when its run ends`);
      } else {
        state.queue = state.queue.filter((q) => q.trial !== t.trial);
        changes.push(`${t.id}: ${t.status} -> pruned`);
        t.status = 'pruned';
      }
      break;
    }
    case 'pause': {
      const t = table.get(edit.trial)!;
      state.held.push(t.trial);
      if (t.status === 'running' && t.workflowId) {
        signals.push({ workflowId: t.workflowId, signal: 'pause' });
        changes.push(`${t.id}: pause sent to ${t.workflowId}; it pauses after its current epoch and keeps its slot`);
      } else {
        changes.push(`${t.id}: held; it does not start until resumed`);
      }
      break;
    }
    case 'resume': {
      const t = table.get(edit.trial)!;
      state.held = state.held.filter((n) => n !== t.trial);
      if (t.status === 'running' && t.workflowId) {
        signals.push({ workflowId: t.workflowId, signal: 'resume' });
        changes.push(`${t.id}: resume sent to ${t.workflowId}`);
      } else {
        changes.push(`${t.id}: released; it starts when a slot frees`);
      }
      break;
    }
    case 'addTrials':
      for (const params of edit.trials) {
        const t = table.add(params);
        state.queue.push({ trial: t.trial, rung: 1 });
        changes.push(`${t.id} added: ${JSON.stringify(params)}`);
      }
      break;
  }
  const record: EditRecord = { number: editCount(state) + 1, edit, changes, at: now };
  if (state.store) state.store.edits++;
  else state.edits.push(record);
  return { reply: { edit: record.number, changes }, signals, record };
}
