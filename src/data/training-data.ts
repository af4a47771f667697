/**
 * The data of a training run, from a dataset spec: the training loader, the per-epoch evaluation
 * loader (a seeded validation split, or the test split), the final test loader, the class names,
 * and one line describing it all for the start-up message.
 *
 *   const data = await openTrainingData({ dataset: 'folder:photos', scaling: 'xception',
 *     augment: { cropPadding: 0, flip: true, randomResizedCrop: true }, validationFraction: 0.2,
 *     seed: 0, batchSize: 8 });
 *   for await (const batch of data.train.epochBatches()) { … }
 *
 * Built-in datasets (IDX, CIFAR) are loaded into memory (DataLoader); image folders are listed
 * and streamed from disk (StreamLoader), so their size does not matter.
 */
import { OptionError } from '../core/errors.js';
import { type ImageDataset, subsetDataset } from './dataset.js';
import { DatasetError } from './errors.js';
import { type ReadPixels, type FileSamples, StreamLoader } from './stream-loader.js';
import { describeImagePreprocessing, type ImagePreprocessing, trainingPreprocessing } from './image-preprocessing.js';
import { type BatchLoader, DataLoader } from './loader.js';
import { type ImageFolderListing, listImageFolder } from './folder.js';
import { type DatasetSpec, imageFolderLayout, parseDatasetSpec } from './spec.js';
import { splitIndices } from './split.js';
import type { Preprocessing } from './transforms.js';

/** Image folders are read at this size unless told otherwise (Xception's ImageNet input). */
export const DEFAULT_FOLDER_IMAGE_SIZE = 299;

/** Built-in datasets are evaluated in batches this large (cheap at their small sizes). */
const MEMORY_EVAL_BATCH = 256;

export interface TrainingAugment {
  /** Random shift after zero padding by this many pixels (built-in datasets; 0 = off). */
  cropPadding: number;
  flip: boolean;
  /** Inception-style random-resized crop. */
  randomResizedCrop: boolean;
}

export interface TrainingDataOptions {
  dataset: string;
  /** Side of the square inputs: default the dataset's own (built-in) or folderImageSize (image folders). */
  imageSize?: number;
  /** Image folders' default side (299, Xception's): a transfer run's is its weights' input size. */
  folderImageSize?: number;
  /** Input channels: default the dataset's own (image folders: 3). */
  channels?: number;
  /** The model's pixel scaling (its preprocess_input). */
  scaling: Preprocessing;
  /** How image files become inputs (folders only); default trainingPreprocessing(scaling). */
  preprocessing?: ImagePreprocessing;
  augment: TrainingAugment;
  /** Hold out this fraction of the training split (seeded, stratified) for per-epoch evaluation; 0 = none. */
  validationFraction: number;
  seed: number;
  /** Use only N training / test images (image folders: N spread evenly over the sorted listing). */
  limitTrain?: number;
  limitTest?: number;
  batchSize: number;
  /** Image folders: leave unreadable images out (counted) instead of stopping. */
  skipBadImages?: boolean;
  /** Image folders: how files are read (tests), batches read ahead, images decoded at once. */
  readPixels?: ReadPixels;
  prefetch?: number;
  concurrency?: number;
}

export interface TrainingData {
  /** e.g. `fashion-mnist/train`, `folder:photos/train`. */
  name: string;
  train: BatchLoader;
  /** Evaluated after every epoch; null when there is nothing to evaluate on (see notes). */
  evaluation: BatchLoader | null;
  evalName: 'validation' | 'test';
  /** The final evaluation when `evaluation` is a validation split and a test split exists. */
  test: BatchLoader | null;
  classes: number;
  /** classNames[k] names label k; labels are indices into the training split's sorted class names. */
  classNames: readonly string[] | undefined;
  /** Several labels per image: batches carry multi-hot `targets` (fashion-mosaic, labelled folders). */
  multiLabel: boolean;
  /** [H, W, C] of every input. */
  sampleShape: [number, number, number];
  /** One line for the start-up message: dataset, images, classes, size, resize policy, augmentation. */
  description: string;
  /** Further lines worth saying once (no evaluation split, classes missing from the test split). */
  notes: string[];
}

