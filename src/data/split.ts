/** Seeded train/validation splits. */
import { OptionError } from '../core/errors.js';
import { Random } from '../core/random.js';
import { type ImageDataset, subsetDataset } from './dataset.js';

export interface SplitOptions {
  /** Fraction of the samples held out for validation, in (0, 1). */
  validationFraction: number;
  seed?: number;
  /**
   * Hold out the fraction from every class separately (default true), so validation has the
   * same class balance as the data.
   */
  stratify?: boolean;
}

/** Sample indices (each sorted ascending) of a seeded train/validation split. */
export function splitIndices(
  ds: Pick<ImageDataset, 'labels' | 'count' | 'classes'>,
  options: SplitOptions,
): { train: Int32Array; validation: Int32Array } {
  const f = options.validationFraction;
  if (!(typeof f === 'number' && f > 0 && f < 1)) throw new OptionError(`validationFraction must be in (0, 1), got ${f}`);
  const rng = new Random(options.seed ?? 0);
  const groups: number[][] = [];
  if (options.stratify ?? true) {
    for (let k = 0; k < ds.classes; k++) groups.push([]);
    for (let i = 0; i < ds.count; i++) groups[ds.labels[i]!]!.push(i);
  } else {
    groups.push(Array.from({ length: ds.count }, (_, i) => i));
  }
  const train: number[] = [];
  const validation: number[] = [];
  for (const g of groups) {
    rng.shuffle(g);
    const held = Math.round(g.length * f);
    for (let i = 0; i < g.length; i++) (i < held ? validation : train).push(g[i]!);
  }
  if (validation.length === 0 || train.length === 0) {
    throw new OptionError(
      `validationFraction ${f} of ${ds.count} samples leaves ${train.length} for training and ${validation.length} for validation`,
    );
  }
  return { train: Int32Array.from(train).sort(), validation: Int32Array.from(validation).sort() };
}

/** A seeded split into two new datasets (copies of the pixels). */
export function splitDataset(ds: ImageDataset, options: SplitOptions): { train: ImageDataset; validation: ImageDataset } {
  const { train, validation } = splitIndices(ds, options);
  return {
    train: subsetDataset(ds, train, `${ds.name}[train]`),
    validation: subsetDataset(ds, validation, `${ds.name}[validation]`),
  };
}
