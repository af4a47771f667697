/** File formats: safetensors (own weights and checkpoints), Keras legacy H5, ONNX export. */
export { WeightFileError, OnnxGraphError } from './errors.js';
export type { NamedWeight } from './weights.js';
export { writeFileAtomic, writeFileAtomicSync } from './atomic.js';
export {
  writeSafetensors,
  readSafetensors,
  writeSafetensorsFile,
  writeSafetensorsFileSync,
  readSafetensorsFile,
  readSafetensorsFileSync,
} from './safetensors.js';
export type { SafetensorsContents } from './safetensors.js';
export { readKerasH5, readKerasH5Contents, parseKerasH5, writeKerasH5, encodeKerasH5 } from './keras-h5.js';
export type { KerasLayer, KerasH5Contents, KerasH5ReadOptions, KerasH5WriteOptions } from './keras-h5.js';
export { matchKerasWeights } from './keras-match.js';
export type { ModelLayerWeights, WeightAssignment, KerasMatchMode } from './keras-match.js';
export { OnnxGraphBuilder, attr, kerasConvKernelToOnnx, kerasDepthwiseKernelToOnnx, tfSamePads, OnnxDataType } from './onnx.js';
export type { OnnxAttribute, OnnxAttributeValue, OnnxDim, OnnxElemType, OnnxModelOptions, OnnxTensor } from './onnx.js';
export {
  loadWeights,
  saveWeights,
  sniffWeightFormat,
  weightFormatFromPath,
  peekSafetensorsMetadata,
  assignByName,
  loadKerasLayers,
  namedWeightsOf,
  WEIGHTS_FORMAT_TAG,
} from './model-weights.js';
export type { LoadMode, LoadWeightsOptions, LoadWeightsReport, WeightFormat } from './model-weights.js';
export { openWeights } from './weights-source.js';
export type { WeightsSource } from './weights-source.js';
export {
  validateModelRecord,
  modelRecordOf,
  recordToMetadata,
  recordFromMetadata,
  recordToH5Attributes,
  recordFromH5Attributes,
  RECORD_LIMITS,
} from './model-record.js';
export type { ModelRecord } from './model-record.js';
export { exportOnnx, ONNX_MIN_OPSET, ONNX_MAX_OPSET } from './onnx-model.js';
export type { ExportOnnxOptions } from './onnx-model.js';
export {
  modelWeightSpec,
  modelToKerasLayers,
  applyKerasWeights,
  loadKerasH5Weights,
  saveKerasH5Weights,
  kerasH5WeightsBytes,
} from './keras-model.js';