/** Opens a run's data as `options.dataset` names it. */
export async function openTrainingData(options: TrainingDataOptions): Promise<TrainingData> {
  const spec = parseDatasetSpec(options.dataset);
  const fraction = options.validationFraction;
  if (!(typeof fraction === 'number' && fraction >= 0 && fraction < 1))
    throw new OptionError(`validation fraction must be in [0, 1), got ${fraction}`);
  return spec.kind === 'folder' ? openFolderData(spec, options) : openMemoryData(spec, options);
}

function countOf(n: number, what: string, plural = `${what}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? what : plural}`;
}

function describeClasses(names: readonly string[] | undefined, classes: number): string {
  if (!names) return countOf(classes, 'class', 'classes');
  const shown = names.slice(0, 4).join(', ');
  return `${countOf(classes, 'class', 'classes')} (${shown}${names.length > 4 ? ', …' : ''})`;
}

function describeAugment(a: TrainingAugment): string {
  const parts = [
    ...(a.randomResizedCrop ? ['random-resized crop'] : []),
    ...(a.cropPadding > 0 ? [`random shift ±${a.cropPadding} px`] : []),
    ...(a.flip ? ['horizontal flip'] : []),
  ];
  return parts.length > 0 ? parts.join(' + ') : 'none';
}

function describeSplits(train: number, held: number, fraction: number, test: number | null): string {
  const trainPart =
    held > 0
      ? `${countOf(train, 'training image')} + ${held.toLocaleString('en-US')} held out for validation (${+(100 * fraction).toFixed(2)}% of each class, seeded)`
      : countOf(train, 'training image');
  return test === null ? trainPart : `${trainPart}, ${test.toLocaleString('en-US')} test`;
}

// ---- built-in datasets (in memory) ----

function firstN(ds: ImageDataset, n: number | undefined): ImageDataset {
  if (n === undefined || n >= ds.count) return ds;
  return subsetDataset(
    ds,
    Int32Array.from({ length: n }, (_, i) => i),
    `${ds.name}[:${n}]`,
  );
}

async function openMemoryData(spec: DatasetSpec, o: TrainingDataOptions): Promise<TrainingData> {
  // Multi-label folders decode their files at the run's size (default the folders' 299).
  const decodeAt =
    spec.kind === 'multilabel'
      ? {
          imageSize: o.imageSize ?? o.folderImageSize ?? DEFAULT_FOLDER_IMAGE_SIZE,
          ...(o.channels === 1 || o.channels === 3 ? { channels: o.channels } : {}),
        }
      : {};
  const fullTrain = firstN(await spec.load('train', decodeAt), o.limitTrain);
  const testSet = firstN(await spec.load('test', decodeAt), o.limitTest);
  const split = o.validationFraction > 0 ? splitIndices(fullTrain, { validationFraction: o.validationFraction, seed: o.seed }) : null;
  const size = o.imageSize ?? fullTrain.height;
  const channels = o.channels ?? fullTrain.channels;
  const common = { preprocessing: o.scaling, size, channels };
  const augment = {
    ...(o.augment.cropPadding > 0 ? { randomCrop: { padding: o.augment.cropPadding } } : {}),
    horizontalFlip: o.augment.flip,
    ...(o.augment.randomResizedCrop ? { randomResizedCrop: true } : {}),
  };
  const train = new DataLoader(fullTrain, {
    batchSize: o.batchSize,
    shuffle: true,
    dropLast: false,
    seed: o.seed + 1,
    augment,
    ...common,
    ...(split ? { indices: split.train } : {}),
  });
  const testLoader = new DataLoader(testSet, { batchSize: MEMORY_EVAL_BATCH, shuffle: false, ...common });
  const evaluation = split
    ? new DataLoader(fullTrain, { batchSize: MEMORY_EVAL_BATCH, shuffle: false, indices: split.validation, ...common })
    : testLoader;
  const source = spec.dir ? `${spec.kind} (${spec.dir})` : spec.kind;
  const resized =
    size === fullTrain.height && size === fullTrain.width
      ? `${size}×${size} (the dataset's size)`
      : `${fullTrain.height}×${fullTrain.width} resized to ${size}×${size} (bilinear)`;
  const description =
    `data: ${source}: ${describeSplits(split ? split.train.length : fullTrain.count, split ? split.validation.length : 0, o.validationFraction, testSet.count)}; ` +
    `${describeClasses(fullTrain.classNames, fullTrain.classes)}; ${resized}, ${channels === 1 ? 'grey' : channels === 3 ? 'RGB' : `${channels} channels`}; augmentation ${describeAugment(o.augment)}`;
  return {
    name: fullTrain.name,
    train,
    evaluation,
    evalName: split ? 'validation' : 'test',
    test: split ? testLoader : null,
    classes: fullTrain.classes,
    classNames: fullTrain.classNames,
    multiLabel: fullTrain.targets !== undefined,
    sampleShape: train.sampleShape,
    description,
    notes: [],
  };
}

