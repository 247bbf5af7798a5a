/**
 * WORKFLOW_TYPES (src/workflow-types.ts) names the workflows the worker bundles: each name is an
 * exported function of src/workflows/index.ts, and every exported workflow function is named there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WORKFLOW_TYPES } from '../../src/workflow-types';
import * as workflows from '../../src/workflows';

test('WORKFLOW_TYPES are exactly the workflow functions src/workflows exports', () => {
  // Exported functions that are workflows: async functions (signals/queries/updates are objects).
  const exported = Object.entries(workflows)
    .filter(([, v]) => typeof v === 'function' && v.constructor.name === 'AsyncFunction')
    .map(([k]) => k)
    .sort();
  assert.deepEqual(Object.values(WORKFLOW_TYPES).sort(), exported);
});
