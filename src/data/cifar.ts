/**
 * CIFAR-10 and CIFAR-100 "binary version" batches. Each record is the label byte(s) followed by
 * 3072 pixel bytes stored planar (1024 red, 1024 green, 1024 blue, each 32×32 row-major); we
 * convert to NHWC. CIFAR-100 records carry a coarse then a fine label; we use the fine one.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { DatasetError } from './errors.js';
import { type ImageDataset, validateDataset } from './dataset.js';
import { isDirectory, isFile, readWholeFile } from './files.js';
import type { Split } from './idx.js';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXELS = 3 * PLANE;

export type CifarVariant = 'cifar10' | 'cifar100';

interface VariantInfo {
  labelBytes: number;
  classes: number;
  /** Sub-directory created by the official archive, tried when the files are not in `dir` itself. */
  archiveDir: string;
  files: Record<Split, string[]>;
  namesFile: string;
}

/** CIFAR-10's classes, as its batches.meta.txt lists them (used when that file is absent). */
export const CIFAR10_CLASS_NAMES: readonly string[] = Object.freeze([
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
]);

const VARIANTS: Record<CifarVariant, VariantInfo> = {
  cifar10: {
    labelBytes: 1,
    classes: 10,
    archiveDir: 'cifar-10-batches-bin',
    files: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'] },
    namesFile: 'batches.meta.txt',
  },
  cifar100: {
    labelBytes: 2,
    classes: 100,
    archiveDir: 'cifar-100-binary',
    files: { train: ['train.bin'], test: ['test.bin'] },
    namesFile: 'fine_label_names.txt',
  },
};

/** Bytes per record: label byte(s) plus 3072 pixels. */
export function cifarRecordSize(variant: CifarVariant): number {
  return VARIANTS[variant].labelBytes + PIXELS;
}

/**
 * Decodes one CIFAR binary batch held in memory into NHWC pixels and labels (fine labels for
 * CIFAR-100). Throws DatasetError naming `file` if the size is not a whole number of records or
 * a label is out of range.
 */
export function parseCifarBatch(bytes: Uint8Array, variant: CifarVariant, file = '<cifar>'): { images: Uint8Array; labels: Int32Array } {
  const info = VARIANTS[variant];
  const record = info.labelBytes + PIXELS;
  if (bytes.length === 0) throw new DatasetError('CIFAR batch file is empty', file);
  if (bytes.length % record !== 0) {
    throw new DatasetError(
      `file size ${bytes.length} is not a multiple of the ${variant} record size ${record} (${Math.floor(bytes.length / record)} whole records and ${bytes.length % record} extra bytes)`,
      file,
    );
  }
  const n = bytes.length / record;
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const base = r * record;
    const label = bytes[base + info.labelBytes - 1]!; // the last label byte: CIFAR-100's fine label
    if (label >= info.classes) throw new DatasetError(`label ${label} in record ${r} is out of range [0, ${info.classes})`, file);
    labels[r] = label;
    const src = base + info.labelBytes;
    const dst = r * PIXELS;
    for (let p = 0; p < PLANE; p++) {
      images[dst + 3 * p] = bytes[src + p]!;
      images[dst + 3 * p + 1] = bytes[src + PLANE + p]!;
      images[dst + 3 * p + 2] = bytes[src + 2 * PLANE + p]!;
    }
  }
  return { images, labels };
}

async function resolveCifarDir(dir: string, info: VariantInfo, split: Split): Promise<string> {
  const first = info.files[split][0]!;
  if (await isFile(join(dir, first))) return dir;
  const nested = join(dir, info.archiveDir);
  if (await isFile(join(nested, first))) return nested;
  const looked = [dir, nested].flatMap((d) => info.files[split].map((f) => join(d, f)));
  const what = (await isDirectory(dir)) ? `CIFAR batch files not found in ${dir}` : `dataset directory ${dir} does not exist`;
  throw new DatasetError(
    `${what}; looked for ${looked.join(', ')}. Download the "binary version" from https://www.cs.toronto.edu/~kriz/cifar.html and extract it there.`,
    dir,
  );
}

async function readClassNames(path: string, classes: number): Promise<string[] | undefined> {
  if (!(await isFile(path))) return undefined;
  const text = await fs.readFile(path, 'utf8');
  const names = text
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length !== classes) throw new DatasetError(`class name file lists ${names.length} names, expected ${classes}`, path);
  return names;
}

/** Loads the train (all five batches for CIFAR-10) or test split from `dir` or `dir/cifar-*-bin*`. */
export async function loadCifar(dir: string, variant: CifarVariant, split: Split): Promise<ImageDataset> {
  const info = VARIANTS[variant];
  if (!info) throw new DatasetError(`unknown CIFAR variant '${variant}'`, dir);
  if (split !== 'train' && split !== 'test') throw new DatasetError(`unknown split '${split}', expected 'train' or 'test'`, dir);
  const root = await resolveCifarDir(dir, info, split);
  const paths = info.files[split].map((f) => join(root, f));
  const missing: string[] = [];
  for (const p of paths) if (!(await isFile(p))) missing.push(p);
  if (missing.length > 0) throw new DatasetError(`incomplete ${variant} ${split} split: missing ${missing.join(', ')}`, missing[0]);
  const parts = [];
  for (const p of paths) parts.push(parseCifarBatch(await readWholeFile(p), variant, p));
  const count = parts.reduce((s, b) => s + b.labels.length, 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Int32Array(count);
  let at = 0;
  for (const part of parts) {
    images.set(part.images, at * PIXELS);
    labels.set(part.labels, at);
    at += part.labels.length;
  }
  const classNames =
    (await readClassNames(join(root, info.namesFile), info.classes)) ?? (variant === 'cifar10' ? [...CIFAR10_CLASS_NAMES] : undefined);
  const ds: ImageDataset = {
    name: `${variant}/${split}`,
    images,
    labels,
    count,
    height: SIDE,
    width: SIDE,
    channels: 3,
    classes: info.classes,
    ...(classNames ? { classNames } : {}),
  };
  validateDataset(ds, root);
  return ds;
}

export const loadCifar10 = (dir: string, split: Split): Promise<ImageDataset> => loadCifar(dir, 'cifar10', split);
export const loadCifar100 = (dir: string, split: Split): Promise<ImageDataset> => loadCifar(dir, 'cifar100', split);