// ---- image folders (streamed) ----

/** N samples spread evenly over the listing (sorted by class), so every class keeps its share. */
function spread(samples: FileSamples, n: number | undefined): FileSamples {
  const count = samples.files.length;
  if (n === undefined || n >= count) return samples;
  const pick = Int32Array.from({ length: n }, (_, i) => Math.floor((i * count) / n));
  return { files: Array.from(pick, (k) => samples.files[k]!), labels: Int32Array.from(pick, (k) => samples.labels[k]!) };
}

/**
 * The evaluation split's samples labelled by the training split's class indices (classes match by
 * name). A class training lacks is an error; training classes the split lacks are returned.
 * `known` names the side whose classes count: the training split, or a trained model.
 */
export function matchClasses(
  train: ImageFolderListing,
  evaluation: ImageFolderListing,
  known: 'training split' | 'model' = 'training split',
): { samples: FileSamples; missing: string[] } {
  const index = new Map(train.classNames.map((name, k) => [name, k]));
  const unknown = evaluation.classNames.filter((name) => !index.has(name));
  if (unknown.length > 0) {
    const list = (names: readonly string[], max: number) => `${names.slice(0, max).join(', ')}${names.length > max ? ', …' : ''}`;
    const remedy =
      known === 'model'
        ? `evaluate on data with the model's classes only`
        : `a model cannot be scored on classes it never saw — add them to ${train.root} or remove them from ${evaluation.root}`;
    throw new DatasetError(
      `the evaluation data has ${unknown.length === 1 ? 'a class' : 'classes'} the ${known} lacks: ${unknown
        .slice(0, 5)
        .map((n) => `'${n}'`)
        .join(', ')}${unknown.length > 5 ? ', …' : ''} ` + `(the ${known}'s classes: ${list(train.classNames, 8)}); ${remedy}`,
      evaluation.root,
    );
  }
  const toTrain = evaluation.classNames.map((name) => index.get(name)!);
  const present = new Set(evaluation.classNames);
  return {
    samples: { files: evaluation.files, labels: Int32Array.from(evaluation.labels, (l) => toTrain[l]!) },
    missing: train.classNames.filter((name) => !present.has(name)),
  };
}

function folderAugment(a: TrainingAugment): { randomResizedCrop: boolean; horizontalFlip: boolean } {
  if (a.cropPadding > 0)
    throw new OptionError('--crop-padding shifts small built-in images; for image folders use --random-resized-crop (and --flip)');
  return { randomResizedCrop: a.randomResizedCrop, horizontalFlip: a.flip };
}

