/**
 * 2-D convolution, NHWC activations and HWIO filters [kh, kw, inChannels/groups, outChannels].
 *
 * Definition (cross-correlation, as in every deep-learning framework):
 *   y[n, oh, ow, o] = Σ_{kh, kw, ci} x[n, ih, iw, g·Cg + ci] · w[kh, kw, ci, o]
 *   with ih = oh·strideH − padTop + kh·dilationH, iw = ow·strideW − padLeft + kw·dilationW,
 *   g = floor(o / OCg), Cg = inChannels/groups, OCg = outChannels/groups,
 * where x outside the image (the padding) reads as zero.
 *
 * Loop order follows memory order: for each filter tap, for each (input pixel, output pixel) pair
 * the tap connects, for each input channel, the contiguous filter row w[kh, kw, ci, g·OCg …] is
 * multiplied by the scalar x and added into a float64 accumulator row of output channels. Both
 * backward passes walk the same pairs and scatter instead of gather.
 *
 * Speed: this backend must run the whole of Xception at 71×71 forward and backward in seconds, and
 * JavaScript does not vectorize. The inner loops therefore take four input channels (or, for the
 * filter gradient, four pixel pairs) at a time, which cuts the loads and stores of the accumulator
 * row by four and roughly triples the speed; a plain one-at-a-time loop finishes the remainder.
 * The arithmetic is unchanged: every product is still added in float64.
 */
import type { Conv2DParams, Handle, NumArray } from '../../core/backend.js';
import { asArray, check, checkNonNegativeInts, checkPositiveInts, checkWindowOutput, fromAccumulator } from './arrays.js';

function checkConvParams(p: Conv2DParams, kernel: string): void {
  checkPositiveInts(
    p,
    ['batch', 'inHeight', 'inWidth', 'inChannels', 'outHeight', 'outWidth', 'outChannels', 'kernelHeight', 'kernelWidth',
      'strideHeight', 'strideWidth', 'dilationHeight', 'dilationWidth', 'groups'],
    kernel,
  );
  checkNonNegativeInts(p, ['padTop', 'padLeft', 'padBottom', 'padRight'], kernel);
  check(p.inChannels % p.groups === 0, `${kernel}: inChannels ${p.inChannels} is not divisible by groups ${p.groups}`);
  check(p.outChannels % p.groups === 0, `${kernel}: outChannels ${p.outChannels} is not divisible by groups ${p.groups}`);
  checkWindowOutput(kernel, 'height', p.inHeight, p.outHeight, p.kernelHeight, p.strideHeight, p.dilationHeight, p.padTop, p.padBottom);
  checkWindowOutput(kernel, 'width', p.inWidth, p.outWidth, p.kernelWidth, p.strideWidth, p.dilationWidth, p.padLeft, p.padRight);
}

const inputSize = (p: Conv2DParams) => p.batch * p.inHeight * p.inWidth * p.inChannels;
const outputSize = (p: Conv2DParams) => p.batch * p.outHeight * p.outWidth * p.outChannels;
const filterSize = (p: Conv2DParams) => p.kernelHeight * p.kernelWidth * (p.inChannels / p.groups) * p.outChannels;

/**
 * For each filter tap (kh·kernelWidth + kw), the flat pixel indices [in0, out0, in1, out1, …] of
 * every (input pixel, output pixel) pair the tap connects. Pairs whose input lies in the padding
 * are left out: padding is zero and contributes nothing. Multiply a pixel index by the channel
 * count to get its element offset.
 */
function tapConnections(p: Conv2DParams): Int32Array[] {
  const { batch, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, kernelHeight: KH, kernelWidth: KW } = p;
  const taps: Int32Array[] = [];
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const pairs: number[] = [];
      for (let n = 0; n < batch; n++) {
        for (let oh = 0; oh < OH; oh++) {
          const ih = oh * p.strideHeight - p.padTop + kh * p.dilationHeight;
          if (ih < 0 || ih >= H) continue;
          for (let ow = 0; ow < OW; ow++) {
            const iw = ow * p.strideWidth - p.padLeft + kw * p.dilationWidth;
            if (iw < 0 || iw >= W) continue;
            pairs.push((n * H + ih) * W + iw, (n * OH + oh) * OW + ow);
          }
        }
      }
      taps.push(Int32Array.from(pairs));
    }
  }
  return taps;
}

