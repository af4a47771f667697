/**
 * The data layer: datasets, readers, splits, transforms and the batch loader.
 *
 *   const train = await loadDataset('fashion-mnist', 'train');
 *   const { train: t, validation: v } = splitIndices(train, { validationFraction: 0.1, seed: 1 });
 *   const loader = new DataLoader(train, { batchSize: 128, indices: t, seed: 1,
 *     preprocessing: 'xception', augment: { randomCrop: { padding: 2 }, horizontalFlip: true } });
 *   for await (const batch of loader) { ... }   // one epoch; loader.getState() for checkpoints
 */
export { DatasetError } from './errors.js';
export {
  type ImageDataset, type FromArraysOptions, FASHION_MNIST_CLASS_NAMES, MNIST_CLASS_NAMES,
  fromArrays, validateDataset, subsetDataset, imageSize, firstLabelOutOfRange,
} from './dataset.js';
export {
  type IdxArray, type Split, type IdxDatasetOptions, FASHION_MNIST_DIR,
  parseIdx, readIdxFile, idxFileCandidates, loadIdxDataset, loadFashionMnist, loadMnist,
} from './idx.js';
export { type CifarVariant, cifarRecordSize, parseCifarBatch, loadCifar, loadCifar10, loadCifar100 } from './cifar.js';
export { type ImageFolderOptions, IMAGE_EXTENSIONS, scanImageFolder, loadImageFolder } from './folder.js';
export { type SplitOptions, splitIndices, splitDataset } from './split.js';
export {
  type Preprocessing, type CropBox, type RandomResizedCropOptions, type AugmentOptions, type SamplePlan,
  PREPROCESSINGS, preprocessingAffine, preprocessPixels, resizeBilinear, randomResizedCropBox, validateAugment, buildSample,
} from './transforms.js';
export { type Batch, type LoaderOptions, type LoaderState, DataLoader } from './loader.js';
export {
  type DatasetKind, type DatasetSpec, type DatasetLoadOptions, DATASET_KINDS,
  parseDatasetSpec, loadDataset, imageFolderSplitDir,
} from './spec.js';
