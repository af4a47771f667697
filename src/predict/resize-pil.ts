/**
 * Image resizing exactly as Pillow's `Image.resize` does it, because Keras's
 * `image.load_img(path, target_size=…)` resizes with Pillow (nearest-neighbour by default): the
 * same pixels in, the same pixels out, so predictions match a Keras pipeline bit for bit.
 *
 * NEAREST: Pillow runs an affine transform whose source coordinate starts at scale/2 and grows
 * by `scale` per output pixel, accumulated in float64 and truncated; the accumulation (not
 * (x + 0.5)·scale) decides which pixel wins where a sample falls exactly on a boundary.
 * BILINEAR: Pillow's separable resampling (horizontal pass, then vertical), a triangle filter
 * widened by the scale when shrinking (antialiasing), coefficients in 22-bit fixed point,
 * each pass rounded and clipped to 8 bits.
 */
import { ShapeError } from '../core/errors.js';

export type PilFilter = 'nearest' | 'bilinear';

/** Resizes HWC uint8 pixels from h×w to outH×outW. */
export function resizeLikePil(src: Uint8Array, h: number, w: number, c: number, outH: number, outW: number, filter: PilFilter): Uint8Array {
  for (const [name, v] of [['h', h], ['w', w], ['c', c], ['outH', outH], ['outW', outW]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`resize: ${name} must be a positive integer, got ${v}`);
  }
  if (src.length !== h * w * c) throw new ShapeError(`resize: ${src.length} bytes for a ${h}×${w}×${c} image`);
  if (h === outH && w === outW) return Uint8Array.from(src);
  return filter === 'nearest' ? nearest(src, h, w, c, outH, outW) : bilinear(src, h, w, c, outH, outW);
}

function nearest(src: Uint8Array, h: number, w: number, c: number, outH: number, outW: number): Uint8Array {
  const out = new Uint8Array(outH * outW * c);
  const xStep = w / outW;
  const yStep = h / outH;
  let yy = yStep * 0.5;
  for (let y = 0; y < outH; y++) {
    const sy = Math.trunc(yy);
    let xx = xStep * 0.5;
    for (let x = 0; x < outW; x++) {
      const sx = Math.trunc(xx);
      // Pillow leaves a sample outside the image black; the accumulation never gets there in practice.
      if (sx < w && sy < h) for (let ch = 0; ch < c; ch++) out[(y * outW + x) * c + ch] = src[(sy * w + sx) * c + ch]!;
      xx += xStep;
    }
    yy += yStep;
  }
  return out;
}

const PRECISION_BITS = 32 - 8 - 2;

/** Per output pixel: first input index, tap count, and fixed-point weights (Pillow's precompute_coeffs). */
function coefficients(inSize: number, outSize: number): { first: Int32Array; count: Int32Array; weights: Int32Array; taps: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale; // the triangle filter's support is 1
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const k = new Float64Array(taps);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const inv = 1 / filterScale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let i = 0; i < xmax; i++) {
      const t = Math.abs((i + xmin - center + 0.5) * inv);
      k[i] = t < 1 ? 1 - t : 0;
      total += k[i]!;
    }
    for (let i = 0; i < xmax; i++) {
      const v = total !== 0 ? k[i]! / total : k[i]!;
      weights[o * taps + i] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    first[o] = xmin;
    count[o] = xmax;
  }
  return { first, count, weights, taps };
}

function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function bilinear(src: Uint8Array, h: number, w: number, c: number, outH: number, outW: number): Uint8Array {
  let cur = src;
  let curW = w;
  if (outW !== w) {
    const { first, count, weights, taps } = coefficients(w, outW);
    const tmp = new Uint8Array(h * outW * c);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < outW; x++) {
        for (let ch = 0; ch < c; ch++) {
          let acc = 1 << (PRECISION_BITS - 1);
          for (let i = 0; i < count[x]!; i++) acc += src[(y * w + first[x]! + i) * c + ch]! * weights[x * taps + i]!;
          tmp[(y * outW + x) * c + ch] = clip8(acc);
        }
      }
    }
    cur = tmp;
    curW = outW;
  }
  if (outH === h) return cur === src ? Uint8Array.from(src) : cur;
  const { first, count, weights, taps } = coefficients(h, outH);
  const out = new Uint8Array(outH * curW * c);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < curW; x++) {
      for (let ch = 0; ch < c; ch++) {
        let acc = 1 << (PRECISION_BITS - 1);
        for (let i = 0; i < count[y]!; i++) acc += cur[((first[y]! + i) * curW + x) * c + ch]! * weights[y * taps + i]!;
        out[(y * curW + x) * c + ch] = clip8(acc);
      }
    }
  }
  return out;
}
