/**
 * The search log's activities (src/checkpoints/search-log.ts; the format: docs/search-log.md).
 * appendSearchLog writes one segment, create-only, for an owner of the search only: the caller is
 * the workflow Temporal says runs this activity (its id from the activity context, never from the
 * input), and it must be recorded in the search's search.json. readSearchLog pages it back.
 * Store-only: the workflow gives them WORKER_HEARTBEAT_TIMEOUT (workflows/activity-proxies.ts).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { appendSearchLogSegment, readSearchLog, SearchLogCorruptError, SearchLogOverwriteError, type SearchLogPage } from '../checkpoints/search-log';
import { assertSearchOwner } from '../checkpoints/search-identity';
import type { CheckpointStore } from '../checkpoints/store';
import { ConfigError, describe } from '../config/validate';
import { storeCall } from './store-and-trainer';

export interface SearchLogDeps {
  readonly openStore: (uri: string) => CheckpointStore;
}

export interface AppendSearchLogInput {
  /** The search's folder, `<root>/<search runId>` (its search.json lists the calling workflow). */
  readonly searchUri: string;
  /** The segment's sequence number: 0 for the first, then one more each time, no gaps. */
  readonly seq: number;
  /** The rows, each a JSON object of at most 16 KiB; at most 1 MiB in all. */
  readonly rows: readonly object[];
}

export interface AppendSearchLogResult {
  /** The segment's key under the search folder, `log/<seq: 12 digits>.jsonl`. */
  readonly key: string;
}

export interface ReadSearchLogInput {
  readonly searchUri: string;
  /** @default 0 */
  readonly fromSeq?: number;
  /** At most MAX_READ_ROWS. @default 1000 */
  readonly maxRows?: number;
}

/** Rows one readSearchLog activity returns at most (plus one segment's): its result is a history payload. */
export const MAX_READ_ROWS = 10_000;

/** The calling workflow's id, as Temporal knows it: the only owner this activity writes for. */
function callingWorkflowId(): string {
  return Context.current().info.workflowExecution?.workflowId ?? '(no workflow)';
}

/** Input errors and a refused overwrite fail for good, from the first attempt; store faults retry. */
async function searchLogCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await storeCall(fn);
  } catch (err) {
    if (err instanceof ConfigError) throw ApplicationFailure.create({ message: err.message, type: 'InvalidConfig', nonRetryable: true, details: [err.issues] });
    if (err instanceof SearchLogOverwriteError || err instanceof SearchLogCorruptError) throw ApplicationFailure.nonRetryable(err.message, err.name);
    throw err;
  }
}

function checkSearchUri(searchUri: unknown): string {
  if (typeof searchUri !== 'string' || searchUri.length === 0) {
    throw new ConfigError([{ field: 'searchUri', expected: 'the search folder URI (file:// or gs://)', received: describe(searchUri) }], 'Invalid search log call');
  }
  return searchUri;
}

export function createSearchLogActivities(deps: SearchLogDeps) {
  return {
    /**
     * Writes segment `seq` of the search's log, create-only. The same rows again succeed (a retry, a
     * zombie attempt, a replay); other rows under a taken `seq` fail as WouldOverwrite naming the key.
     */
    async appendSearchLog(input: AppendSearchLogInput): Promise<AppendSearchLogResult> {
      return searchLogCall(async () => {
        // Bounds and the owner before any write: the URI is checked by the guarded opener.
        const store = deps.openStore(checkSearchUri(input?.searchUri));
        const workflowId = callingWorkflowId();
        await assertSearchOwner(store, workflowId, { requireRecord: true });
        const { key } = await appendSearchLogSegment(store, input.seq, input.rows);
        return { key };
      });
    },

    /** A page of the search's log from `fromSeq` (docs/search-log.md); anyone the worker lets read the folder may. */
    async readSearchLog(input: ReadSearchLogInput): Promise<SearchLogPage> {
      return searchLogCall(async () => {
        const store = deps.openStore(checkSearchUri(input?.searchUri));
        const maxRows = input.maxRows ?? 1000;
        if (!Number.isSafeInteger(maxRows) || maxRows < 1 || maxRows > MAX_READ_ROWS) {
          throw new ConfigError([{ field: 'maxRows', expected: `a whole number from 1 to ${MAX_READ_ROWS}`, received: describe(maxRows) }], 'Invalid search log call');
        }
        return readSearchLog(store, { ...(input.fromSeq !== undefined && { fromSeq: input.fromSeq }), maxRows });
      });
    },
  };
}

export type SearchLogActivities = ReturnType<typeof createSearchLogActivities>;
