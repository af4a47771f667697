/**
 * Per-image transforms used by the loader: resampling, the augmentations (random crop with zero
 * padding, horizontal flip, Inception-style random-resized crop) and model preprocessing. They
 * work on one image at a time and write float32 straight into the batch, so a batch costs one
 * pass over its pixels (two when resampling).
 */
import { OptionError } from '../core/errors.js';
import type { Random } from '../core/random.js';

/**
 * How pixels 0..255 become network inputs. `xception` and `inception_v3` are Keras'
 * `preprocess_input` for those models (x/127.5 − 1, RGB, no mean/std); `unit` is x/255; `none`
 * keeps 0..255.
 */
export type Preprocessing = 'xception' | 'inception_v3' | 'unit' | 'none';

export const PREPROCESSINGS: readonly Preprocessing[] = ['xception', 'inception_v3', 'unit', 'none'];

/** out = pixel·scale + offset. */
export function preprocessingAffine(mode: Preprocessing): { scale: number; offset: number } {
  switch (mode) {
    case 'xception':
    case 'inception_v3':
      return { scale: 1 / 127.5, offset: -1 };
    case 'unit':
      return { scale: 1 / 255, offset: 0 };
    case 'none':
      return { scale: 1, offset: 0 };
    default:
      throw new OptionError(`unknown preprocessing '${String(mode)}', expected one of ${PREPROCESSINGS.join(', ')}`);
  }
}

/** Applies a preprocessing to uint8 pixels (e.g. for a single image at inference). */
export function preprocessPixels(pixels: ArrayLike<number>, mode: Preprocessing): Float32Array {
  const out = new Float32Array(pixels.length);
  writeScaledPixels(pixels, preprocessingAffine(mode), out, 0);
  return out;
}

/** Writes uint8 pixels into `out` from index `at` as network inputs: pixel·scale + offset. */
export function writeScaledPixels(
  pixels: ArrayLike<number>,
  affine: { scale: number; offset: number },
  out: Float32Array,
  at: number,
): void {
  const { scale, offset } = affine;
  for (let j = 0; j < pixels.length; j++) out[at + j] = pixels[j]! * scale + offset;
}

/** A rectangle of the source image, in pixels. */
export interface CropBox {
  y: number;
  x: number;
  height: number;
  width: number;
}

/**
 * Bilinear resampling of `box` of an H×W×C image into an outH×outW×C float buffer, with
 * half-pixel centers (TensorFlow 2 `resize` / PyTorch `align_corners=False`). Samples falling
 * outside the image clamp to its edge. No antialiasing: large downscales alias, which is accepted
 * for augmentation.
 */
