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
export { sepVgg, sepVggChannels, resolveSepVggOptions, type SepVggOptions } from './models/sepvgg/sepvgg.js';
export {
  inceptionV3,
  inceptionV3MinInput,
  inceptionV3Sizes,
  resolveInceptionV3Options,
  type InceptionV3Options,
} from './models/inception_v3/inception_v3.js';
export { buildModel, getModelEntry, modelNames, preprocessInput, registerModel, type ModelEntry } from './models/registry.js';
export { referenceBackend } from './backends/index.js';
export {
  loadWeights,
  saveWeights,
  sniffWeightFormat,
  weightFormatFromPath,
  type LoadMode,
  type LoadWeightsOptions,
  type LoadWeightsReport,
  type WeightFormat,
} from './io/model-weights.js';
export { WeightFileError } from './io/errors.js';
export { openWeights, type WeightsSource, type ModelRecord } from './io/weights-source.js';
export { exportOnnx, type ExportOnnxOptions } from './io/onnx-model.js';
export { calibrate, type CalibrateOptions, type CalibrationImages } from './infer/calibrate.js';
export { simulateInt8, Int8Simulator, type SimulateInt8Options } from './infer/simulate-int8.js';
export { CalibrationError } from './infer/calibration-check.js';
export { GraphInterpreter, int8Graph } from './infer/interpret.js';
export type { Int8Calibration, ValueQuant, CalibrationMethod } from './infer/quant-types.js';
export { readInt8Calibration, saveQuantizedWeights } from './io/quantized-file.js';
export {
  classify,
  decodePredictions,
  imagenetClassNames,
  ImageError,
  imageInputs,
  loadImage,
  predictImages,
  type ClassScore,
  type DecodeOptions,
  type ImagePrediction,
  type Interpolation,
  type PredictOptions,
} from './predict/predict.js';
export { readImagePixels, centerCropBox, MAX_IMAGE_PIXELS, type ImageAugment, type ImageReadOptions } from './data/image-file.js';

export { Optimizer, OPTIMIZERS, type OptimizerName, type OptimizerOptions, type OptimizerState } from './train/optimizers.js';
export { learningRateAt, SCHEDULES, type ScheduleName, type ScheduleOptions } from './train/schedules.js';
export { ExponentialMovingAverage } from './train/ema.js';
export {
  averagePrecisionAtK,
  evaluate,
  MAP_K,
  type MeanAveragePrecision,
  meanAveragePrecision,
  topKCorrect,
  type EvalResult,
} from './train/metrics.js';
export {
  train,
  DEFAULT_TRAIN_CONFIG,
  defaultLearningRate,
  TrainingDivergedError,
  type TrainConfig,
  type TrainResult,
  type RunOptions,
} from './train/trainer.js';
export { applyPhase, buildTransferModel, type Phase, type TransferConfig, type TransferModel } from './train/transfer.js';
export { DataParallel, ReplicaError, type DataParallelOptions } from './train/parallel/data-parallel.js';
export * as data from './data/index.js';

export {
  compileInference,
  CompiledInference,
  CompileError,
  compiledFallbackReason,
  releaseCompiledInference,
  type CompileInferenceOptions,
  type CompiledInferenceInfo,
  type Precision,
  type PlanLayout,
  int8Hardware,
  setInferencePrecision,
  type InferencePrecision,
} from './infer/index.js';
export { runBench, type BenchOptions, type BenchRow, type PeerResult } from './bench/run.js';
export { CASES as BENCH_CASES, type BenchCase, type CaseName as BenchCaseName } from './bench/cases.js';
export { forwardFlops, trainingFlops, layerMultiplyAdds } from './bench/flops.js';
