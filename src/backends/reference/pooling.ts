/**
 * Pooling over NHWC tensors.
 *
 * Windows: output (oh, ow) covers input rows oh·strideH − padTop … + windowH − 1 and the matching
 * columns. Padded cells are not zeros here, they are absent (TensorFlow's rule): they never win a
 * max and never count in an average, so an average divides by the number of real cells in its
 * window. Every window contains at least one real cell (asserted: padding < window and the output
 * size matches).
 *
 * Loops: for each output pixel, for each real window cell, a contiguous row of channels.
 */
import type { GlobalPoolParams, Handle, NumArray, Pool2DParams } from '../../core/backend.js';
import { asArray, check, checkNonNegativeInts, checkPositiveInts, checkWindowOutput, fromAccumulator, newLike } from './arrays.js';

function checkPoolParams(p: Pool2DParams, kernel: string): void {
  checkPositiveInts(
    p,
    ['batch', 'inHeight', 'inWidth', 'channels', 'outHeight', 'outWidth', 'windowHeight', 'windowWidth', 'strideHeight', 'strideWidth'],
    kernel,
  );
  checkNonNegativeInts(p, ['padTop', 'padLeft', 'padBottom', 'padRight'], kernel);
  check(
    p.padTop < p.windowHeight && p.padBottom < p.windowHeight && p.padLeft < p.windowWidth && p.padRight < p.windowWidth,
    `${kernel}: padding ${p.padTop},${p.padBottom},${p.padLeft},${p.padRight} (top, bottom, left, right) must be smaller ` +
      `than the window ${p.windowHeight}×${p.windowWidth}, or a window could hold only padding`,
  );
  checkWindowOutput(kernel, 'height', p.inHeight, p.outHeight, p.windowHeight, p.strideHeight, 1, p.padTop, p.padBottom);
  checkWindowOutput(kernel, 'width', p.inWidth, p.outWidth, p.windowWidth, p.strideWidth, 1, p.padLeft, p.padRight);
}

const poolInputSize = (p: Pool2DParams) => p.batch * p.inHeight * p.inWidth * p.channels;
const poolOutputSize = (p: Pool2DParams) => p.batch * p.outHeight * p.outWidth * p.channels;

/**
 * Calls `visit(outPixel, h0, h1, w0, w1, n)` once per output pixel with the window clipped to the
 * image: rows h0 ≤ ih < h1, columns w0 ≤ iw < w1 of image n.
 */
function forEachWindow(
  p: Pool2DParams,
  visit: (outPixel: number, h0: number, h1: number, w0: number, w1: number, n: number) => void,
): void {
  for (let n = 0; n < p.batch; n++) {
    for (let oh = 0; oh < p.outHeight; oh++) {
      const hStart = oh * p.strideHeight - p.padTop;
      const h0 = Math.max(hStart, 0),
        h1 = Math.min(hStart + p.windowHeight, p.inHeight);
      for (let ow = 0; ow < p.outWidth; ow++) {
        const wStart = ow * p.strideWidth - p.padLeft;
        const w0 = Math.max(wStart, 0),
          w1 = Math.min(wStart + p.windowWidth, p.inWidth);
        visit((n * p.outHeight + oh) * p.outWidth + ow, h0, h1, w0, w1, n);
      }
    }
  }
}

/**
 * For each output element, the flat index into x of its window's first maximum in row-major
 * scan order (a later equal value does not replace an earlier one). NaN never wins.
 */
function maxPoolArgmax(x: NumArray, p: Pool2DParams): Int32Array {
  const C = p.channels;
  const argmax = new Int32Array(poolOutputSize(p));
  const best = new Float64Array(C);
  forEachWindow(p, (outPixel, h0, h1, w0, w1, n) => {
    best.fill(-Infinity);
    const outBase = outPixel * C;
    // The first real cell seeds the winners, so even an all −∞ or NaN window points inside it.
    const firstBase = ((n * p.inHeight + h0) * p.inWidth + w0) * C;
    for (let c = 0; c < C; c++) argmax[outBase + c] = firstBase + c;
    for (let ih = h0; ih < h1; ih++) {
      for (let iw = w0; iw < w1; iw++) {
        const inBase = ((n * p.inHeight + ih) * p.inWidth + iw) * C;
        for (let c = 0; c < C; c++) {
          const v = x[inBase + c];
          if (v > best[c]) {
            best[c] = v;
            argmax[outBase + c] = inBase + c;
          }
        }
      }
    }
  });
  return argmax;
}

export function maxPool2d(xh: Handle, p: Pool2DParams): NumArray {
  checkPoolParams(p, 'maxPool2d');
  const x = asArray(xh, poolInputSize(p), 'maxPool2d input');
  const argmax = maxPoolArgmax(x, p);
  const y = newLike(x, argmax.length);
  for (let i = 0; i < argmax.length; i++) y[i] = x[argmax[i]];
  return y;
}

/** dx[first argmax of each window] += dy; every other element gets nothing. */
export function maxPool2dBackward(dyh: Handle, xh: Handle, p: Pool2DParams): NumArray {
  checkPoolParams(p, 'maxPool2dBackward');
  const dy = asArray(dyh, poolOutputSize(p), 'maxPool2dBackward output gradient');
  const x = asArray(xh, poolInputSize(p), 'maxPool2dBackward input');
  const argmax = maxPoolArgmax(x, p);
  const acc = new Float64Array(x.length);
  for (let i = 0; i < argmax.length; i++) acc[argmax[i]] += dy[i];
  return fromAccumulator(dy, acc);
}

