/**
 * Convolution and pooling written straight from their definitions — one output element at a
 * time, every window cell tested against the image bounds — in a different loop order from the
 * reference backend, so the two share no indexing code. Tests compare the backend's forward
 * kernels against these on random shapes.
 */
import type { Conv2DParams, Pool2DParams } from '../../src/core/backend.js';

export function naiveConv2d(x: ArrayLike<number>, w: ArrayLike<number>, p: Conv2DParams): Float64Array {
  const inPerGroup = p.inChannels / p.groups,
    outPerGroup = p.outChannels / p.groups;
  const xAt = (n: number, h: number, wi: number, c: number) => x[((n * p.inHeight + h) * p.inWidth + wi) * p.inChannels + c];
  const wAt = (kh: number, kw: number, ci: number, o: number) => w[((kh * p.kernelWidth + kw) * inPerGroup + ci) * p.outChannels + o];
  const y = new Float64Array(p.batch * p.outHeight * p.outWidth * p.outChannels);
  let i = 0;
  for (let n = 0; n < p.batch; n++)
    for (let oh = 0; oh < p.outHeight; oh++)
      for (let ow = 0; ow < p.outWidth; ow++)
        for (let o = 0; o < p.outChannels; o++) {
          const group = Math.floor(o / outPerGroup);
          let s = 0;
          for (let kh = 0; kh < p.kernelHeight; kh++)
            for (let kw = 0; kw < p.kernelWidth; kw++) {
              const ih = oh * p.strideHeight + kh * p.dilationHeight - p.padTop;
              const iw = ow * p.strideWidth + kw * p.dilationWidth - p.padLeft;
              const inside = ih >= 0 && ih < p.inHeight && iw >= 0 && iw < p.inWidth;
              for (let ci = 0; ci < inPerGroup; ci++) {
                const xv = inside ? xAt(n, ih, iw, group * inPerGroup + ci) : 0;
                s += xv * wAt(kh, kw, ci, o);
              }
            }
          y[i++] = s;
        }
  return y;
}

/** The values of the real (non-padded) cells of one pooling window, in row-major order. */
function windowValues(x: ArrayLike<number>, p: Pool2DParams, n: number, oh: number, ow: number, c: number): number[] {
  const values: number[] = [];
  for (let dh = 0; dh < p.windowHeight; dh++)
    for (let dw = 0; dw < p.windowWidth; dw++) {
      const ih = oh * p.strideHeight + dh - p.padTop,
        iw = ow * p.strideWidth + dw - p.padLeft;
      if (ih >= 0 && ih < p.inHeight && iw >= 0 && iw < p.inWidth) {
        values.push(x[((n * p.inHeight + ih) * p.inWidth + iw) * p.channels + c]);
      }
    }
  return values;
}

function naivePool(x: ArrayLike<number>, p: Pool2DParams, reduce: (values: number[]) => number): Float64Array {
  const y = new Float64Array(p.batch * p.outHeight * p.outWidth * p.channels);
  let i = 0;
  for (let n = 0; n < p.batch; n++)
    for (let oh = 0; oh < p.outHeight; oh++)
      for (let ow = 0; ow < p.outWidth; ow++) for (let c = 0; c < p.channels; c++) y[i++] = reduce(windowValues(x, p, n, oh, ow, c));
  return y;
}

export function naiveMaxPool(x: ArrayLike<number>, p: Pool2DParams): Float64Array {
  return naivePool(x, p, (v) => Math.max(...v));
}

export function naiveAvgPool(x: ArrayLike<number>, p: Pool2DParams): Float64Array {
  return naivePool(x, p, (v) => v.reduce((a, b) => a + b, 0) / v.length);
}
