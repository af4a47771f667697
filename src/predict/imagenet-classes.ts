/**
 * The 1000 ImageNet (ILSVRC-2012) class names in the standard index order (the order of Keras's
 * imagenet_class_index.json), read at first use from the list that the npm dependency
 * @tensorflow-models/mobilenet ships (dist/imagenet_classes.js). Only that file is read; none of
 * TensorFlow.js is loaded. WordNet ids are not part of that list.
 */
import { createRequire } from 'node:module';
import { XceptionError } from '../core/errors.js';

let cached: readonly string[] | null = null;

export function imagenetClassNames(): readonly string[] {
  if (cached) return cached;
  let table: Record<string, unknown>;
  try {
    // A data-only CommonJS module: { IMAGENET_CLASSES: { 0: 'tench, Tinca tinca', … } }.
    const mod = createRequire(import.meta.url)('@tensorflow-models/mobilenet/dist/imagenet_classes.js') as {
      IMAGENET_CLASSES?: Record<string, unknown>;
    };
    table = mod.IMAGENET_CLASSES ?? {};
  } catch {
    throw new XceptionError(
      'the ImageNet class names come from the npm package @tensorflow-models/mobilenet, which is not installed (run npm ci)',
    );
  }
  const names = Array.from({ length: 1000 }, (_, i) => table[i]);
  if (Object.keys(table).length !== 1000 || !names.every((n): n is string => typeof n === 'string' && n.length > 0)) {
    throw new XceptionError('@tensorflow-models/mobilenet: expected 1000 ImageNet class names in dist/imagenet_classes.js');
  }
  cached = Object.freeze(names as string[]);
  return cached;
}
