/**
 * A folder of images with one sub-folder per class (`root/<class>/<image>`), the layout of
 * ImageNet-style datasets and Keras `image_dataset_from_directory`. Class indices follow the
 * sorted sub-folder names. Training streams such folders (stream-loader.ts); `loadImageFolder`
 * keeps a small folder in memory instead, each image read as training reads it (readImagePixels:
 * shorter side to the target size, centre crop, bilinear) as uint8 NHWC.
 */
import { type Dirent, promises as fs } from 'node:fs';
import { extname, join } from 'node:path';
import { OptionError } from '../core/errors.js';
import { DatasetError } from './errors.js';
import { type ImageDataset, validateDataset } from './dataset.js';
import { forEachConcurrently, isDirectory } from './files.js';
import { readImagePixels } from './image-file.js';
import { trainingPreprocessing } from './image-preprocessing.js';

export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp'];

export interface ImageFolderOptions {
  /** Output side in pixels (images are square after the center crop). Default 299 (Xception). */
  size?: number;
  /** 3 (RGB, default) or 1 (grayscale). */
  channels?: 1 | 3;
  /** Images decoded at once (sharp decodes on libuv threads). Default 4. */
  concurrency?: number;
  name?: string;
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function listDir(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new DatasetError(`cannot list folder: ${(e as Error).message}`, dir);
  }
}

/**
 * Folder or not, following symlinks. The directory entry's own type answers without a system
 * call; only symlinks (and file systems that report no type) need a stat.
 */
async function entryKind(dir: string, entry: Dirent): Promise<'dir' | 'file'> {
  if (entry.isDirectory()) return 'dir';
  if (entry.isFile()) return 'file';
  const path = join(dir, entry.name);
  try {
    return (await fs.stat(path)).isDirectory() ? 'dir' : 'file';
  } catch (e) {
    throw new DatasetError(`unreadable entry in image folder: ${(e as Error).message}`, path);
  }
}

/** An image folder's listing: names only, no pixels read. */
export interface ImageFolderListing {
  root: string;
  /** Sorted class folder names; label k is classNames[k]. */
  classNames: string[];
  files: string[];
  labels: Int32Array;
}

/**
 * Lists classes (sorted sub-folders) and their image files (sorted), checking the layout.
 * Reads directory entries only (one readdir per folder, a stat only for symlinks), so a folder of
 * 100,000 images lists in well under a second.
 */
export async function listImageFolder(root: string): Promise<ImageFolderListing> {
  if (!(await isDirectory(root))) throw new DatasetError('image folder does not exist or is not a directory', root);
  // Hidden entries (.git, .DS_Store) are never classes or images; symlinked class folders count.
  const classNames: string[] = [];
  for (const entry of await listDir(root)) {
    if (!entry.name.startsWith('.') && (await entryKind(root, entry)) === 'dir') classNames.push(entry.name);
  }
  classNames.sort(byCodePoint);
  if (classNames.length === 0)
    throw new DatasetError('no class folders: expected one sub-folder of images per class (root/<class>/<image>.png)', root);
  const files: string[] = [];
  const labels: number[] = [];
  for (let k = 0; k < classNames.length; k++) {
    const dir = join(root, classNames[k]!);
    const entries = (await listDir(dir)).filter((e) => !e.name.startsWith('.')).sort((a, b) => byCodePoint(a.name, b.name));
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if ((await entryKind(dir, entry)) === 'dir')
        throw new DatasetError('nested folder inside a class folder; expected only image files', path);
      if (!IMAGE_EXTENSIONS.includes(extname(entry.name).toLowerCase())) {
        throw new DatasetError(`not an image file (expected ${IMAGE_EXTENSIONS.join(', ')})`, path);
      }
      files.push(path);
      labels.push(k);
    }
    if (entries.length === 0) throw new DatasetError(`empty class folder '${classNames[k]}': it holds no images`, dir);
  }
  return { root, classNames, files, labels: Int32Array.from(labels) };
}

/** Lists classes and image files (see listImageFolder), labels as a plain array. */
export async function scanImageFolder(root: string): Promise<{ classNames: string[]; files: string[]; labels: number[] }> {
  const { classNames, files, labels } = await listImageFolder(root);
  return { classNames, files, labels: Array.from(labels) };
}

/** Loads every image of an image folder into memory at `size`×`size`×`channels`. */
export async function loadImageFolder(root: string, options: ImageFolderOptions = {}): Promise<ImageDataset> {
  const size = options.size ?? 299;
  const channels = options.channels ?? 3;
  const concurrency = options.concurrency ?? 4;
  if (!Number.isInteger(size) || size <= 0 || size > 4096)
    throw new OptionError(`image folder size must be an integer in 1..4096, got ${size}`);
  if (channels !== 1 && channels !== 3) throw new OptionError(`image folder channels must be 1 or 3, got ${channels}`);
  if (!Number.isInteger(concurrency) || concurrency <= 0)
    throw new OptionError(`concurrency must be a positive integer, got ${concurrency}`);
  const { classNames, files, labels } = await scanImageFolder(root);
  const perImage = size * size * channels;
  const images = new Uint8Array(files.length * perImage);
  // The one way a file becomes pixels (readImagePixels): what streaming, eval and predict read too.
  const prep = trainingPreprocessing('xception');
  const decode = async (i: number): Promise<void> => {
    images.set(await readImagePixels(files[i]!, [size, size, channels], prep), i * perImage);
  };

  await forEachConcurrently(files.length, concurrency, decode);

  const ds: ImageDataset = {
    name: options.name ?? root.replace(/\/+$/, '').split('/').pop() ?? root,
    images,
    labels: Int32Array.from(labels),
    count: files.length,
    height: size,
    width: size,
    channels,
    classes: classNames.length,
    classNames,
  };
  validateDataset(ds, root);
  return ds;
}
