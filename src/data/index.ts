/**
 * The data layer: datasets, readers, splits, transforms and the batch loader.
 *
 *   const train = await loadDataset('fashion-mnist', 'train');
 *   const { train: t, validation: v } = splitIndices(train, { validationFraction: 0.1, seed: 1 });
 *   const loader = new DataLoader(train, { batchSize: 128, indices: t, seed: 1,
 *     preprocessing: 'xception', augment: { randomCrop: { padding: 2 }, horizontalFlip: true } });
 *   for await (const batch of loader) { ... }   // one epoch; loader.getState() for checkpoints
 *
 * Image folders are streamed rather than loaded: `openTrainingData({ dataset: 'folder:photos', … })`
 * lists the folder and returns StreamLoaders with the same interface (BatchLoader).
 */
export { DatasetError } from './errors.js';
export {
  type ImageDataset,
  type FromArraysOptions,
  FASHION_MNIST_CLASS_NAMES,
  MNIST_CLASS_NAMES,
  fromArrays,
  validateDataset,
  subsetDataset,
  imageSize,
  firstLabelOutOfRange,
} from './dataset.js';
export {
  type IdxArray,
  type Split,
  type IdxDatasetOptions,
  type IdxReadOptions,
  FASHION_MNIST_DIR,
  MAX_IDX_BYTES,
  parseIdx,
  readIdxFile,
  idxFileCandidates,
  loadIdxDataset,
  loadFashionMnist,
  loadMnist,
} from './idx.js';
export { type CifarVariant, cifarRecordSize, parseCifarBatch, loadCifar, loadCifar10, loadCifar100 } from './cifar.js';
export {
  type ImageFolderOptions,
  type ImageFolderListing,
  IMAGE_EXTENSIONS,
  listImageFolder,
  scanImageFolder,
  loadImageFolder,
} from './folder.js';
export { type SplitOptions, splitIndices, splitDataset } from './split.js';
export {
  type Preprocessing,
  type CropBox,
  type RandomResizedCropOptions,
  type AugmentOptions,
  type SamplePlan,
  PREPROCESSINGS,
  preprocessingAffine,
  preprocessPixels,
  resizeBilinear,
  randomResizedCropBox,
  validateAugment,
  buildSample,
} from './transforms.js';
export {
  type Batch,
  type BatchLoader,
  type LoaderOptions,
  type LoaderState,
  type MemoryLoaderState,
  type StreamLoaderState,
  type WaitClock,
  DataLoader,
  timedBatches,
} from './loader.js';
export { type FileSamples, type ReadPixels, type StreamAugment, type StreamLoaderOptions, StreamLoader, mixSeed } from './stream-loader.js';
export {
  type TrainingAugment,
  type TrainingDataOptions,
  type TrainingData,
  type EvaluationDataOptions,
  DEFAULT_FOLDER_IMAGE_SIZE,
  openTrainingData,
  openEvaluationData,
  matchClasses,
} from './training-data.js';
export {
  type DatasetKind,
  type DatasetSpec,
  type DatasetLoadOptions,
  DATASET_KINDS,
  type ImageFolderLayout,
  parseDatasetSpec,
  loadDataset,
  imageFolderSplitDir,
  imageFolderLayout,
} from './spec.js';
export { makeMosaic, MOSAIC_DEFAULTS, type MosaicOptions, type MosaicPlacement, parseMosaicSpec } from './mosaic.js';
export { loadMultiLabelFolder, parseLabelsCsv, readLabelsCsv } from './labels-csv.js';
