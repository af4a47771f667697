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
export { readKerasH5, parseKerasH5, writeKerasH5, encodeKerasH5 } from './keras-h5.js';
export type { KerasLayer, KerasH5ReadOptions, KerasH5WriteOptions } from './keras-h5.js';
export { matchKerasWeights } from './keras-match.js';
export type { ModelLayerWeights, WeightAssignment, KerasMatchMode } from './keras-match.js';
export { OnnxGraphBuilder, attr, kerasConvKernelToOnnx, kerasDepthwiseKernelToOnnx, tfSamePads, OnnxDataType } from './onnx.js';
export type { OnnxAttribute, OnnxAttributeValue, OnnxDim, OnnxElemType, OnnxModelOptions, OnnxTensor } from './onnx.js';
export { modelToOnnx } from './onnx-export.js';
export type { OnnxExportOptions } from './onnx-export.js';
export { modelWeightSpec, modelToKerasLayers, applyKerasWeights, loadKerasH5Weights, saveKerasH5Weights, kerasH5WeightsBytes } from './keras-model.js';
