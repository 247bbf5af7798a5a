/**
 * No run or search folder inside another's. A run folder is claimed when its run.json is first
 * written (run-identity.ts), a search folder when its search.json is (search-identity.ts); before
 * either, this module checks that
 *
 *   - the folder is not the other kind's folder (a run in a folder holding search.json, a search in
 *     one holding run.json);
 *   - no folder above it, up to the worker's allow-list (the walk stops at the first ancestor the
 *     worker may not open), holds a run.json or a search.json;
 *   - nothing below it does (a folder claimed around other runs would make them nested).
 *
 * The one exception is a search's own trial, `<search>/trial-<n>`: it may be claimed by a trainModel
 * whose parent workflow is one of the owners recorded in the search's search.json. Temporal sets a
 * child's parent; no input can, so a caller who starts trainModel with `checkpoint.uri` naming a
 * search folder and `runId: "trial-9"` is refused like any other nested run. A search's claim may
 * find `trial-<n>/run.json` below it: the trial folders of the same search run before this check
 * existed (each is still protected by its own run.json).
 */
import { RUN_JSON, SEARCH_JSON } from './layout';
import type { CheckpointStore } from './store';

export type FolderKind = 'run' | 'search';

/** A run or search folder that would be inside another's (or around one). Caused by the input: never retried. */
export class NestedFolderError extends Error {
  override readonly name = 'NestedFolder';
  constructor(
    readonly uri: string,
    message: string,
  ) {
    super(message);
  }
}

/** Opens the store of an ancestor folder; undefined when the worker may not (the walk up stops there). */
export type AncestorOpener = (uri: string) => CheckpointStore | undefined;

export interface ClaimContext {
  /** The claiming trainModel's parent workflow id (Temporal's, from workflowInfo().parent): a search's trial is its child. */
  readonly parentWorkflowId?: string | undefined;
  /**
   * The claiming trainModel's own workflow id (the activity's, from Temporal). A search names its
   * trial `<search>/trial-<n>` (`…/rung-<r>` later); a retrain's child is named after its run id,
   * which a caller chooses: without this, a retrainModel whose workflow id is an owner's and whose
   * run id is `trial-<n>` would pass as that search's trial.
   */
  readonly workflowId?: string | undefined;
}

/** Whether `workflowId` is the id a search with id `parent` gives its trial `trial` (search/state.ts childWorkflowId). */
function isTrialChildId(workflowId: string | undefined, parent: string, trial: string): boolean {
  if (workflowId === undefined) return false;
  const own = `${parent}/${trial}`;
  const rung = `${own}/rung-`;
  return workflowId === own || (workflowId.startsWith(rung) && /^[1-9]\d*$/.test(workflowId.slice(rung.length)));
}

const TRIAL_FOLDER = /^trial-[1-9]\d*$/;
const TRIAL_RUN_JSON = new RegExp(`^trial-[1-9]\\d*/${RUN_JSON.replace('.', '\\.')}$`);

/**
 * The folders above `uri`, nearest first: `gs://b/x/y/z` → `gs://b/x/y`, `gs://b/x`, `gs://b`;
 * `file:///a/b/c` → `file:///a/b`, `file:///a` (never the file system's root). Pure.
 */
export function ancestorUris(uri: string): string[] {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/]*)(\/.*)?$/i.exec(uri.replace(/\/+$/, ''));
  if (!m) return [];
  const authority = m[1]!;
  const segments = (m[2] ?? '').split('/').filter((s) => s !== '');
  const lowest = authority.endsWith('//') ? 1 : 0;
  const out: string[] = [];
  for (let n = segments.length - 1; n >= lowest; n--) out.push(n === 0 ? authority : `${authority}/${segments.slice(0, n).join('/')}`);
  return out;
}

/** The last segment of a folder URI. */
function lastSegment(uri: string): string {
  return uri.replace(/\/+$/, '').split('/').pop() ?? '';
}

/**
 * Whether `bytes` is a run or search record that durable-train wrote (`durable-train/run@…`,
 * `durable-train/search@…`): a user's own file that happens to be called run.json (an input file
 * beside their runs, say) does not make its folder a run folder.
 */
export function isFolderRecord(bytes: Buffer | undefined): boolean {
  if (!bytes || bytes.length > 16 * 1024 * 1024) return false;
  try {
    const format = (JSON.parse(bytes.toString('utf8')) as { format?: unknown }).format;
    return typeof format === 'string' && /^durable-train\/(run|search)@/.test(format);
  } catch {
    return false;
  }
}

/** The owners a search.json records (workflow ids); empty when it cannot be read. */
export function searchOwnersOf(bytes: Buffer): string[] {
  try {
    const owners = (JSON.parse(bytes.toString('utf8')) as { owners?: unknown }).owners;
    return Array.isArray(owners) ? owners.filter((o): o is string => typeof o === 'string') : [];
  } catch {
    return [];
  }
}

function refused(kind: FolderKind, uri: string, why: string): NestedFolderError {
  const field = kind === 'run' ? '`checkpoint.uri` and `runId`' : '`base.checkpoint.uri` and `runId`';
  return new NestedFolderError(
    uri,
    `Refusing to start a ${kind} in ${uri}: ${why}. A run or search folder is never created inside another's (or around one): choose ${field} that name a folder of its own`,
  );
}

/**
 * Throws NestedFolderError unless `store`'s folder may be claimed as a `kind` folder (see the top
 * of this file). Reads a few small objects: the folder's own markers, each ancestor's, and the
 * folder's key list (empty for a new folder).
 */
export async function assertNotNested(kind: FolderKind, store: CheckpointStore, open: AncestorOpener, ctx: ClaimContext = {}): Promise<void> {
  const other = kind === 'run' ? SEARCH_JSON : RUN_JSON;
  if (isFolderRecord(await store.get(other))) throw refused(kind, store.uri, `it is a ${kind === 'run' ? 'search' : 'run'}'s folder (it holds ${other})`);
  let first = true;
  for (const uri of ancestorUris(store.uri)) {
    const ancestor = open(uri);
    if (!ancestor) break;
    if (isFolderRecord(await ancestor.get(RUN_JSON))) throw refused(kind, store.uri, `it is inside the run folder ${ancestor.uri} (it holds ${RUN_JSON})`);
    const search = await ancestor.get(SEARCH_JSON);
    if (search && isFolderRecord(search)) {
      const ownTrial =
        kind === 'run' && first && TRIAL_FOLDER.test(lastSegment(store.uri)) &&
        ctx.parentWorkflowId !== undefined && searchOwnersOf(search).includes(ctx.parentWorkflowId) &&
        isTrialChildId(ctx.workflowId, ctx.parentWorkflowId, lastSegment(store.uri));
      if (!ownTrial) {
        throw refused(kind, store.uri, `it is inside the search folder ${ancestor.uri} (it holds ${SEARCH_JSON}), and this ${kind} is not a trial that search started`);
      }
    }
    first = false;
  }
  const candidates = (await store.list('')).filter(
    (k) => (k.endsWith(`/${RUN_JSON}`) || k.endsWith(`/${SEARCH_JSON}`)) && !(kind === 'search' && TRIAL_RUN_JSON.test(k)),
  );
  let inside: string | undefined;
  for (const k of candidates) {
    if (isFolderRecord(await store.get(k))) {
      inside = k;
      break;
    }
  }
  if (inside !== undefined) throw refused(kind, store.uri, `it holds another folder's record, ${store.uriOf(inside)}`);
}
