/**
 * The workflow type names durable-train registers, spelled once: each is the name of the exported
 * workflow function in src/workflows/ (test/fast/workflow-types.test.ts checks that). The CLI starts,
 * lists and renders workflows by these names; schedules start `retrain`. Pure: workflow code may
 * import it too.
 */
export const WORKFLOW_TYPES = { train: 'trainModel', search: 'hyperparameterSearch', retrain: 'retrainModel' } as const;

export type WorkflowTypeName = (typeof WORKFLOW_TYPES)[keyof typeof WORKFLOW_TYPES];
