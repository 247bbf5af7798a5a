/**
 * Search attributes the workflows publish. The dev server started by `npm run server` registers
 * them; on another cluster create them once (see README: `temporal operator search-attribute create`).
 */
import { defineSearchAttributeKey } from '@temporalio/common';

export const SEARCH_ATTRIBUTES = {
  status: defineSearchAttributeKey('DurableTrainStatus', 'KEYWORD'),
  epoch: defineSearchAttributeKey('DurableTrainEpoch', 'INT'),
  bestMetric: defineSearchAttributeKey('DurableTrainBestMetric', 'DOUBLE'),
} as const;

/** `NAME=Type` pairs in the Temporal CLI's spelling, for `--search-attribute`. */
export const SEARCH_ATTRIBUTE_CLI_ARGS: readonly string[] = [
  'DurableTrainStatus=Keyword',
  'DurableTrainEpoch=Int',
  'DurableTrainBestMetric=Double',
];
