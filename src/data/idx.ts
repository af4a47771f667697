/**
 * IDX files (the MNIST format): magic [0, 0, type, ndims], ndims big-endian uint32 sizes, then
 * the data row-major. Only unsigned-byte data (type 0x08) is used by image datasets. Files may
 * be gzip-compressed; we detect that by the gzip magic bytes, not by the file name.
 */
import { join } from 'node:path';
import { DatasetError } from './errors.js';
import { parseIdx, parseIdxHeader, type IdxArray } from './idx-format.js';
import { FASHION_MNIST_CLASS_NAMES, MNIST_CLASS_NAMES, type ImageDataset, validateDataset } from './dataset.js';
import { firstExisting, gunzipBounded, isDirectory, isGzip, readWholeFile } from './files.js';

export { parseIdx, type IdxArray } from './idx-format.js';

/**
 * The largest IDX file (after gunzip) read by default: 1 GiB, twice EMNIST's biggest. The header's
 * claimed size never decides an allocation on its own: a 10 MB gzip may claim (and inflate to) 10 GB.
 */
export const MAX_IDX_BYTES = 2 ** 30;

/** Deflate cannot expand data by more than about 1032:1; claims beyond that cannot be true. */
const MAX_DEFLATE_RATIO = 1032;

export interface IdxReadOptions {
  /** Refuse files (after gunzip) larger than this many bytes (default MAX_IDX_BYTES). */
  maxBytes?: number;
}

/** Reads an IDX file, gzip-compressed or not. */
export async function readIdxFile(path: string, options: IdxReadOptions = {}): Promise<IdxArray> {
  const maxBytes = options.maxBytes ?? MAX_IDX_BYTES;
  const raw = await readWholeFile(path);
  if (!isGzip(raw)) {
    if (raw.length > maxBytes) throw new DatasetError(`IDX file is ${raw.length} bytes, over the ${maxBytes}-byte limit`, path);
    return parseIdx(raw, path);
  }
  // Decompress the header first, then at most the declared size plus one byte: the declared size
  // is never trusted for an allocation, only as a ceiling on what we keep.
  const head = await gunzipBounded(raw, 4, path);
  if (head.length < 4) throw new DatasetError(`truncated IDX file: ${head.length} bytes after gunzip`, path);
  const headerLen = 4 + 4 * head[3]!;
  const header = parseIdxHeader(await gunzipBounded(raw, headerLen - 1, path), path);
  const claimed = header.headerBytes + header.dataBytes;
  if (claimed > MAX_DEFLATE_RATIO * raw.length + 1024) {
    throw new DatasetError(`truncated IDX file: header declares ${claimed} bytes, more than ${raw.length} bytes of gzip can hold`, path);
  }
  if (claimed > maxBytes)
    throw new DatasetError(
      `IDX header declares shape [${header.shape.join(', ')}] = ${claimed} bytes, over the ${maxBytes}-byte limit`,
      path,
    );
  const bytes = await gunzipBounded(raw, claimed, path);
  return parseIdx(bytes, path);
}

export type Split = 'train' | 'test';

export interface IdxDatasetOptions {
  /** Dataset name prefix (default: the directory's last component). */
  name?: string;
  /** Number of classes (default 10, as in MNIST and Fashion-MNIST). */
  classes?: number;
  classNames?: readonly string[];
  /** How to install the files, appended to the "not found" error. */
  installHint?: string;
}

/** Names tried for a split's images and labels, in order (both MNIST spellings, gzip or not). */
export function idxFileCandidates(dir: string, split: Split): { images: string[]; labels: string[] } {
  const prefix = split === 'train' ? 'train' : 't10k';
  const names = (kind: 'images' | 'labels', rank: 3 | 1) => {
    const base = [`${prefix}-${kind}-idx${rank}-ubyte`, `${prefix}-${kind}.idx${rank}-ubyte`];
    return base.flatMap((b) => [join(dir, b), join(dir, `${b}.gz`)]);
  };
  return { images: names('images', 3), labels: names('labels', 1) };
}

/** Loads the `train` or `test` (t10k) split of an MNIST-style IDX dataset from `dir`. */
export async function loadIdxDataset(dir: string, split: Split, options: IdxDatasetOptions = {}): Promise<ImageDataset> {
  if (split !== 'train' && split !== 'test') throw new DatasetError(`unknown split '${split}', expected 'train' or 'test'`, dir);
  const candidates = idxFileCandidates(dir, split);
  const hint = options.installHint ? ` ${options.installHint}` : '';
  if (!(await isDirectory(dir))) {
    throw new DatasetError(
      `dataset directory ${dir} does not exist; looked for ${candidates.images.join(', ')} and ${candidates.labels.join(', ')}.${hint}`,
      dir,
    );
  }
  const imagesPath = await firstExisting(candidates.images);
  const labelsPath = await firstExisting(candidates.labels);
  if (!imagesPath || !labelsPath) {
    const missing = !imagesPath ? candidates.images : candidates.labels;
    throw new DatasetError(
      `no ${!imagesPath ? 'image' : 'label'} file for split '${split}'; looked for ${missing.join(', ')}.${hint}`,
      dir,
    );
  }
  const images = await readIdxFile(imagesPath);
  if (images.shape.length !== 3)
    throw new DatasetError(`image IDX file must have 3 dimensions [N, H, W], has [${images.shape.join(', ')}]`, imagesPath);
  const labels = await readIdxFile(labelsPath);
  if (labels.shape.length !== 1)
    throw new DatasetError(`label IDX file must have 1 dimension [N], has [${labels.shape.join(', ')}]`, labelsPath);
  const [count, height, width] = images.shape as [number, number, number];
  if (labels.shape[0] !== count) {
    throw new DatasetError(`label count ${labels.shape[0]} disagrees with image count ${count} in ${imagesPath}`, labelsPath);
  }
  if (height === 0 || width === 0) throw new DatasetError(`image size ${height}×${width} is empty`, imagesPath);
  const classes = options.classes ?? options.classNames?.length ?? 10;
  const labelArray = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const l = labels.data[i]!;
    if (l >= classes) throw new DatasetError(`label ${l} at index ${i} is out of range [0, ${classes})`, labelsPath);
    labelArray[i] = l;
  }
  const ds: ImageDataset = {
    name: `${options.name ?? dir.replace(/\/+$/, '').split('/').pop()}/${split}`,
    images: images.data,
    labels: labelArray,
    count,
    height,
    width,
    channels: 1,
    classes,
    ...(options.classNames ? { classNames: options.classNames } : {}),
  };
  validateDataset(ds, imagesPath);
  return ds;
}

/** Where Debian's `dataset-fashion-mnist` package installs its files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Fashion-MNIST (the default dataset): 60000 train / 10000 test, 28×28×1, 10 classes. */
export function loadFashionMnist(split: Split, dir: string = FASHION_MNIST_DIR): Promise<ImageDataset> {
  return loadIdxDataset(dir, split, {
    name: 'fashion-mnist',
    classNames: FASHION_MNIST_CLASS_NAMES,
    installHint:
      dir === FASHION_MNIST_DIR
        ? 'Install it with `apt-get install dataset-fashion-mnist`.'
        : 'Download the four Fashion-MNIST IDX files there, or install the Debian package with `apt-get install dataset-fashion-mnist` and use its default directory.',
  });
}

/** MNIST digits from the four standard IDX files in `dir`. */
export function loadMnist(dir: string, split: Split): Promise<ImageDataset> {
  return loadIdxDataset(dir, split, {
    name: 'mnist',
    classNames: MNIST_CLASS_NAMES,
    installHint:
      'Put the MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in that directory.',
  });
}