/** Mean over the real (non-padded) cells of each window. */
export function avgPool2d(xh: Handle, p: Pool2DParams): NumArray {
  checkPoolParams(p, 'avgPool2d');
  const x = asArray(xh, poolInputSize(p), 'avgPool2d input');
  const C = p.channels;
  const y = newLike(x, poolOutputSize(p));
  const sum = new Float64Array(C);
  forEachWindow(p, (outPixel, h0, h1, w0, w1, n) => {
    sum.fill(0);
    for (let ih = h0; ih < h1; ih++) {
      for (let iw = w0; iw < w1; iw++) {
        const inBase = ((n * p.inHeight + ih) * p.inWidth + iw) * C;
        for (let c = 0; c < C; c++) sum[c] += x[inBase + c];
      }
    }
    const count = (h1 - h0) * (w1 - w0);
    const outBase = outPixel * C;
    for (let c = 0; c < C; c++) y[outBase + c] = sum[c] / count;
  });
  return y;
}

/** Each real cell of a window receives dy / (number of real cells in that window). */
export function avgPool2dBackward(dyh: Handle, p: Pool2DParams): NumArray {
  checkPoolParams(p, 'avgPool2dBackward');
  const dy = asArray(dyh, poolOutputSize(p), 'avgPool2dBackward output gradient');
  const C = p.channels;
  const acc = new Float64Array(poolInputSize(p));
  forEachWindow(p, (outPixel, h0, h1, w0, w1, n) => {
    const count = (h1 - h0) * (w1 - w0);
    const outBase = outPixel * C;
    for (let ih = h0; ih < h1; ih++) {
      for (let iw = w0; iw < w1; iw++) {
        const inBase = ((n * p.inHeight + ih) * p.inWidth + iw) * C;
        for (let c = 0; c < C; c++) acc[inBase + c] += dy[outBase + c] / count;
      }
    }
  });
  return fromAccumulator(dy, acc);
}

// --- global pooling over [batch, spatial, channels] → [batch, channels] -----------------------

function checkGlobalParams(p: GlobalPoolParams, kernel: string): void {
  checkPositiveInts(p, ['batch', 'spatial', 'channels'], kernel);
}

export function globalAvgPool(xh: Handle, p: GlobalPoolParams): NumArray {
  checkGlobalParams(p, 'globalAvgPool');
  const { batch: N, spatial: S, channels: C } = p;
  const x = asArray(xh, N * S * C, 'globalAvgPool input');
  const acc = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    for (let s = 0; s < S; s++) {
      const inBase = (n * S + s) * C;
      for (let c = 0; c < C; c++) acc[n * C + c] += x[inBase + c];
    }
  }
  for (let i = 0; i < acc.length; i++) acc[i] /= S;
  return fromAccumulator(x, acc);
}

/** dx[n, s, c] = dy[n, c] / spatial. */
export function globalAvgPoolBackward(dyh: Handle, p: GlobalPoolParams): NumArray {
  checkGlobalParams(p, 'globalAvgPoolBackward');
  const { batch: N, spatial: S, channels: C } = p;
  const dy = asArray(dyh, N * C, 'globalAvgPoolBackward output gradient');
  const dx = newLike(dy, N * S * C);
  for (let n = 0; n < N; n++) {
    for (let s = 0; s < S; s++) {
      const inBase = (n * S + s) * C;
      for (let c = 0; c < C; c++) dx[inBase + c] = dy[n * C + c] / S;
    }
  }
  return dx;
}

/** Flat index into x of the first maximum over the spatial positions, per (image, channel). */
function globalArgmax(x: NumArray, p: GlobalPoolParams): Int32Array {
  const { batch: N, spatial: S, channels: C } = p;
  const argmax = new Int32Array(N * C);
  const best = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    best.fill(-Infinity);
    for (let c = 0; c < C; c++) argmax[n * C + c] = n * S * C + c;
    for (let s = 0; s < S; s++) {
      const inBase = (n * S + s) * C;
      for (let c = 0; c < C; c++) {
        if (x[inBase + c] > best[c]) {
          best[c] = x[inBase + c];
          argmax[n * C + c] = inBase + c;
        }
      }
    }
  }
  return argmax;
}

export function globalMaxPool(xh: Handle, p: GlobalPoolParams): NumArray {
  checkGlobalParams(p, 'globalMaxPool');
  const x = asArray(xh, p.batch * p.spatial * p.channels, 'globalMaxPool input');
  const argmax = globalArgmax(x, p);
  const y = newLike(x, argmax.length);
  for (let i = 0; i < argmax.length; i++) y[i] = x[argmax[i]];
  return y;
}

/** The whole gradient of each (image, channel) goes to its first maximum. */
export function globalMaxPoolBackward(dyh: Handle, xh: Handle, p: GlobalPoolParams): NumArray {
  checkGlobalParams(p, 'globalMaxPoolBackward');
  const dy = asArray(dyh, p.batch * p.channels, 'globalMaxPoolBackward output gradient');
  const x = asArray(xh, p.batch * p.spatial * p.channels, 'globalMaxPoolBackward input');
  const argmax = globalArgmax(x, p);
  const dx = newLike(dy, x.length);
  for (let i = 0; i < argmax.length; i++) dx[argmax[i]] = dy[i];
  return dx;
}
