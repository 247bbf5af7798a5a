/**
 * (5) The product on the graph route: trainModel, exactly as in (2) (dev server, worker, trainer
 * process, a checkpoint and an evaluation every epoch), training the same network exported as a
 * trainable SavedModel (the one (4) times bare). Needs what (2) and (4) need.
 */
import { pathToFileURL } from 'node:url';
import type { BenchRoute } from '../route';
import graphRoute, { exported } from './savedmodel';
import { closeStack, measureTrainModel, temporalAvailable } from './temporal';

const route: BenchRoute = {
  name: 'trainModel on the graph route',
  async available() {
    const temporal = await temporalAvailable();
    if (temporal !== true) return temporal;
    return graphRoute.available();
  },
  measure: (opts) => measureTrainModel(opts, { model: { kind: 'savedmodel', uri: pathToFileURL(exported(opts.model)).href } }),
  close: closeStack,
};
export default route;