/** y = conv(x, w): [N, OH, OW, OC]. */
export function conv2d(xh: Handle, wh: Handle, p: Conv2DParams): NumArray {
  checkConvParams(p, 'conv2d');
  const x = asArray(xh, inputSize(p), 'conv2d input');
  const w = asArray(wh, filterSize(p), 'conv2d filter');
  const C = p.inChannels, OC = p.outChannels, G = p.groups;
  const Cg = C / G, OCg = OC / G;
  const acc = new Float64Array(outputSize(p)); // y rounds once, at the end
  const taps = tapConnections(p);
  for (let tap = 0; tap < taps.length; tap++) {
    const pairs = taps[tap];
    const wTap = tap * Cg * OC; // w[kh, kw, 0, 0]
    for (let k = 0; k < pairs.length; k += 2) {
      const xPixel = pairs[k] * C, yPixel = pairs[k + 1] * OC;
      if (Cg === 1) {
        // Depthwise: the filter row of this tap covers every output channel o, which reads
        // input channel floor(o / multiplier).
        for (let o = 0; o < OC; o++) acc[yPixel + o] += x[xPixel + ((o / OCg) | 0)] * w[wTap + o];
        continue;
      }
      for (let g = 0; g < G; g++) {
        const xGroup = xPixel + g * Cg, yGroup = yPixel + g * OCg, wGroup = wTap + g * OCg;
        let ci = 0;
        for (; ci + 4 <= Cg; ci += 4) {
          // y[o] += Σ_{j<4} x[ci+j] · w[kh, kw, ci+j, o]
          const x0 = x[xGroup + ci], x1 = x[xGroup + ci + 1], x2 = x[xGroup + ci + 2], x3 = x[xGroup + ci + 3];
          const r0 = wGroup + ci * OC, r1 = r0 + OC, r2 = r1 + OC, r3 = r2 + OC;
          for (let o = 0; o < OCg; o++) acc[yGroup + o] += x0 * w[r0 + o] + x1 * w[r1 + o] + x2 * w[r2 + o] + x3 * w[r3 + o];
        }
        for (; ci < Cg; ci++) {
          const xv = x[xGroup + ci], r = wGroup + ci * OC;
          for (let o = 0; o < OCg; o++) acc[yGroup + o] += xv * w[r + o];
        }
      }
    }
  }
  return fromAccumulator(x, acc);
}

/** dx = ∂(Σ y·dy)/∂x: x[ci] collects the dot product of dy[o] and w[kh, kw, ci, o] over every pair. */
export function conv2dBackwardInput(dyh: Handle, wh: Handle, p: Conv2DParams): NumArray {
  checkConvParams(p, 'conv2dBackwardInput');
  const dy = asArray(dyh, outputSize(p), 'conv2dBackwardInput output gradient');
  const w = asArray(wh, filterSize(p), 'conv2dBackwardInput filter');
  const C = p.inChannels, OC = p.outChannels, G = p.groups;
  const Cg = C / G, OCg = OC / G;
  const acc = new Float64Array(inputSize(p));
  const taps = tapConnections(p);
  for (let tap = 0; tap < taps.length; tap++) {
    const pairs = taps[tap];
    const wTap = tap * Cg * OC;
    for (let k = 0; k < pairs.length; k += 2) {
      const xPixel = pairs[k] * C, yPixel = pairs[k + 1] * OC;
      if (Cg === 1) {
        // Depthwise: output channel o sends its gradient back to input channel floor(o / multiplier).
        for (let o = 0; o < OC; o++) acc[xPixel + ((o / OCg) | 0)] += dy[yPixel + o] * w[wTap + o];
        continue;
      }
      for (let g = 0; g < G; g++) {
        const xGroup = xPixel + g * Cg, yGroup = yPixel + g * OCg, wGroup = wTap + g * OCg;
        let ci = 0;
        for (; ci + 4 <= Cg; ci += 4) {
          // Four dot products over the same dy row, one per filter row.
          const r0 = wGroup + ci * OC, r1 = r0 + OC, r2 = r1 + OC, r3 = r2 + OC;
          let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (let o = 0; o < OCg; o++) {
            const d = dy[yGroup + o];
            s0 += d * w[r0 + o];
            s1 += d * w[r1 + o];
            s2 += d * w[r2 + o];
            s3 += d * w[r3 + o];
          }
          acc[xGroup + ci] += s0;
          acc[xGroup + ci + 1] += s1;
          acc[xGroup + ci + 2] += s2;
          acc[xGroup + ci + 3] += s3;
        }
        for (; ci < Cg; ci++) {
          const r = wGroup + ci * OC;
          let s = 0;
          for (let o = 0; o < OCg; o++) s += dy[yGroup + o] * w[r + o];
          acc[xGroup + ci] += s;
        }
      }
    }
  }
  return fromAccumulator(dy, acc);
}

