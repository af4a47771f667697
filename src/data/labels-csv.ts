/**
 * Multi-label image folders (`--dataset multilabel:DIR`): images anywhere under DIR, and two CSV
 * files beside them naming each image's labels — DIR/train.csv and DIR/test.csv:
 *
 *   file,labels
 *   beach/0001.jpg,sea;sand;person
 *   city/0002.png,car
 *
 * UTF-8; a header `file,labels`; one row per image (a path relative to DIR, then its labels
 * separated by `;`); no quoting. Classes are the sorted labels of train.csv. Anything else — a
 * file that does not exist, a row with no label, a test label train.csv never uses, the same file
 * twice, bytes that are not UTF-8 — is a DatasetError naming the CSV and the line.
 */
import { promises as fs } from 'node:fs';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { OptionError } from '../core/errors.js';
import { firstLabels, type ImageDataset, validateDataset } from './dataset.js';
import { DatasetError } from './errors.js';
import { forEachConcurrently } from './files.js';
import { readImagePixels } from './image-file.js';
import { trainingPreprocessing } from './image-preprocessing.js';

export interface LabelledFiles {
  /** Absolute (or DIR-joined) image paths, in CSV order. */
  files: string[];
  /** Each file's labels, as written. */
  labels: string[][];
}

/** At most this many rows per CSV (a hostile file cannot make us allocate without bound). */
export const MAX_CSV_ROWS = 10_000_000;

/** Parses a labels CSV's text (already decoded); `csv` names it in errors. Files are checked for existence separately. */
export function parseLabelsCsv(text: string, dir: string, csv: string): LabelledFiles {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  if (lines.length === 0 || lines[0]!.trim().toLowerCase() !== 'file,labels')
    throw new DatasetError(`line 1 must be the header 'file,labels', got '${(lines[0] ?? '').slice(0, 60)}'`, csv);
  if (lines.length - 1 > MAX_CSV_ROWS) throw new DatasetError(`more than ${MAX_CSV_ROWS.toLocaleString('en-US')} rows`, csv);
  if (lines.length === 1) throw new DatasetError('no rows after the header', csv);
  const files: string[] = [];
  const labels: string[][] = [];
  const seen = new Map<string, number>();
  for (let i = 1; i < lines.length; i++) {
    const at = `line ${i + 1}`;
    const line = lines[i]!;
    if (line.includes('"')) throw new DatasetError(`${at}: quoted fields are not supported (file,label;label;…)`, csv);
    const cells = line.split(',');
    if (cells.length !== 2) throw new DatasetError(`${at}: expected 2 fields (file,labels), got ${cells.length}`, csv);
    const file = cells[0]!.trim();
    if (file === '') throw new DatasetError(`${at}: empty file name`, csv);
    const path = normalize(file);
    if (isAbsolute(path) || path === '..' || path.startsWith(`..${sep}`))
      throw new DatasetError(`${at}: '${file}' must be a path inside ${dir}`, csv);
    const previous = seen.get(path);
    if (previous !== undefined) throw new DatasetError(`${at}: '${file}' is listed twice (first on line ${previous})`, csv);
    seen.set(path, i + 1);
    const names = cells[1]!
      .split(';')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (names.length === 0) throw new DatasetError(`${at}: '${file}' has no labels`, csv);
    files.push(join(dir, path));
    labels.push([...new Set(names)]);
  }
  return { files, labels };
}

/** Reads and decodes a labels CSV strictly as UTF-8. */
export async function readLabelsCsv(csv: string, dir: string): Promise<LabelledFiles> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(csv);
  } catch (e) {
    throw new DatasetError(`cannot read the labels CSV (${(e as NodeJS.ErrnoException).code ?? String(e)})`, csv);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DatasetError('is not UTF-8 text', csv);
  }
  const listed = parseLabelsCsv(text, dir, csv);
  for (let i = 0; i < listed.files.length; i++) {
    const stat = await fs.stat(listed.files[i]!).catch(() => null);
    if (!stat?.isFile()) throw new DatasetError(`line ${i + 2}: no image file ${listed.files[i]}`, csv);
  }
  return listed;
}

/** Multi-hot targets over `classNames`; a label outside them is an error naming the line. */
export function multiHot(listed: LabelledFiles, classNames: readonly string[], csv: string): Uint8Array {
  const index = new Map(classNames.map((n, k) => [n, k]));
  const targets = new Uint8Array(listed.files.length * classNames.length);
  listed.labels.forEach((names, i) => {
    for (const name of names) {
      const k = index.get(name);
      if (k === undefined) throw new DatasetError(`line ${i + 2}: unknown class '${name}' (train.csv never uses it)`, csv);
      targets[i * classNames.length + k] = 1;
    }
  });
  return targets;
}

export interface MultiLabelFolderOptions {
  size?: number;
  channels?: 1 | 3;
  concurrency?: number;
}

/** One split of a multi-label folder, decoded into memory; classes from train.csv. */
export async function loadMultiLabelFolder(
  dir: string,
  split: 'train' | 'test',
  options: MultiLabelFolderOptions = {},
): Promise<ImageDataset> {
  const size = options.size ?? 299;
  const channels = options.channels ?? 3;
  if (!Number.isInteger(size) || size <= 0 || size > 4096) throw new OptionError(`image size must be an integer in 1..4096, got ${size}`);
  const trainCsv = join(dir, 'train.csv');
  const train = await readLabelsCsv(trainCsv, dir);
  const classNames = [...new Set(train.labels.flat())].sort();
  const csv = split === 'train' ? trainCsv : join(dir, 'test.csv');
  const listed = split === 'train' ? train : await readLabelsCsv(csv, dir);
  const targets = multiHot(listed, classNames, csv);
  const perImage = size * size * channels;
  const images = new Uint8Array(listed.files.length * perImage);
  const prep = trainingPreprocessing('xception');
  await forEachConcurrently(listed.files.length, options.concurrency ?? 4, async (i) => {
    images.set(await readImagePixels(listed.files[i]!, [size, size, channels], prep), i * perImage);
  });
  const ds: ImageDataset = {
    name: `multilabel/${split}`,
    images,
    labels: firstLabels(targets, listed.files.length, classNames.length),
    targets,
    count: listed.files.length,
    height: size,
    width: size,
    channels,
    classes: classNames.length,
    classNames,
  };
  validateDataset(ds, csv);
  return ds;
}
