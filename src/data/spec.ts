/**
 * Dataset specs for the command line: `fashion-mnist` (the default, from Debian's package),
 * `fashion-mnist:DIR`, `fashion-mosaic[:options]` (multi-label, see mosaic.ts), `mnist:DIR`,
 * `cifar10:DIR`, `cifar100:DIR`, `folder:DIR`, `multilabel:DIR` (images + train.csv/test.csv, see labels-csv.ts).
 */
import { join } from 'node:path';
import { OptionError } from '../core/errors.js';
import { loadCifar } from './cifar.js';
import type { ImageDataset } from './dataset.js';
import { DatasetError } from './errors.js';
import { isDirectory } from './files.js';
import { loadImageFolder } from './folder.js';
import { loadMultiLabelFolder } from './labels-csv.js';
import { MOSAIC_USAGE, mosaicOf, parseMosaicSpec, validateMosaicOptions } from './mosaic.js';
import { FASHION_MNIST_DIR, loadFashionMnist, loadMnist, type Split } from './idx.js';

export type DatasetKind = 'fashion-mnist' | 'fashion-mosaic' | 'mnist' | 'cifar10' | 'cifar100' | 'folder' | 'multilabel';

export const DATASET_KINDS: readonly DatasetKind[] = [
  'fashion-mnist',
  'fashion-mosaic',
  'mnist',
  'cifar10',
  'cifar100',
  'folder',
  'multilabel',
];

export interface DatasetLoadOptions {
  /** Image folders only: side of the square images (default 299). */
  imageSize?: number;
  /** Image folders only: 3 (default) or 1. */
  channels?: 1 | 3;
}

export interface DatasetSpec {
  kind: DatasetKind;
  dir: string;
  /** The spec string as given. */
  spec: string;
  load(split: Split, options?: DatasetLoadOptions): Promise<ImageDataset>;
}

const USAGE = `expected one of: fashion-mnist, fashion-mnist:DIR, ${MOSAIC_USAGE}, mnist:DIR, cifar10:DIR, cifar100:DIR, folder:DIR, multilabel:DIR`;

/** Where an image folder's splits are. */
export interface ImageFolderLayout {
  /** 'split': DIR/train (+ DIR/test, val or validation); 'single': DIR/<class>/<image> alone. */
  kind: 'split' | 'single';
  train: string;
  /** The evaluation folder (DIR/test, DIR/val or DIR/validation), or null. */
  test: string | null;
}

const EVAL_SPLIT_NAMES = ['test', 'val', 'validation'];

/**
 * An image folder's layout: `DIR/train` with `DIR/test` (or `DIR/val`, `DIR/validation`), or DIR
 * itself holding one folder per class and no test split.
 */
export async function imageFolderLayout(dir: string): Promise<ImageFolderLayout> {
  let test: string | null = null;
  for (const n of EVAL_SPLIT_NAMES) {
    if (await isDirectory(join(dir, n))) {
      test = join(dir, n);
      break;
    }
  }
  if (await isDirectory(join(dir, 'train'))) return { kind: 'split', train: join(dir, 'train'), test };
  if (test !== null)
    throw new DatasetError(
      `image folder has ${test} but no train/ beside it: lay it out as DIR/train/<class>/… + DIR/test/<class>/…, or DIR/<class>/… alone`,
      dir,
    );
  return { kind: 'single', train: dir, test: null };
}

/** An image folder's split (see imageFolderLayout); DatasetError when it has no test split. */
export async function imageFolderSplitDir(dir: string, split: Split): Promise<string> {
  const layout = await imageFolderLayout(dir);
  if (split === 'train') return layout.train;
  if (layout.test !== null) return layout.test;
  throw new DatasetError(
    `image folder has no test split: looked for ${EVAL_SPLIT_NAMES.map((n) => join(dir, n)).join(', ')}; hold out a validation split of the training data instead (train --validation 0.2)`,
    dir,
  );
}

export function parseDatasetSpec(spec: string): DatasetSpec {
  if (typeof spec !== 'string' || spec.trim() === '') throw new OptionError(`empty dataset spec; ${USAGE}`);
  const colon = spec.indexOf(':');
  const kind = (colon < 0 ? spec : spec.slice(0, colon)).trim().toLowerCase();
  const dir = colon < 0 ? '' : spec.slice(colon + 1);
  if (!(DATASET_KINDS as readonly string[]).includes(kind)) {
    const hint =
      kind === 'cifar-10' || kind === 'cifar-100'
        ? ` (did you mean '${kind.replace('-', '')}'?)`
        : kind === 'fashion_mnist' || kind === 'fashion'
          ? ` (did you mean 'fashion-mnist'?)`
          : '';
    throw new OptionError(`unknown dataset '${kind}' in spec '${spec}'${hint}; ${USAGE}`);
  }
  if (colon >= 0 && dir === '') throw new OptionError(`dataset spec '${spec}' has an empty directory after ':'; ${USAGE}`);
  if (kind === 'fashion-mosaic') return mosaicSpec(spec, dir);
  if (colon < 0 && kind !== 'fashion-mnist')
    throw new OptionError(`dataset '${kind}' needs a directory, e.g. '${kind}:/path/to/${kind}'; ${USAGE}`);
  const k = kind as Exclude<DatasetKind, 'fashion-mosaic'>;
  const where = dir || FASHION_MNIST_DIR;
  const load = (split: Split, options: DatasetLoadOptions = {}): Promise<ImageDataset> => {
    switch (k) {
      case 'fashion-mnist':
        return loadFashionMnist(split, where);
      case 'mnist':
        return loadMnist(where, split);
      case 'cifar10':
        return loadCifar(where, 'cifar10', split);
      case 'cifar100':
        return loadCifar(where, 'cifar100', split);
      case 'multilabel':
        return loadMultiLabelFolder(where, split, {
          ...(options.imageSize !== undefined ? { size: options.imageSize } : {}),
          ...(options.channels !== undefined ? { channels: options.channels } : {}),
        });
      case 'folder':
        return imageFolderSplitDir(where, split).then((d) =>
          loadImageFolder(d, {
            name: `folder/${split}`,
            ...(options.imageSize !== undefined ? { size: options.imageSize } : {}),
            ...(options.channels !== undefined ? { channels: options.channels } : {}),
          }),
        );
    }
  };
  return { kind: k, dir: where, spec, load };
}

/** `fashion-mosaic[:options]`: canvases made from Fashion-MNIST at load time (see mosaic.ts); options are checked now. */
function mosaicSpec(spec: string, options: string): DatasetSpec {
  const m = parseMosaicSpec(options);
  // Fashion-MNIST's items are 28×28; another folder's items are checked when it is read.
  const itemSide = m.dir === undefined ? 28 : 1;
  for (const count of [m.train, m.test]) validateMosaicOptions({ ...m, count }, itemSide);
  const dir = m.dir ?? FASHION_MNIST_DIR;
  const load = async (split: Split): Promise<ImageDataset> => mosaicOf(await loadFashionMnist(split, dir), m, split);
  return { kind: 'fashion-mosaic', dir, spec, load };
}

/** Parses `spec` and loads `split` in one call. */
export function loadDataset(spec: string, split: Split, options?: DatasetLoadOptions): Promise<ImageDataset> {
  return parseDatasetSpec(spec).load(split, options);
}
