/**
 * Every `patched()` id of the workflows, in one place. A patch id is recorded in the histories of
 * runs that took the new branch, so its VALUE is frozen once released: renaming one would make every
 * in-flight run that recorded it fail to replay. New ids are named `<workflow>-<change>`
 * (`train-model-…`, `search-…`, `retrain-…`, `input-…`); the first four below predate that scheme
 * and keep their recorded values. test/fast/patches.test.ts checks that workflow code calls
 * `patched()` only with these constants and that no two share a value.
 *
 * See README "Changing workflow code while runs are in flight".
 */

/** Any workflow: the worker's URI allow-list is checked before the first activity (histories recorded before have no marker). */
export const URI_CHECK_PATCH = 'dt-check-uris';
/** Any workflow: inputs past the bounds (config/bounds.ts) fail. Asked only when an input is past them. */
export const INPUT_BOUNDS_PATCH = 'input-size-bounds';
/** trainModel: a monitor naming no metric fails (InvalidConfig). Asked only where it fails. */
export const UNKNOWN_MONITOR_PATCH = 'fail-on-unknown-monitor';
/** retrainModel: the child run's workflow id is unique per retrain (older retrains keep the id they started with). */
export const RETRAIN_RUN_ID_PATCH = 'retrain-run-id-unique';

/** trainModel: status, epoch and best metric in one search-attribute upsert (was two). */
export const SINGLE_UPSERT_PATCH = 'train-model-single-search-attribute-upsert';
/**
 * trainModel: one activity per epoch (trainEpoch: train, evaluate, record) instead of two
 * (trainUntilStep, evaluateCheckpoint): one round trip and 3 history events fewer per epoch.
 */
export const EPOCH_ACTIVITY_PATCH = 'train-model-epoch-activity';
/**
 * trainModel: `resume` with a `maxEpochs` below the epochs the run already recorded fails
 * (InvalidConfig) instead of exporting an earlier epoch over the run's model. The marker is written
 * only when the check refuses, so every other history is unchanged.
 */
export const RESUME_NOT_SHORTER_PATCH = 'train-model-resume-not-shorter';

/** trainModel: a sharded `{date}` + `window` URI is resolved at the run's nominal time (asked only by windowed inputs). */
export const TRAIN_DATA_WINDOW_PATCH = 'train-model-data-window';
/** retrainModel: the same resolution, once, for the challenger and the champion's evaluation (asked only by windowed inputs). */
export const RETRAIN_DATA_WINDOW_PATCH = 'retrain-model-data-window';

/** hyperparameterSearch: an edit that signals a running trial (pause, resume, stop). */
export const LIVE_EDITS_PATCH = 'search-live-edits';
/** hyperparameterSearch: a new search claims its folder (search.json: its identity and owner) before its first trial. */
export const SEARCH_OWNER_PATCH = 'search-folder-owner';
/** hyperparameterSearch: pbt refuses space paths it cannot change on a copied checkpoint (searches started before replay without). */
export const PBT_SPACE_PATCH = 'pbt-space-paths';
/** hyperparameterSearch: a pbt search whose reports would outgrow workflow state fails at its start (asked only when one would). */
export const PBT_BOUNDS_PATCH = 'pbt-state-bounds';

/**
 * hyperparameterSearch: status, trials finished and best metric in one search-attribute upsert
 * (was two), and none when nothing changed since the last (the best found by a heap, not a sort).
 */
export const SEARCH_SINGLE_UPSERT_PATCH = 'search-single-search-attribute-upsert';

/**
 * hyperparameterSearch: a new search writes its trial rows, edits and lineage to its log
 * (docs/search-log.md, `append` commands running appendSearchLog). Asked once, at a new search's
 * start; the answer is carried in its state (`store`) through continue-as-new.
 */
export const SEARCH_STORE_ROWS_PATCH = 'search-store-rows';
/**
 * hyperparameterSearch: children are started with parentClosePolicy ABANDON and continue-as-new does
 * not wait for them (no drain); their ends reach the next run by `trialEnded` and fetchTrialOutcome.
 * Asked once per run, at its start: a run keeps one way throughout.
 */
export const SEARCH_NO_DRAIN_PATCH = 'search-no-drain';
/** trainModel started by a search: signals the search `trialEnded` with its own workflow id as it ends. */
export const TRAIN_MODEL_REPORT_PATCH = 'train-model-report-to-search';

/** hyperparameterSearch: at its end, the best trial's learning curve is drawn (its trials draw none). */
export const SEARCH_BEST_CURVE_PATCH = 'search-best-trial-learning-curve';

/** Every id above (the test checks this list against the exports). */
export const PATCH_IDS: readonly string[] = [
  URI_CHECK_PATCH,
  INPUT_BOUNDS_PATCH,
  UNKNOWN_MONITOR_PATCH,
  RETRAIN_RUN_ID_PATCH,
  SINGLE_UPSERT_PATCH,
  EPOCH_ACTIVITY_PATCH,
  RESUME_NOT_SHORTER_PATCH,
  TRAIN_DATA_WINDOW_PATCH,
  RETRAIN_DATA_WINDOW_PATCH,
  LIVE_EDITS_PATCH,
  SEARCH_OWNER_PATCH,
  PBT_SPACE_PATCH,
  PBT_BOUNDS_PATCH,
  SEARCH_SINGLE_UPSERT_PATCH,
  SEARCH_BEST_CURVE_PATCH,
  SEARCH_STORE_ROWS_PATCH,
  SEARCH_NO_DRAIN_PATCH,
  TRAIN_MODEL_REPORT_PATCH,
];
