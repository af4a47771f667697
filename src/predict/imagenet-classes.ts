/**
 * The 1000 ImageNet (ILSVRC-2012) class names in the standard index order (the order of Keras's
 * imagenet_class_index.json). WordNet ids are not part of the list.
 *
 * Where they come from: the list that @tensorflow-models/mobilenet (Apache-2.0, Copyright 2019
 * Google LLC) ships as dist/imagenet_classes.js. That package is only a devDependency: packing
 * (`npm pack` / `npm publish`, the `prepack` script) writes the names to
 * assets/imagenet-classes.json, which the package ships, so an installed package needs no
 * TensorFlow.js package. A dev checkout without the asset reads the devDependency directly.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XceptionError } from '../core/errors.js';

/** The shipped asset, relative to this module in dist/src/predict/. */
export const IMAGENET_CLASSES_ASSET = fileURLToPath(new URL('../../../assets/imagenet-classes.json', import.meta.url));

const SOURCE_MODULE = '@tensorflow-models/mobilenet/dist/imagenet_classes.js';

/** The asset's layout: the names plus where they come from and under which licence. */
interface ImagenetClassAsset {
  source: string;
  license: string;
  copyright: string;
  names: string[];
}

let cached: readonly string[] | null = null;

export function imagenetClassNames(): readonly string[] {
  if (cached) return cached;
  const names = existsSync(IMAGENET_CLASSES_ASSET) ? namesFromAsset(IMAGENET_CLASSES_ASSET) : namesFromMobilenet();
  cached = Object.freeze(names);
  return cached;
}

function namesFromAsset(file: string): string[] {
  let asset: Partial<ImagenetClassAsset>;
  try {
    asset = JSON.parse(readFileSync(file, 'utf8')) as Partial<ImagenetClassAsset>;
  } catch (e) {
    throw new XceptionError(`${file}: not readable JSON (${(e as Error).message}); reinstall the package`);
  }
  return checkedNames(asset.names, file);
}

/** Reads the list from the devDependency (dev checkouts, and `prepack` writing the asset). */
export function namesFromMobilenet(): string[] {
  let table: Record<string, unknown>;
  try {
    // A data-only CommonJS module: { IMAGENET_CLASSES: { 0: 'tench, Tinca tinca', … } }.
    const mod = createRequire(import.meta.url)(SOURCE_MODULE) as { IMAGENET_CLASSES?: Record<string, unknown> };
    table = mod.IMAGENET_CLASSES ?? {};
  } catch {
    throw new XceptionError(
      `the ImageNet class names are missing: neither ${IMAGENET_CLASSES_ASSET} (shipped in the package) nor the devDependency @tensorflow-models/mobilenet (dev checkouts: run npm ci) is there`,
    );
  }
  if (Object.keys(table).length !== 1000) throw new XceptionError(`${SOURCE_MODULE}: expected 1000 ImageNet class names`);
  return checkedNames(
    Array.from({ length: 1000 }, (_, i) => table[i]),
    SOURCE_MODULE,
  );
}

function checkedNames(names: unknown, where: string): string[] {
  const ok = Array.isArray(names) && names.length === 1000 && names.every((n) => typeof n === 'string' && n.length > 0);
  if (!ok) throw new XceptionError(`${where}: expected 1000 non-empty ImageNet class names`);
  return names as string[];
}

/** Writes the asset from the devDependency; returns its path. Run by scripts/imagenet-classes.mjs. */
export function writeImagenetClassAsset(file = IMAGENET_CLASSES_ASSET): string {
  const names = namesFromMobilenet();
  const version = (createRequire(import.meta.url)('@tensorflow-models/mobilenet/package.json') as { version: string }).version;
  const asset: ImagenetClassAsset = {
    source: `@tensorflow-models/mobilenet ${version}, dist/imagenet_classes.js (https://github.com/tensorflow/tfjs-models)`,
    license: 'Apache-2.0 (https://www.apache.org/licenses/LICENSE-2.0)',
    copyright: 'Copyright 2019 Google LLC',
    names,
  };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(asset, null, 1)}\n`);
  return file;
}
