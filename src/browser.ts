/**
 * xception for the browser: the library without Node built-ins on its import path (no sharp,
 * h5wasm, node:fs). Plain ESM: a page imports dist/src/browser.js as served, no bundler needed
 * (scripts/browser-imports.mjs checks the import graph). Weights are safetensors bytes; images
 * are decoded by the page (canvas) and shaped by the same code as in Node.
 */
import './browser/backend.js';

export type { Backend, DType } from './core/backend.js';
export { backward } from './core/autograd.js';
export { tensor, zeros, ones, fill } from './core/creation.js';
export { getBackend, setBackend, noGrad, tidy, keep, registeredBackends } from './core/engine.js';
export * from './core/errors.js';
export { Random } from './core/random.js';
export { Tensor } from './core/tensor.js';
export * as ops from './core/ops/index.js';

export { Model } from './nn/model.js';
export { xception, resolveXceptionOptions, type XceptionOptions } from './models/xception/xception.js';
export { buildModel, getModelEntry, modelNames, preprocessInput } from './models/registry.js';
export { referenceBackend } from './backends/reference/index.js';

export { readSafetensors, writeSafetensors, type SafetensorsContents } from './io/safetensors-format.js';
export { WeightFileError } from './io/errors.js';
export { recordFromMetadata, modelRecordOf, type ModelRecord } from './io/model-record.js';
export { assignByName, namedWeightsOf } from './io/named-weights.js';

export { parseIdx, type IdxArray } from './data/idx-format.js';
export { FASHION_MNIST_CLASS_NAMES } from './data/dataset.js';
export { preprocessPixels, type Preprocessing } from './data/transforms.js';
export { trainingPreprocessing, type ImagePreprocessing } from './data/image-preprocessing.js';
export { shapePixels, centerCropBox, type DecodedRgb } from './data/image-pixels.js';
export { classify, softmaxRows } from './predict/classify.js';
export { compileInference, CompiledInference, type CompileInferenceOptions, type CompiledInferenceInfo } from './infer/compiled.js';
export { compiledFallbackReason } from './infer/auto.js';

export { Optimizer, type OptimizerName, type OptimizerOptions } from './train/optimizers.js';
export { learningRateAt, type ScheduleName, type ScheduleOptions } from './train/schedules.js';
export { trainingStep, SMALL_IMAGE_XCEPTION_OPTIONS, type TrainingStepParts } from './train/step.js';

export {
  useBrowserBackend,
  type BrowserBackendChoice,
  type BrowserBackendOptions,
  type BrowserBackendPreference,
} from './browser/backend.js';
export { modelFromSafetensors, modelToSafetensors, type LoadedModel } from './browser/weights.js';