export function resizeBilinear(
  src: ArrayLike<number>,
  srcOffset: number,
  h: number,
  w: number,
  c: number,
  box: CropBox,
  dst: Float32Array,
  outH: number,
  outW: number,
): void {
  const sy = box.height / outH;
  const sx = box.width / outW;
  const x0s = new Int32Array(outW),
    x1s = new Int32Array(outW),
    fxs = new Float32Array(outW);
  for (let ox = 0; ox < outW; ox++) {
    let fx = box.x + (ox + 0.5) * sx - 0.5;
    fx = Math.min(Math.max(fx, 0), w - 1);
    const x0 = Math.floor(fx);
    x0s[ox] = x0;
    x1s[ox] = Math.min(x0 + 1, w - 1);
    fxs[ox] = fx - x0;
  }
  for (let oy = 0; oy < outH; oy++) {
    let fy = box.y + (oy + 0.5) * sy - 0.5;
    fy = Math.min(Math.max(fy, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const wy = fy - y0;
    const row0 = srcOffset + y0 * w * c;
    const row1 = srcOffset + y1 * w * c;
    for (let ox = 0; ox < outW; ox++) {
      const a = x0s[ox]! * c,
        b = x1s[ox]! * c,
        wx = fxs[ox]!;
      const o = (oy * outW + ox) * c;
      for (let ch = 0; ch < c; ch++) {
        const top = src[row0 + a + ch]! + (src[row0 + b + ch]! - src[row0 + a + ch]!) * wx;
        const bot = src[row1 + a + ch]! + (src[row1 + b + ch]! - src[row1 + a + ch]!) * wx;
        dst[o + ch] = top + (bot - top) * wy;
      }
    }
  }
}

export interface RandomResizedCropOptions {
  /** Range of the crop's area as a fraction of the image's. Default [0.08, 1]. */
  scale?: [number, number];
  /** Range of the crop's aspect ratio width/height. Default [3/4, 4/3]. */
  ratio?: [number, number];
}

/**
 * Picks an Inception-style crop box: area uniform in `scale`·H·W, log aspect ratio uniform in
 * log(`ratio`); ten attempts, then the largest center crop whose ratio is within range.
 */
export function randomResizedCropBox(h: number, w: number, rng: Random, options: RandomResizedCropOptions = {}): CropBox {
  const [smin, smax] = options.scale ?? [0.08, 1];
  const [rmin, rmax] = options.ratio ?? [3 / 4, 4 / 3];
  const area = h * w;
  const logMin = Math.log(rmin),
    logMax = Math.log(rmax);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(smin, smax);
    const aspect = Math.exp(rng.uniform(logMin, logMax));
    const cw = Math.round(Math.sqrt(target * aspect));
    const ch = Math.round(Math.sqrt(target / aspect));
    if (cw > 0 && ch > 0 && cw <= w && ch <= h) {
      return { y: rng.int(h - ch + 1), x: rng.int(w - cw + 1), height: ch, width: cw };
    }
  }
  // Fallback: the whole image, trimmed to the nearest allowed aspect ratio, centered.
  const imageRatio = w / h;
  let cw = w,
    ch = h;
  if (imageRatio < rmin) ch = Math.round(w / rmin);
  else if (imageRatio > rmax) cw = Math.round(h * rmax);
  return { y: Math.floor((h - ch) / 2), x: Math.floor((w - cw) / 2), height: ch, width: cw };
}

export interface AugmentOptions {
  /** Shift the image by up to this many pixels each way, filling with zero pixels (black). */
  randomCrop?: { padding: number };
  /** Mirror left–right with probability 1/2. */
  horizontalFlip?: boolean;
  /** Inception-style random-resized crop (then resized to the output size). */
  randomResizedCrop?: RandomResizedCropOptions | boolean;
}

export function validateAugment(a: AugmentOptions | undefined): void {
  if (!a) return;
  if (typeof a !== 'object') throw new OptionError(`augment must be an object, got ${typeof a}`);
  const known = new Set(['randomCrop', 'horizontalFlip', 'randomResizedCrop']);
  for (const k of Object.keys(a))
    if (!known.has(k)) throw new OptionError(`unknown augmentation '${k}', expected ${[...known].join(', ')}`);
  if (a.randomCrop !== undefined) {
    const p = a.randomCrop?.padding;
    if (!Number.isInteger(p) || p < 0) throw new OptionError(`randomCrop.padding must be a non-negative integer, got ${p}`);
  }
  const rrc = a.randomResizedCrop;
  if (rrc && typeof rrc === 'object') {
    const [smin, smax] = rrc.scale ?? [0.08, 1];
    const [rmin, rmax] = rrc.ratio ?? [3 / 4, 4 / 3];
    if (!(smin > 0 && smin <= smax && smax <= 1))
      throw new OptionError(`randomResizedCrop.scale must satisfy 0 < min ≤ max ≤ 1, got [${smin}, ${smax}]`);
    if (!(rmin > 0 && rmin <= rmax && Number.isFinite(rmax)))
      throw new OptionError(`randomResizedCrop.ratio must satisfy 0 < min ≤ max, got [${rmin}, ${rmax}]`);
  }
}

/** Everything needed to turn one stored image into one batch entry. */
export interface SamplePlan {
  height: number;
  width: number;
  channels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  scale: number;
  offset: number;
  augment: AugmentOptions;
}

/**
 * Writes image `index` of `images` (uint8 NHWC) into `out` at `outOffset`, drawing augmentation
 * randomness from `rng` in a fixed order (resized crop, shift, flip) so results are reproducible.
 * `work` is scratch space of at least outHeight·outWidth·channels floats.
 */
export function buildSample(
  images: Uint8Array,
  index: number,
  plan: SamplePlan,
  rng: Random,
  out: Float32Array,
  outOffset: number,
  work: Float32Array,
): void {
  const { height: h, width: w, channels: c, outHeight: oh, outWidth: ow, outChannels: oc, scale, offset, augment } = plan;
  const srcOffset = index * h * w * c;
  let src: ArrayLike<number> = images;
  let base = srcOffset;
  const rrc = augment.randomResizedCrop;
  if (rrc) {
    const box = randomResizedCropBox(h, w, rng, typeof rrc === 'object' ? rrc : {});
    resizeBilinear(images, srcOffset, h, w, c, box, work, oh, ow);
    src = work;
    base = 0;
  } else if (oh !== h || ow !== w) {
    resizeBilinear(images, srcOffset, h, w, c, { y: 0, x: 0, height: h, width: w }, work, oh, ow);
    src = work;
    base = 0;
  }
  let dy = 0,
    dx = 0;
  const pad = augment.randomCrop?.padding ?? 0;
  if (pad > 0) {
    dy = rng.int(2 * pad + 1) - pad;
    dx = rng.int(2 * pad + 1) - pad;
  }
  const flip = augment.horizontalFlip ? rng.next() < 0.5 : false;
  const zero = offset; // a zero pixel after preprocessing
  for (let y = 0; y < oh; y++) {
    const sy = y + dy;
    const rowOut = outOffset + y * ow * oc;
    if (sy < 0 || sy >= oh) {
      out.fill(zero, rowOut, rowOut + ow * oc);
      continue;
    }
    for (let x = 0; x < ow; x++) {
      const sx = (flip ? ow - 1 - x : x) + dx;
      const o = rowOut + x * oc;
      if (sx < 0 || sx >= ow) {
        out.fill(zero, o, o + oc);
        continue;
      }
      const s = base + (sy * ow + sx) * c;
      if (c === oc) {
        for (let ch = 0; ch < c; ch++) out[o + ch] = src[s + ch]! * scale + offset;
      } else {
        // Grayscale to RGB: replicate the single channel.
        const v = src[s]! * scale + offset;
        for (let ch = 0; ch < oc; ch++) out[o + ch] = v;
      }
    }
  }
}