async function openFolderData(spec: DatasetSpec, o: TrainingDataOptions): Promise<TrainingData> {
  const layout = await imageFolderLayout(spec.dir);
  const trainList = await listImageFolder(layout.train);
  if (trainList.classNames.length < 2) {
    throw new DatasetError(
      `only one class folder ('${trainList.classNames[0]}'): a classifier needs at least two, one sub-folder of images per class`,
      layout.train,
    );
  }
  const evalList = layout.test ? await listImageFolder(layout.test) : null;
  const matched = evalList ? matchClasses(trainList, evalList) : null;
  const all = spread(trainList, o.limitTrain);
  const testSamples = matched ? spread(matched.samples, o.limitTest) : null;
  const classes = trainList.classNames.length;
  const split =
    o.validationFraction > 0
      ? splitIndices({ labels: all.labels, count: all.files.length, classes }, { validationFraction: o.validationFraction, seed: o.seed })
      : null;

  const size = o.imageSize ?? o.folderImageSize ?? DEFAULT_FOLDER_IMAGE_SIZE;
  const channels = o.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new OptionError(`image folders are read with 1 or 3 channels, not ${channels}`);
  const preprocessing = o.preprocessing ?? trainingPreprocessing(o.scaling);
  const common = {
    shape: [size, size, channels] as const,
    preprocessing,
    skipBadImages: o.skipBadImages ?? false,
    ...(o.readPixels ? { readPixels: o.readPixels } : {}),
    ...(o.prefetch ? { prefetch: o.prefetch } : {}),
    ...(o.concurrency ? { concurrency: o.concurrency } : {}),
  };
  const evalOptions = { ...common, batchSize: o.batchSize, shuffle: false };
  // Batch norm cannot train on one image at 1×1: a last batch of one is dropped (a different image each epoch).
  const trainCount = split ? split.train.length : all.files.length;
  const train = new StreamLoader(all, {
    ...common,
    batchSize: o.batchSize,
    shuffle: true,
    seed: o.seed + 1,
    augment: folderAugment(o.augment),
    dropLast: o.batchSize > 1 && trainCount % o.batchSize === 1,
    minBatch: Math.min(2, o.batchSize),
    ...(split ? { indices: split.train } : {}),
  });
  const testLoader = testSamples ? new StreamLoader(testSamples, evalOptions) : null;
  const evaluation = split ? new StreamLoader(all, { ...evalOptions, indices: split.validation }) : testLoader;

  const where = layout.kind === 'split' ? `${layout.train} + ${layout.test ?? '(no test split)'}` : `${spec.dir} (one folder per class)`;
  const sizeFrom =
    o.imageSize !== undefined
      ? ''
      : o.folderImageSize !== undefined
        ? " (the weights' input size; --image-size N)"
        : ' (default; --image-size N)';
  const sizeText = `${size}×${size} ${channels === 1 ? 'grey' : 'RGB'}${sizeFrom}`;
  const description =
    `data: image folder ${where}: ${describeSplits(trainCount, split ? split.validation.length : 0, o.validationFraction, testSamples ? testSamples.files.length : null)}; ` +
    `${describeClasses(trainList.classNames, classes)}; ${sizeText}; ${describeImagePreprocessing(preprocessing)}; augmentation ${describeAugment(o.augment)}`;
  const notes: string[] = [];
  if (!evaluation) {
    notes.push(
      `no evaluation split: training runs without per-epoch evaluation. For one, pass --validation 0.2 (holds out 20% of each class) ` +
        `or lay the folder out as ${spec.dir}/train/<class>/… + ${spec.dir}/test/<class>/…`,
    );
  }
  if (matched && matched.missing.length > 0) {
    notes.push(
      `the test split has no images of ${countOf(matched.missing.length, 'training class', 'training classes')} (${matched.missing.slice(0, 5).join(', ')}${matched.missing.length > 5 ? ', …' : ''}); it is scored on the others`,
    );
  }
  return {
    name: `folder:${spec.dir}`,
    train,
    evaluation,
    evalName: split ? 'validation' : 'test',
    test: split ? testLoader : null,
    classes,
    classNames: trainList.classNames,
    multiLabel: false,
    sampleShape: train.sampleShape,
    description,
    notes,
  };
}

// ---- evaluation of a trained model ----

