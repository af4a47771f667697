/**
 * Dataset specs for the command line: `fashion-mnist` (the default, from Debian's package),
 * `fashion-mnist:DIR`, `mnist:DIR`, `cifar10:DIR`, `cifar100:DIR`, `folder:DIR`.
 */
import { join } from 'node:path';
import { OptionError } from '../core/errors.js';
import { loadCifar } from './cifar.js';
import type { ImageDataset } from './dataset.js';
import { DatasetError } from './errors.js';
import { isDirectory } from './files.js';
import { loadImageFolder } from './folder.js';
import { FASHION_MNIST_DIR, loadFashionMnist, loadMnist, type Split } from './idx.js';

export type DatasetKind = 'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100' | 'folder';

export const DATASET_KINDS: readonly DatasetKind[] = ['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'folder'];

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

const USAGE = `expected one of: fashion-mnist, fashion-mnist:DIR, mnist:DIR, cifar10:DIR, cifar100:DIR, folder:DIR`;

/**
 * An image folder's split: `DIR/train` and `DIR/test` (or `DIR/val`, `DIR/validation`) when
 * they exist, otherwise DIR itself is the training set and has no test split.
 */
export async function imageFolderSplitDir(dir: string, split: Split): Promise<string> {
  const names = split === 'train' ? ['train'] : ['test', 'val', 'validation'];
  for (const n of names) if (await isDirectory(join(dir, n))) return join(dir, n);
  if (split === 'train') return dir;
  throw new DatasetError(`image folder has no test split: looked for ${names.map((n) => join(dir, n)).join(', ')}; hold out a validation split of the training data instead`, dir);
}

export function parseDatasetSpec(spec: string): DatasetSpec {
  if (typeof spec !== 'string' || spec.trim() === '') throw new OptionError(`empty dataset spec; ${USAGE}`);
  const colon = spec.indexOf(':');
  const kind = (colon < 0 ? spec : spec.slice(0, colon)).trim().toLowerCase();
  const dir = colon < 0 ? '' : spec.slice(colon + 1);
  if (!(DATASET_KINDS as readonly string[]).includes(kind)) {
    const hint = kind === 'cifar-10' || kind === 'cifar-100' ? ` (did you mean '${kind.replace('-', '')}'?)` : kind === 'fashion_mnist' || kind === 'fashion' ? ` (did you mean 'fashion-mnist'?)` : '';
    throw new OptionError(`unknown dataset '${kind}' in spec '${spec}'${hint}; ${USAGE}`);
  }
  if (colon >= 0 && dir === '') throw new OptionError(`dataset spec '${spec}' has an empty directory after ':'; ${USAGE}`);
  if (colon < 0 && kind !== 'fashion-mnist') throw new OptionError(`dataset '${kind}' needs a directory, e.g. '${kind}:/path/to/${kind}'; ${USAGE}`);
  const k = kind as DatasetKind;
  const where = dir || FASHION_MNIST_DIR;
  const load = (split: Split, options: DatasetLoadOptions = {}): Promise<ImageDataset> => {
    switch (k) {
      case 'fashion-mnist': return loadFashionMnist(split, where);
      case 'mnist': return loadMnist(where, split);
      case 'cifar10': return loadCifar(where, 'cifar10', split);
      case 'cifar100': return loadCifar(where, 'cifar100', split);
      case 'folder': return imageFolderSplitDir(where, split).then((d) => loadImageFolder(d, {
        name: `folder/${split}`,
        ...(options.imageSize !== undefined ? { size: options.imageSize } : {}),
        ...(options.channels !== undefined ? { channels: options.channels } : {}),
      }));
    }
  };
  return { kind: k, dir: where, spec, load };
}

/** Parses `spec` and loads `split` in one call. */
export function loadDataset(spec: string, split: Split, options?: DatasetLoadOptions): Promise<ImageDataset> {
  return parseDatasetSpec(spec).load(split, options);
}
