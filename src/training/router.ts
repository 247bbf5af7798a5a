/**
 * Picks the training route: from a run's model spec (train, evaluate a checkpoint) or from an
 * exported model's model.json (evaluate exported models, warm start). Asks each route in turn, so
 * adding a route is one entry in builtInRoutes.
 */
import type { ModelSpec } from '../config/train-config';
import { EagerRoute } from './eager/route';
import { LAYERS_MODEL_FORMAT } from './eager/serialization';
import { NonRetryableTrainingError } from './protocol';
import type { ModelFiles, RouteDeps, TrainingRoute } from './route';
import { SavedModelRoute } from './savedmodel/route';
import { SAVEDMODEL_WEIGHTS_FORMAT } from './savedmodel/serialization';

/** Every route this trainer offers, in the order the router asks them. */
export function builtInRoutes(deps: RouteDeps): TrainingRoute[] {
  return [new SavedModelRoute(deps), new EagerRoute(deps)];
}

export class Router {
  constructor(readonly routes: readonly TrainingRoute[]) {}

  forSpec(spec: ModelSpec): TrainingRoute {
    const route = this.routes.find((r) => r.handlesSpec(spec));
    if (!route) {
      throw new NonRetryableTrainingError(
        `Expected \`model\` to be { name, params }, { topology } or { kind: "savedmodel", uri }, got ${JSON.stringify(spec)}: no training route takes it`,
      );
    }
    return route;
  }

  forExport(model: ModelFiles): TrainingRoute {
    const route = this.routes.find((r) => r.handlesExport(model.description));
    if (!route) {
      throw new NonRetryableTrainingError(
        `Expected the model.json at ${model.uri} to be a tfjs-layers model (format \`${LAYERS_MODEL_FORMAT}\`) or a SavedModel's weights ` +
          `(format \`${SAVEDMODEL_WEIGHTS_FORMAT}\`), got format ${JSON.stringify(model.description.format)}`,
      );
    }
    return route;
  }
}