export interface EvaluationDataOptions {
  dataset: string;
  /** The model's input [H, W, C]. */
  shape: readonly [number, number, number];
  scaling: Preprocessing;
  /** How image files become inputs (folders); default trainingPreprocessing(scaling). */
  preprocessing?: ImagePreprocessing;
  /** The model's outputs. */
  classes: number;
  /** The model's class names, when it records them: a folder's classes are then matched by name. */
  classNames?: readonly string[];
  batchSize: number;
  /** Only N images (image folders: spread evenly over the classes). */
  limit?: number;
  skipBadImages?: boolean;
  readPixels?: ReadPixels;
}

/**
 * The test split of a dataset for scoring a trained model, read as training read it: built-in
 * datasets from memory, image folders streamed, folder classes matched by name to the model's.
 */
export async function openEvaluationData(o: EvaluationDataOptions): Promise<{ loader: BatchLoader; description: string }> {
  const spec = parseDatasetSpec(o.dataset);
  const [h, w, c] = o.shape;
  if (spec.kind !== 'folder') {
    const ds = inModelLabels(
      firstN(await spec.load('test', spec.kind === 'multilabel' ? { imageSize: h, channels: c === 1 ? 1 : 3 } : {}), o.limit),
      o,
    );
    const loader = new DataLoader(ds, { batchSize: o.batchSize, shuffle: false, preprocessing: o.scaling, size: [h, w], channels: c });
    return { loader, description: `${ds.name}: ${countOf(ds.count, 'image')}` };
  }
  const layout = await imageFolderLayout(spec.dir);
  // DIR/<class>/… alone is an evaluation set as it stands; DIR/train needs its test split beside it.
  const evalDir = layout.kind === 'single' ? layout.train : layout.test;
  if (evalDir === null) {
    throw new DatasetError(
      `image folder has train/ but no test split to evaluate on (DIR/test, DIR/val or DIR/validation); pass --dataset folder:DIR with one, or a folder of class folders`,
      spec.dir,
    );
  }
  const listing = await listImageFolder(evalDir);
  const known = o.classNames ? namesOnly('the model', o.classNames) : listing;
  if (known.classNames.length > o.classes)
    throw new DatasetError(`${listing.classNames.length} class folders but the model has ${o.classes} outputs`, evalDir);
  const samples = spread(matchClasses(known, listing, 'model').samples, o.limit);
  const loader = new StreamLoader(samples, {
    batchSize: o.batchSize,
    shuffle: false,
    shape: [h, w, c],
    preprocessing: o.preprocessing ?? trainingPreprocessing(o.scaling),
    skipBadImages: o.skipBadImages ?? false,
    ...(o.readPixels ? { readPixels: o.readPixels } : {}),
  });
  const which = layout.kind === 'single' ? 'every image of ' : '';
  return { loader, description: `${which}${evalDir}: ${countOf(samples.files.length, 'image')}` };
}

/** The dataset with labels in the model's class indices: by name when both name their classes. */
function inModelLabels(ds: ImageDataset, o: EvaluationDataOptions): ImageDataset {
  if (!o.classNames || !ds.classNames) {
    if (ds.classes !== o.classes) throw new OptionError(`the model has ${o.classes} outputs, ${o.dataset} has ${ds.classes} classes`);
    return ds;
  }
  matchClasses(namesOnly('the model', o.classNames), namesOnly(o.dataset, ds.classNames), 'model'); // throws for a class the model lacks
  const index = new Map(o.classNames.map((name, k) => [name, k]));
  const toModel = ds.classNames.map((name) => index.get(name)!);
  const labels = Int32Array.from(ds.labels, (l) => toModel[l]!);
  if (!ds.targets) return { ...ds, labels, classes: o.classes, classNames: o.classNames };
  // Multi-label: each image's targets move to the model's columns.
  const targets = new Uint8Array(ds.count * o.classes);
  for (let i = 0; i < ds.count; i++) {
    for (let k = 0; k < ds.classes; k++) targets[i * o.classes + toModel[k]!] = ds.targets[i * ds.classes + k]!;
  }
  return { ...ds, labels, targets, classes: o.classes, classNames: o.classNames };
}

/** A listing of class names without files, to match names with matchClasses. */
function namesOnly(root: string, classNames: readonly string[]): ImageFolderListing {
  return { root, classNames: [...classNames], files: [], labels: new Int32Array(0) };
}
