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
 * JavaScript does not vectorize. The general loops therefore work on small blocks — two pixel
 * pairs × four input channels for the forward pass and the input gradient, four pixel pairs × two
 * input channels for the filter gradient — so that each value loaded from memory feeds several
 * products (about 3–4× faster than one product per load). The one-at-a-time loops that finish the
 * remainders are the plain form of the same computation.
 * Depthwise convolutions (one input channel per group) take a single loop over the whole
 * output-channel row instead. The loops are plain `for` loops over local variables, not callbacks:
 * on Node 20 the callback version of the same loops measured about half as fast.
 * The arithmetic is unchanged: every product is still added in float64.
 */
import type { Conv2DParams, Handle, NumArray } from '../../core/backend.js';
import { asArray, check, checkNonNegativeInts, checkPositiveInts, checkWindowOutput, fromAccumulator } from './arrays.js';

function checkConvParams(p: Conv2DParams, kernel: string): void {
  checkPositiveInts(
    p,
    [
      'batch',
      'inHeight',
      'inWidth',
      'inChannels',
      'outHeight',
      'outWidth',
      'outChannels',
      'kernelHeight',
      'kernelWidth',
      'strideHeight',
      'strideWidth',
      'dilationHeight',
      'dilationWidth',
      'groups',
    ],
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

/** The channel counts every loop indexes with: Cg input and OCg output channels per group. */
interface Channels {
  C: number;
  OC: number;
  G: number;
  Cg: number;
  OCg: number;
}

function channelsOf(p: Conv2DParams): Channels {
  const C = p.inChannels,
    OC = p.outChannels,
    G = p.groups;
  return { C, OC, G, Cg: C / G, OCg: OC / G };
}

/** y = conv(x, w): [N, OH, OW, OC]. */
export function conv2d(xh: Handle, wh: Handle, p: Conv2DParams): NumArray {
  checkConvParams(p, 'conv2d');
  const x = asArray(xh, inputSize(p), 'conv2d input');
  const w = asArray(wh, filterSize(p), 'conv2d filter');
  const ch = channelsOf(p);
  const { C, OC } = ch;
  const acc = new Float64Array(outputSize(p)); // y rounds once, at the end
  const taps = tapConnections(p);
  for (let tap = 0; tap < taps.length; tap++) {
    const pairs = taps[tap];
    const wTap = tap * ch.Cg * OC; // w[kh, kw, 0, 0]
    if (ch.Cg === 1) {
      forwardDepthwiseTap(x, w, acc, pairs, wTap, ch);
      continue;
    }
    let k = 0;
    for (; k + 4 <= pairs.length; k += 4)
      forwardTwoPairs(x, w, acc, pairs[k] * C, pairs[k + 1] * OC, pairs[k + 2] * C, pairs[k + 3] * OC, wTap, ch);
    for (; k < pairs.length; k += 2) forwardOnePair(x, w, acc, pairs[k] * C, pairs[k + 1] * OC, wTap, ch);
  }
  return fromAccumulator(x, acc);
}

/** Depthwise: the filter row of a tap covers every output channel o, which reads input channel floor(o / multiplier). */
function forwardDepthwiseTap(x: NumArray, w: NumArray, acc: Float64Array, pairs: Int32Array, wTap: number, ch: Channels): void {
  const { C, OC, OCg } = ch;
  for (let k = 0; k < pairs.length; k += 2) {
    const xPixel = pairs[k] * C,
      yPixel = pairs[k + 1] * OC;
    for (let o = 0; o < OC; o++) acc[yPixel + o] += x[xPixel + ((o / OCg) | 0)] * w[wTap + o];
  }
}

/** Two pairs (pixels a and b) at once: every filter row loaded serves both. */
function forwardTwoPairs(
  x: NumArray,
  w: NumArray,
  acc: Float64Array,
  xa: number,
  ya: number,
  xb: number,
  yb: number,
  wTap: number,
  ch: Channels,
): void {
  const { OC, G, Cg, OCg } = ch;
  for (let g = 0; g < G; g++) {
    const xaG = xa + g * Cg,
      xbG = xb + g * Cg,
      yaG = ya + g * OCg,
      ybG = yb + g * OCg,
      wGroup = wTap + g * OCg;
    let ci = 0;
    for (; ci + 4 <= Cg; ci += 4) {
      const a0 = x[xaG + ci],
        a1 = x[xaG + ci + 1],
        a2 = x[xaG + ci + 2],
        a3 = x[xaG + ci + 3];
      const b0 = x[xbG + ci],
        b1 = x[xbG + ci + 1],
        b2 = x[xbG + ci + 2],
        b3 = x[xbG + ci + 3];
      const r0 = wGroup + ci * OC,
        r1 = r0 + OC,
        r2 = r1 + OC,
        r3 = r2 + OC;
      for (let o = 0; o < OCg; o++) {
        const w0 = w[r0 + o],
          w1 = w[r1 + o],
          w2 = w[r2 + o],
          w3 = w[r3 + o];
        acc[yaG + o] += a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3;
        acc[ybG + o] += b0 * w0 + b1 * w1 + b2 * w2 + b3 * w3;
      }
    }
    for (; ci < Cg; ci++) {
      const av = x[xaG + ci],
        bv = x[xbG + ci],
        r = wGroup + ci * OC;
      for (let o = 0; o < OCg; o++) {
        acc[yaG + o] += av * w[r + o];
        acc[ybG + o] += bv * w[r + o];
      }
    }
  }
}

/** The plain form: y[pixel, g·OCg + o] += x[pixel', g·Cg + ci] · w[kh, kw, ci, g·OCg + o]. */
function forwardOnePair(x: NumArray, w: NumArray, acc: Float64Array, xPixel: number, yPixel: number, wTap: number, ch: Channels): void {
  const { OC, G, Cg, OCg } = ch;
  for (let g = 0; g < G; g++) {
    for (let ci = 0; ci < Cg; ci++) {
      const xv = x[xPixel + g * Cg + ci],
        r = wTap + ci * OC + g * OCg,
        yGroup = yPixel + g * OCg;
      for (let o = 0; o < OCg; o++) acc[yGroup + o] += xv * w[r + o];
    }
  }
}

/** dx = ∂(Σ y·dy)/∂x: x[ci] collects the dot product of dy[o] and w[kh, kw, ci, o] over every pair. */
export function conv2dBackwardInput(dyh: Handle, wh: Handle, p: Conv2DParams): NumArray {
  checkConvParams(p, 'conv2dBackwardInput');
  const dy = asArray(dyh, outputSize(p), 'conv2dBackwardInput output gradient');
  const w = asArray(wh, filterSize(p), 'conv2dBackwardInput filter');
  const ch = channelsOf(p);
  const { C, OC } = ch;
  const acc = new Float64Array(inputSize(p));
  const taps = tapConnections(p);
  for (let tap = 0; tap < taps.length; tap++) {
    const pairs = taps[tap];
    const wTap = tap * ch.Cg * OC;
    if (ch.Cg === 1) {
      inputGradDepthwiseTap(dy, w, acc, pairs, wTap, ch);
      continue;
    }
    let k = 0;
    for (; k + 4 <= pairs.length; k += 4)
      inputGradTwoPairs(dy, w, acc, pairs[k] * C, pairs[k + 1] * OC, pairs[k + 2] * C, pairs[k + 3] * OC, wTap, ch);
    for (; k < pairs.length; k += 2) inputGradOnePair(dy, w, acc, pairs[k] * C, pairs[k + 1] * OC, wTap, ch);
  }
  return fromAccumulator(dy, acc);
}

/** Depthwise: output channel o sends its gradient back to input channel floor(o / multiplier). */
function inputGradDepthwiseTap(dy: NumArray, w: NumArray, acc: Float64Array, pairs: Int32Array, wTap: number, ch: Channels): void {
  const { C, OC, OCg } = ch;
  for (let k = 0; k < pairs.length; k += 2) {
    const xPixel = pairs[k] * C,
      yPixel = pairs[k + 1] * OC;
    for (let o = 0; o < OC; o++) acc[xPixel + ((o / OCg) | 0)] += dy[yPixel + o] * w[wTap + o];
  }
}

/** Two pairs × four filter rows: eight dot products share each load of dy and w. */
function inputGradTwoPairs(
  dy: NumArray,
  w: NumArray,
  acc: Float64Array,
  xa: number,
  ya: number,
  xb: number,
  yb: number,
  wTap: number,
  ch: Channels,
): void {
  const { OC, G, Cg, OCg } = ch;
  for (let g = 0; g < G; g++) {
    const xaG = xa + g * Cg,
      xbG = xb + g * Cg,
      yaG = ya + g * OCg,
      ybG = yb + g * OCg,
      wGroup = wTap + g * OCg;
    let ci = 0;
    for (; ci + 4 <= Cg; ci += 4) {
      const r0 = wGroup + ci * OC,
        r1 = r0 + OC,
        r2 = r1 + OC,
        r3 = r2 + OC;
      let a0 = 0,
        a1 = 0,
        a2 = 0,
        a3 = 0,
        b0 = 0,
        b1 = 0,
        b2 = 0,
        b3 = 0;
      for (let o = 0; o < OCg; o++) {
        const da = dy[yaG + o],
          db = dy[ybG + o];
        const w0 = w[r0 + o],
          w1 = w[r1 + o],
          w2 = w[r2 + o],
          w3 = w[r3 + o];
        a0 += da * w0;
        a1 += da * w1;
        a2 += da * w2;
        a3 += da * w3;
        b0 += db * w0;
        b1 += db * w1;
        b2 += db * w2;
        b3 += db * w3;
      }
      acc[xaG + ci] += a0;
      acc[xaG + ci + 1] += a1;
      acc[xaG + ci + 2] += a2;
      acc[xaG + ci + 3] += a3;
      acc[xbG + ci] += b0;
      acc[xbG + ci + 1] += b1;
      acc[xbG + ci + 2] += b2;
      acc[xbG + ci + 3] += b3;
    }
    for (; ci < Cg; ci++) {
      const r = wGroup + ci * OC;
      let sa = 0,
        sb = 0;
      for (let o = 0; o < OCg; o++) {
        sa += dy[yaG + o] * w[r + o];
        sb += dy[ybG + o] * w[r + o];
      }
      acc[xaG + ci] += sa;
      acc[xbG + ci] += sb;
    }
  }
}

/** The plain form: dx[pixel', g·Cg + ci] += Σ_o dy[pixel, g·OCg + o] · w[kh, kw, ci, g·OCg + o]. */
function inputGradOnePair(dy: NumArray, w: NumArray, acc: Float64Array, xPixel: number, yPixel: number, wTap: number, ch: Channels): void {
  const { OC, G, Cg, OCg } = ch;
  for (let g = 0; g < G; g++) {
    for (let ci = 0; ci < Cg; ci++) {
      const r = wTap + ci * OC + g * OCg,
        yGroup = yPixel + g * OCg;
      let s = 0;
      for (let o = 0; o < OCg; o++) s += dy[yGroup + o] * w[r + o];
      acc[xPixel + g * Cg + ci] += s;
    }
  }
}

/**
 * dw = ∂(Σ y·dy)/∂w: w[kh, kw, ci, o] collects x[ci]·dy[o] over every pair of its tap. The pair
 * loop runs inside the filter-row loop so that the accumulator rows stay in cache while they fill.
 */
export function conv2dBackwardFilter(xh: Handle, dyh: Handle, p: Conv2DParams): NumArray {
  checkConvParams(p, 'conv2dBackwardFilter');
  const x = asArray(xh, inputSize(p), 'conv2dBackwardFilter input');
  const dy = asArray(dyh, outputSize(p), 'conv2dBackwardFilter output gradient');
  const ch = channelsOf(p);
  const { OC, G, Cg, OCg } = ch;
  const acc = new Float64Array(filterSize(p));
  const taps = tapConnections(p);
  for (let tap = 0; tap < taps.length; tap++) {
    const pairs = taps[tap];
    const wTap = tap * Cg * OC;
    if (Cg === 1) {
      filterGradDepthwiseTap(x, dy, acc, pairs, wTap, ch);
      continue;
    }
    for (let g = 0; g < G; g++) {
      const yg = g * OCg;
      let ci = 0;
      for (; ci + 2 <= Cg; ci += 2) filterGradTwoRows(x, dy, acc, pairs, wTap + ci * OC + yg, g * Cg + ci, yg, ch);
      for (; ci < Cg; ci++) filterGradOneRow(x, dy, acc, pairs, wTap + ci * OC + yg, g * Cg + ci, yg, ch);
    }
  }
  return fromAccumulator(x, acc);
}

/** Depthwise: a single filter row per tap; output channel o reads input floor(o / multiplier). */
function filterGradDepthwiseTap(x: NumArray, dy: NumArray, acc: Float64Array, pairs: Int32Array, wTap: number, ch: Channels): void {
  const { C, OC, OCg } = ch;
  for (let k = 0; k < pairs.length; k += 2) {
    const xPixel = pairs[k] * C,
      yPixel = pairs[k + 1] * OC;
    for (let o = 0; o < OC; o++) acc[wTap + o] += x[xPixel + ((o / OCg) | 0)] * dy[yPixel + o];
  }
}

/**
 * Two filter rows (input channels c and c + 1, rows r0 and r0 + OC) × four pairs: each dy load
 * feeds two rows. yg is the group's first output channel.
 */
function filterGradTwoRows(
  x: NumArray,
  dy: NumArray,
  acc: Float64Array,
  pairs: Int32Array,
  r0: number,
  c: number,
  yg: number,
  ch: Channels,
): void {
  const { C, OC, OCg } = ch;
  const r1 = r0 + OC;
  let k = 0;
  for (; k + 8 <= pairs.length; k += 8) {
    const xa = pairs[k] * C + c,
      xb = pairs[k + 2] * C + c,
      xc = pairs[k + 4] * C + c,
      xd = pairs[k + 6] * C + c;
    const a0 = x[xa],
      a1 = x[xa + 1],
      b0 = x[xb],
      b1 = x[xb + 1],
      c0 = x[xc],
      c1 = x[xc + 1],
      d0 = x[xd],
      d1 = x[xd + 1];
    const ya = pairs[k + 1] * OC + yg,
      yb = pairs[k + 3] * OC + yg,
      yc = pairs[k + 5] * OC + yg,
      yd = pairs[k + 7] * OC + yg;
    for (let o = 0; o < OCg; o++) {
      const da = dy[ya + o],
        db = dy[yb + o],
        dc = dy[yc + o],
        dd = dy[yd + o];
      acc[r0 + o] += a0 * da + b0 * db + c0 * dc + d0 * dd;
      acc[r1 + o] += a1 * da + b1 * db + c1 * dc + d1 * dd;
    }
  }
  for (; k < pairs.length; k += 2) {
    const xa = pairs[k] * C + c,
      ya = pairs[k + 1] * OC + yg;
    const a0 = x[xa],
      a1 = x[xa + 1];
    for (let o = 0; o < OCg; o++) {
      acc[r0 + o] += a0 * dy[ya + o];
      acc[r1 + o] += a1 * dy[ya + o];
    }
  }
}

/** The plain form: dw[kh, kw, ci, g·OCg + o] += x[pixel', g·Cg + ci] · dy[pixel, g·OCg + o], for row r and channel c. */
function filterGradOneRow(
  x: NumArray,
  dy: NumArray,
  acc: Float64Array,
  pairs: Int32Array,
  r: number,
  c: number,
  yg: number,
  ch: Channels,
): void {
  const { C, OC, OCg } = ch;
  for (let k = 0; k < pairs.length; k += 2) {
    const xv = x[pairs[k] * C + c],
      yr = pairs[k + 1] * OC + yg;
    for (let o = 0; o < OCg; o++) acc[r + o] += xv * dy[yr + o];
  }
}
