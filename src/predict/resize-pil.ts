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
  for (const [name, v] of [
    ['h', h],
    ['w', w],
    ['c', c],
    ['outH', outH],
    ['outW', outW],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`resize: ${name} must be a positive integer, got ${v}`);
  }
  if (src.length !== h * w * c) throw new ShapeError(`resize: ${src.length} bytes for a ${h}×${w}×${c} image`);
  if (h === outH && w === outW) return Uint8Array.from(src);
  return filter === 'nearest' ? nearest(src, h, w, c, outH, outW) : bilinear(src, h, w, c, outH, outW);
}

function nearest(src: Uint8Array, h: number, w: number, c: number, outH: number, outW: number): Uint8Array {
  const out = new Uint8Array(outH * outW * c);
  // Source column offsets, once per image (-1: outside, left black as Pillow leaves it; the
  // accumulation never gets there in practice).
  const cols = new Int32Array(outW);
  const xStep = w / outW;
  let xx = xStep * 0.5;
  for (let x = 0; x < outW; x++, xx += xStep) cols[x] = Math.trunc(xx) < w ? Math.trunc(xx) * c : -1;
  const yStep = h / outH;
  let yy = yStep * 0.5;
  for (let y = 0, o = 0; y < outH; y++, yy += yStep) {
    const sy = Math.trunc(yy);
    if (sy >= h) {
      o += outW * c;
      continue;
    }
    const row = sy * w * c;
    for (let x = 0; x < outW; x++, o += c) {
      if (cols[x]! < 0) continue;
      const s = row + cols[x]!;
      for (let ch = 0; ch < c; ch++) out[o + ch] = src[s + ch]!;
    }
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

/** Horizontal pass: each row of h rows resampled from w to outW columns. */
function resampleRows(src: Uint8Array, h: number, w: number, c: number, outW: number): Uint8Array {
  const { first, count, weights, taps } = coefficients(w, outW);
  const out = new Uint8Array(h * outW * c);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0, o = 0; y < h; y++) {
    const row = y * w * c;
    for (let x = 0; x < outW; x++, o += c) {
      const base = row + first[x]! * c,
        n = count[x]!,
        wo = x * taps;
      if (c === 3) {
        // RGB, the usual case, with one accumulator per channel.
        let r = half,
          g = half,
          b = half;
        for (let i = 0, p = base; i < n; i++, p += 3) {
          const k = weights[wo + i]!;
          r += src[p]! * k;
          g += src[p + 1]! * k;
          b += src[p + 2]! * k;
        }
        out[o] = clip8(r);
        out[o + 1] = clip8(g);
        out[o + 2] = clip8(b);
        continue;
      }
      for (let ch = 0; ch < c; ch++) {
        let acc = half;
        for (let i = 0, p = base + ch; i < n; i++, p += c) acc += src[p]! * weights[wo + i]!;
        out[o + ch] = clip8(acc);
      }
    }
  }
  return out;
}

/** Vertical pass: h rows of rowLength values resampled to outH rows (sums are exact integers, so the order does not matter). */
function resampleColumns(src: Uint8Array, h: number, rowLength: number, outH: number): Uint8Array {
  const { first, count, weights, taps } = coefficients(h, outH);
  const out = new Uint8Array(outH * rowLength);
  const acc = new Float64Array(rowLength);
  for (let y = 0; y < outH; y++) {
    acc.fill(1 << (PRECISION_BITS - 1));
    for (let i = 0; i < count[y]!; i++) {
      const k = weights[y * taps + i]!;
      const row = (first[y]! + i) * rowLength;
      for (let j = 0; j < rowLength; j++) acc[j]! += src[row + j]! * k;
    }
    for (let j = 0, o = y * rowLength; j < rowLength; j++, o++) out[o] = clip8(acc[j]!);
  }
  return out;
}

function bilinear(src: Uint8Array, h: number, w: number, c: number, outH: number, outW: number): Uint8Array {
  // Pillow's order: horizontal pass first, each pass rounded to 8 bits.
  const rows = outW !== w ? resampleRows(src, h, w, c, outW) : src;
  if (outH === h) return rows === src ? Uint8Array.from(src) : rows;
  return resampleColumns(rows, h, outW * c, outH);
}
