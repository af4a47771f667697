/**
 * The benchmark cases of `xception bench`: Xception at 299×299 (inference at batch 1 and 8, a
 * training step at batch 8) and a small-image training step (batch 32 at 64×64).
 */
import { OptionError } from '../core/errors.js';
import type { XceptionOptions } from '../models/xception/xception.js';

export type CaseName = 'infer-b1-299' | 'infer-b8-299' | 'train-b8-299' | 'train-b32-64';

export interface BenchCase {
  name: CaseName;
  kind: 'infer' | 'train';
  batch: number;
  /** Image height and width. */
  size: number;
  /**
   * The model's stem. 64×64 is below the ImageNet stem's minimum (71, as in Keras), so the
   * small-image case uses the project's small-image stem (block1 at stride 1, 'same' padding):
   * the network the project trains on small images.
   */
  stem: 'imagenet' | 'small';
}

export const CASES: readonly BenchCase[] = [
  { name: 'infer-b1-299', kind: 'infer', batch: 1, size: 299, stem: 'imagenet' },
  { name: 'infer-b8-299', kind: 'infer', batch: 8, size: 299, stem: 'imagenet' },
  { name: 'train-b8-299', kind: 'train', batch: 8, size: 299, stem: 'imagenet' },
  { name: 'train-b32-64', kind: 'train', batch: 32, size: 64, stem: 'small' },
];

export const CASE_NAMES: readonly CaseName[] = CASES.map((c) => c.name);

/** The named cases in the table's order; an unknown name is an OptionError listing the known ones. */
export function selectCases(names: readonly string[] | undefined): BenchCase[] {
  if (names === undefined) return [...CASES];
  if (names.length === 0) throw new OptionError(`no cases given (known: ${CASE_NAMES.join(', ')})`);
  for (const n of names) {
    if (!CASE_NAMES.includes(n as CaseName)) throw new OptionError(`unknown case '${n}' (known: ${CASE_NAMES.join(', ')})`);
  }
  return CASES.filter((c) => names.includes(c.name));
}

/** Changes to the network for quick checks (the figures are then not Xception's). */
export interface ModelScale {
  /** Overrides every case's image size. */
  size?: number;
  width?: number;
  middleBlocks?: number;
}

/** The model a case runs: Xception, 1000 classes, seed 0 (the peer rebuilds the same weights). */
export function caseModelOptions(c: BenchCase, scale: ModelScale = {}): XceptionOptions {
  const size = scale.size ?? c.size;
  return {
    inputShape: [size, size, 3],
    stem: c.stem,
    classes: 1000,
    seed: 0,
    ...(scale.width !== undefined ? { width: scale.width } : {}),
    ...(scale.middleBlocks !== undefined ? { middleBlocks: scale.middleBlocks } : {}),
  };
}
