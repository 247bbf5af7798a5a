/**
 * Search identity: a search folder belongs to one search, as a run folder belongs to one trajectory
 * (run-identity.ts). `<search>/search.json` is written once, when the search starts, before any
 * trial: a fingerprint of the input fields that decide the search's trials, and the workflow ids
 * that own the folder. A later search whose fields differ fails (SearchIdentityMismatch, naming
 * them) before it starts a trial; one with the same fields (the same search started again) joins
 * the owners. Only an owner writes the search's results (results.json/.csv/.svg) and archives its
 * trials' exports, and only an owner's child may claim a trial folder (folder-owners.ts).
 *
 * What is in it: `base` without the fields that never change what a trial computes or how it is
 * ranked (runId, resume, checkpoint, timeouts, continueAsNewEvery, historyLimit, tracking), the
 * space, the strategy, metric and mode, maxTrials, and the strategy's own options (seed for the
 * strategies that draw, eta and minEpochs for rungs, roundEpochs and quantile for PBT).
 * What is not: runId (it names the folder), maxParallel, failureBudget, continueAsNewEvery: they
 * decide how the search is run, not what its trials are.
 */
import { STRATEGY_OPTIONS, type SearchConfig } from '../config/search-config';
import { assertNotNested, type AncestorOpener } from './folder-owners';
import { SEARCH_JSON } from './layout';
import { canonicalJson, fingerprintOf, identityDifferences, recheckClaim } from './run-identity';
import { PreconditionFailedError, type CheckpointStore } from './store';

export const SEARCH_FORMAT = 'durable-train/search@1';

/**
 * Owners a search.json records. Full, a further search with the same input is refused: dropping the
 * oldest would take a running search's right to write its own results away.
 */
export const MAX_SEARCH_OWNERS = 100;

export type SearchIdentity = Readonly<Record<string, unknown>>;

export interface SearchRecord {
  readonly format: typeof SEARCH_FORMAT;
  readonly fingerprint: string;
  readonly identity: SearchIdentity;
  readonly createdAt: string;
  /** Workflow ids of the searches that run in this folder (the same identity each), oldest first. */
  readonly owners: readonly string[];
}

/** A search input that does not match the search folder it names. Caused by the input: never retried. */
export class SearchIdentityMismatchError extends Error {
  override readonly name = 'SearchIdentityMismatch';
  constructor(
    readonly uri: string,
    readonly differences: readonly string[],
  ) {
    super(
      `The search folder ${uri} belongs to a search with a different input: ${differences.join('; ')}. ` +
        'Start a new search runId for the new input',
    );
  }
}

/** A write to a search folder by a workflow that does not own it. */
export class NotSearchOwnerError extends Error {
  override readonly name = 'NotSearchOwner';
  constructor(
    readonly uri: string,
    workflowId: string,
    why = `it is not one of the searches recorded in its ${SEARCH_JSON}`,
  ) {
    super(`Refusing to write to the search folder ${uri} for workflow ${JSON.stringify(workflowId)}: ${why}`);
  }
}

/** A search folder whose search.json already records MAX_SEARCH_OWNERS searches. Never retried. */
export class SearchOwnersFullError extends Error {
  override readonly name = 'SearchOwnersFull';
  constructor(readonly uri: string) {
    super(`The search folder ${uri} already records ${MAX_SEARCH_OWNERS} searches started with this input (the owners in its ${SEARCH_JSON}): start this search with a new runId`);
  }
}

/** trainModel input fields that decide neither what a trial computes nor how it ranks (see the top). */
const BASE_FIELDS_NOT_IN_IDENTITY = new Set(['runId', 'resume', 'checkpoint', 'timeouts', 'continueAsNewEvery', 'historyLimit', 'tracking']);

/** The fields of `config` that decide the search's trials (see the top of this file). */
export function searchIdentityOf(config: SearchConfig): SearchIdentity {
  const options = STRATEGY_OPTIONS[config.strategy];
  const base = Object.fromEntries(Object.entries(config.base).filter(([k]) => !BASE_FIELDS_NOT_IN_IDENTITY.has(k)));
  return {
    base,
    space: config.space,
    strategy: config.strategy,
    metric: config.metric,
    mode: config.mode,
    maxTrials: config.maxTrials ?? null,
    ...(options.seed && { seed: config.seed }),
    ...(options.rungs && { eta: config.eta, minEpochs: config.minEpochs ?? null }),
    ...(options.rounds && { roundEpochs: config.roundEpochs ?? null, quantile: config.quantile }),
  };
}

function parseRecord(store: CheckpointStore, bytes: Buffer): SearchRecord {
  try {
    const record = JSON.parse(bytes.toString('utf8')) as SearchRecord;
    if (record && typeof record.fingerprint === 'string' && Array.isArray(record.owners)) return record;
  } catch {
    // reported below
  }
  throw new SearchIdentityMismatchError(store.uri, [`its ${SEARCH_JSON} is not a search record`]);
}

/**
 * Claims the search folder for `workflowId` (see the top of this file): writes search.json if absent
 * (after checking the folder is not inside another's), else checks the identity and adds the
 * workflow to the owners. Throws SearchIdentityMismatchError or NestedFolderError.
 */
export async function claimSearchFolder(
  store: CheckpointStore,
  config: SearchConfig,
  workflowId: string,
  open: AncestorOpener,
  now: () => Date = () => new Date(),
): Promise<{ readonly created: boolean }> {
  const identity = JSON.parse(canonicalJson(searchIdentityOf(config))) as SearchIdentity;
  const fingerprint = fingerprintOf(identity);
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await store.getVersioned(SEARCH_JSON);
    let next: SearchRecord;
    if (!current) {
      await assertNotNested('search', store, open);
      next = { format: SEARCH_FORMAT, fingerprint, identity, createdAt: now().toISOString(), owners: [workflowId] };
    } else {
      const recorded = parseRecord(store, current.data);
      if (recorded.fingerprint !== fingerprint) {
        const differences = identityDifferences(recorded.identity ?? {}, identity);
        throw new SearchIdentityMismatchError(store.uri, differences.length > 0 ? differences : ['the fingerprint differs']);
      }
      if (recorded.owners.includes(workflowId)) return { created: false };
      if (recorded.owners.length >= MAX_SEARCH_OWNERS) throw new SearchOwnersFullError(store.uri);
      next = { ...recorded, owners: [...recorded.owners, workflowId] };
    }
    try {
      await store.putIfVersion(SEARCH_JSON, Buffer.from(JSON.stringify(next, null, 1)), current?.version);
      if (!current) await recheckClaim(store, SEARCH_JSON, () => assertNotNested('search', store, open));
      return { created: !current };
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
    }
  }
  throw new Error(`Could not update ${store.uriOf(SEARCH_JSON)}: too many concurrent writers`);
}

/**
 * Throws NotSearchOwnerError unless `workflowId` owns the search folder. A folder without a
 * search.json (a search started before folders had owners) has no owner to check, unless
 * `requireRecord` (writes that only claimed searches make: the search log) refuses it too.
 */
export async function assertSearchOwner(store: CheckpointStore, workflowId: string, opts: { readonly requireRecord?: boolean } = {}): Promise<void> {
  const bytes = await store.get(SEARCH_JSON);
  if (!bytes) {
    if (opts.requireRecord) throw new NotSearchOwnerError(store.uri, workflowId, 'it has no search.json (claimSearchFolder writes it before the first trial)');
    return;
  }
  if (!parseRecord(store, bytes).owners.includes(workflowId)) throw new NotSearchOwnerError(store.uri, workflowId);
}