/**
 * dw = ∂(Σ y·dy)/∂w: w[kh, kw, ci, o] collects x[ci]·dy[o] over every pair of its tap. The pair
 * loop runs inside the filter-row loop so that one accumulator row stays in cache while it fills.
 */
export function conv2dBackwardFilter(xh: Handle, dyh: Handle, p: Conv2DParams): NumArray {
  checkConvParams(p, 'conv2dBackwardFilter');
  const x = asArray(xh, inputSize(p), 'conv2dBackwardFilter input');
  const dy = asArray(dyh, outputSize(p), 'conv2dBackwardFilter output gradient');
  const C = p.inChannels, OC = p.outChannels, G = p.groups;
  const Cg = C / G, OCg = OC / G;
  const acc = new Float64Array(filterSize(p));
  const taps = tapConnections(p);
  for (let tap = 0; tap < taps.length; tap++) {
    const pairs = taps[tap];
    const wTap = tap * Cg * OC;
    if (Cg === 1) {
      // Depthwise: a single filter row per tap; output channel o reads input floor(o / multiplier).
      for (let k = 0; k < pairs.length; k += 2) {
        const xPixel = pairs[k] * C, yPixel = pairs[k + 1] * OC;
        for (let o = 0; o < OC; o++) acc[wTap + o] += x[xPixel + ((o / OCg) | 0)] * dy[yPixel + o];
      }
      continue;
    }
    for (let g = 0; g < G; g++) {
      for (let ci = 0; ci < Cg; ci++) {
        const r = wTap + ci * OC + g * OCg; // the accumulator row w[kh, kw, ci, g·OCg …]
        const xc = g * Cg + ci, yg = g * OCg;
        let k = 0;
        for (; k + 8 <= pairs.length; k += 8) {
          // Four pairs at once: the row is loaded and stored once for four products.
          const va = x[pairs[k] * C + xc], vb = x[pairs[k + 2] * C + xc];
          const vc = x[pairs[k + 4] * C + xc], vd = x[pairs[k + 6] * C + xc];
          const ya = pairs[k + 1] * OC + yg, yb = pairs[k + 3] * OC + yg;
          const yc = pairs[k + 5] * OC + yg, yd = pairs[k + 7] * OC + yg;
          for (let o = 0; o < OCg; o++) acc[r + o] += va * dy[ya + o] + vb * dy[yb + o] + vc * dy[yc + o] + vd * dy[yd + o];
        }
        for (; k < pairs.length; k += 2) {
          const xv = x[pairs[k] * C + xc], yr = pairs[k + 1] * OC + yg;
          for (let o = 0; o < OCg; o++) acc[r + o] += xv * dy[yr + o];
        }
      }
    }
  }
  return fromAccumulator(x, acc);
}
