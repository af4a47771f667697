/**
 * xception — the Xception family of convolutional networks in TypeScript.
 * Public tensors are NHWC float32; weights use Keras layouts and names.
 */
import './backends/index.js';

export type { Backend, DType } from './core/backend.js';
export { backward } from './core/autograd.js';
export { tensor, zeros, ones, fill, toBackend } from './core/creation.js';
export { getBackend, setBackend, noGrad, tidy, keep, registeredBackends, tryBackend } from './core/engine.js';
export * from './core/errors.js';
export { Random } from './core/random.js';
export { Tensor } from './core/tensor.js';
export * as ops from './core/ops/index.js';

export { Layer, Variable, SymbolicTensor } from './nn/layer.js';
export * from './nn/layers/convolutional.js';
export * from './nn/layers/core.js';
export * from './nn/layers/merge.js';
export * from './nn/layers/normalization.js';
export * from './nn/layers/pooling.js';
export { Model, kerasLayerOrder, type ForwardOptions, type ModelSummary, type SummaryRow } from './nn/model.js';

export { xception, xceptionChannels, resolveXceptionOptions, type XceptionOptions } from './models/xception/xception.js';
export {
  inceptionV3, inceptionV3MinInput, inceptionV3Sizes, resolveInceptionV3Options, type InceptionV3Options,
} from './models/inception_v3/inception_v3.js';
export { buildModel, getModelEntry, modelNames, preprocessInput, registerModel, type ModelEntry } from './models/registry.js';
export { referenceBackend } from './backends/index.js';
