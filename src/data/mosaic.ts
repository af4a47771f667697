/**
 * `fashion-mosaic`: a small, seeded multi-label stand-in for JFT, built at run time from
 * Fashion-MNIST. Each canvas (default 64×64, grey) holds 1–4 Fashion-MNIST items placed at random
 * (overlaps allowed: the brighter pixel wins), and is labelled with the set of their classes.
 * The train split draws its items from Fashion-MNIST's train split, the test split from its test
 * split, so no item is seen in both. Same seed and options, same canvases, on every machine.
 */
import { OptionError } from '../core/errors.js';
import { Random } from '../core/random.js';
import { firstLabels, type ImageDataset, imageSize, validateDataset } from './dataset.js';

export interface MosaicOptions {
  /** Side of the square canvas (default 64; at least the items' side). */
  size: number;
  /** Items per canvas, drawn uniformly from [minItems, maxItems] (default 1–4). */
  minItems: number;
  maxItems: number;
  seed: number;
  /** Canvases to make (defaults: 20,000 train, 4,000 test). */
  count: number;
}

export const MOSAIC_DEFAULTS = { size: 64, minItems: 1, maxItems: 4, seed: 0, train: 20_000, test: 4_000 } as const;

/** Where one item went: the source image, its class and its top-left corner. */
export interface MosaicPlacement {
  source: number;
  label: number;
  top: number;
  left: number;
}

export function validateMosaicOptions(o: MosaicOptions, itemSide: number): void {
  const int = (k: keyof MosaicOptions, lo: number, hi: number) => {
    const v = o[k];
    if (!(Number.isInteger(v) && v >= lo && v <= hi))
      throw new OptionError(`fashion-mosaic: ${k} must be an integer in [${lo}, ${hi}], got ${v}`);
  };
  int('size', itemSide, 1024);
  int('minItems', 1, 16);
  int('maxItems', o.minItems, 16);
  int('seed', 0, Number.MAX_SAFE_INTEGER);
  int('count', 1, 1_000_000);
}

/** Draws one canvas's placements from `rng`: how many items, which, and where. */
function drawPlacements(rng: Random, source: ImageDataset, o: MosaicOptions): MosaicPlacement[] {
  const n = o.minItems + rng.int(o.maxItems - o.minItems + 1);
  const out: MosaicPlacement[] = [];
  for (let j = 0; j < n; j++) {
    const k = rng.int(source.count);
    out.push({ source: k, label: source.labels[k]!, top: rng.int(o.size - source.height + 1), left: rng.int(o.size - source.width + 1) });
  }
  return out;
}

/** Pastes an item onto a canvas, keeping the brighter of the two pixels. */
function paste(canvas: Uint8Array, base: number, o: MosaicOptions, source: ImageDataset, p: MosaicPlacement): void {
  const { height: h, width: w, channels: c } = source;
  const from = p.source * imageSize(source);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w * c; x++) {
      const at = base + ((p.top + y) * o.size + p.left) * c + x;
      canvas[at] = Math.max(canvas[at]!, source.images[from + y * w * c + x]!);
    }
  }
}

/**
 * `count` canvases from the items of `source` (a single-label dataset), with their placements.
 * The targets say which classes were drawn on each canvas.
 */
export function makeMosaic(
  source: ImageDataset,
  o: MosaicOptions,
  name: string,
): { dataset: ImageDataset; placements: MosaicPlacement[][] } {
  validateMosaicOptions(o, Math.max(source.height, source.width));
  if (source.count === 0) throw new OptionError(`fashion-mosaic: the source ${source.name} has no images`);
  const rng = new Random(o.seed);
  const per = o.size * o.size * source.channels;
  const images = new Uint8Array(o.count * per);
  const targets = new Uint8Array(o.count * source.classes);
  const placements: MosaicPlacement[][] = [];
  for (let i = 0; i < o.count; i++) {
    const drawn = drawPlacements(rng, source, o);
    for (const p of drawn) {
      paste(images, i * per, o, source, p);
      targets[i * source.classes + p.label] = 1;
    }
    placements.push(drawn);
  }
  const dataset: ImageDataset = {
    name,
    images,
    labels: firstLabels(targets, o.count, source.classes),
    targets,
    count: o.count,
    height: o.size,
    width: o.size,
    channels: source.channels,
    classes: source.classes,
    ...(source.classNames ? { classNames: source.classNames } : {}),
  };
  validateDataset(dataset, name);
  return { dataset, placements };
}

export interface MosaicSpec {
  size: number;
  minItems: number;
  maxItems: number;
  seed: number;
  train: number;
  test: number;
  /** Fashion-MNIST's folder (default Debian's). */
  dir?: string;
}

/**
 * The options after `fashion-mosaic:` in a dataset spec, comma-separated key=value:
 * size=64, items=1-4 (or items=3), seed=0, train=20000, test=4000, dir=/path/to/fashion-mnist.
 */
export function parseMosaicSpec(text: string): MosaicSpec {
  const spec: MosaicSpec = {
    size: MOSAIC_DEFAULTS.size,
    minItems: MOSAIC_DEFAULTS.minItems,
    maxItems: MOSAIC_DEFAULTS.maxItems,
    seed: MOSAIC_DEFAULTS.seed,
    train: MOSAIC_DEFAULTS.train,
    test: MOSAIC_DEFAULTS.test,
  };
  if (text === '') return spec;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (eq < 0 || value === '') throw new OptionError(`fashion-mosaic: expected key=value, got '${part}' (${MOSAIC_USAGE})`);
    if (key === 'dir') spec.dir = value;
    else if (key === 'items') {
      const m = /^(\d+)(?:-(\d+))?$/.exec(value);
      if (!m) throw new OptionError(`fashion-mosaic: items must be N or MIN-MAX, got '${value}'`);
      spec.minItems = Number(m[1]);
      spec.maxItems = Number(m[2] ?? m[1]);
    } else if (key === 'size' || key === 'seed' || key === 'train' || key === 'test') {
      if (!/^\d+$/.test(value)) throw new OptionError(`fashion-mosaic: ${key} must be a non-negative integer, got '${value}'`);
      spec[key] = Number(value);
    } else throw new OptionError(`fashion-mosaic: unknown option '${key}' (${MOSAIC_USAGE})`);
  }
  return spec;
}

export const MOSAIC_USAGE = 'fashion-mosaic[:size=64,items=1-4,seed=0,train=20000,test=4000,dir=DIR]';

/** The split's canvases from Fashion-MNIST's same split; the seed differs per split so the two never repeat each other. */
export function mosaicOf(source: ImageDataset, spec: MosaicSpec, split: 'train' | 'test'): ImageDataset {
  const options: MosaicOptions = {
    size: spec.size,
    minItems: spec.minItems,
    maxItems: spec.maxItems,
    seed: spec.seed * 2 + (split === 'test' ? 1 : 0),
    count: split === 'train' ? spec.train : spec.test,
  };
  return makeMosaic(source, options, `fashion-mosaic/${split}`).dataset;
}
