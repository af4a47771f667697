import type { GlobalPoolParams, Pool2DParams } from '../backend.js';
import { makeResult } from '../autograd.js';
import { ShapeError, shapeToString } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { pair, resolveAxis, splitPadding, type Padding } from './padding.js';
import { checkRank, checkSameBackend, makeGrad } from './util.js';

export interface Pool2DOptions {
  poolSize?: number | [number, number];
  /** Defaults to poolSize, as in Keras. */
  strides?: number | [number, number];
  padding?: Padding;
}

export function resolvePool2D(xShape: readonly number[], opts: Pool2DOptions = {}): Pool2DParams {
  if (xShape.length !== 4) throw new ShapeError(`pool2d: input must be [batch, height, width, channels], got ${shapeToString(xShape)}`);
  const [batch, inHeight, inWidth, channels] = xShape as [number, number, number, number];
  const [windowHeight, windowWidth] = pair('pool size', opts.poolSize, 2);
  const [strideHeight, strideWidth] = pair('pool strides', opts.strides ?? opts.poolSize, 2);
  const [padH, padW] = splitPadding(opts.padding ?? 'valid');
  const h = resolveAxis('height', inHeight, windowHeight, strideHeight, 1, padH);
  const w = resolveAxis('width', inWidth, windowWidth, strideWidth, 1, padW);
  if (h.padBefore >= windowHeight || h.padAfter >= windowHeight || w.padBefore >= windowWidth || w.padAfter >= windowWidth) {
    throw new ShapeError('pool2d: padding must be smaller than the window, or some windows would hold only padding');
  }
  return {
    batch,
    inHeight,
    inWidth,
    channels,
    outHeight: h.out,
    outWidth: w.out,
    windowHeight,
    windowWidth,
    strideHeight,
    strideWidth,
    padTop: h.padBefore,
    padBottom: h.padAfter,
    padLeft: w.padBefore,
    padRight: w.padAfter,
  };
}

export function maxPool2d(x: Tensor, opts: Pool2DOptions = {}): Tensor {
  checkSameBackend('maxPool2d', x);
  const p = resolvePool2D(x.shape, opts);
  const b = x.backend;
  return makeResult(x, b.maxPool2d(x.handle, p), [p.batch, p.outHeight, p.outWidth, p.channels], 'maxPool2d', [x], (dy) => [
    makeGrad(x, b.maxPool2dBackward(dy.handle, x.handle, p), x.shape),
  ]);
}

/** Average pooling; padded cells do not count in the average (TensorFlow's rule). */
export function avgPool2d(x: Tensor, opts: Pool2DOptions = {}): Tensor {
  checkSameBackend('avgPool2d', x);
  const p = resolvePool2D(x.shape, opts);
  const b = x.backend;
  return makeResult(x, b.avgPool2d(x.handle, p), [p.batch, p.outHeight, p.outWidth, p.channels], 'avgPool2d', [x], (dy) => [
    makeGrad(x, b.avgPool2dBackward(dy.handle, p), x.shape),
  ]);
}

function globalParams(op: string, x: Tensor): GlobalPoolParams {
  checkSameBackend(op, x);
  checkRank(op, 'input', x, 4);
  const [batch, h, w, channels] = x.shape as [number, number, number, number];
  return { batch, spatial: h * w, channels };
}

/** [N, H, W, C] → [N, C] */
export function globalAvgPool(x: Tensor): Tensor {
  const p = globalParams('globalAvgPool', x);
  const b = x.backend;
  return makeResult(x, b.globalAvgPool(x.handle, p), [p.batch, p.channels], 'globalAvgPool', [x], (dy) => [
    makeGrad(x, b.globalAvgPoolBackward(dy.handle, p), x.shape),
  ]);
}

/** [N, H, W, C] → [N, C] */
export function globalMaxPool(x: Tensor): Tensor {
  const p = globalParams('globalMaxPool', x);
  const b = x.backend;
  return makeResult(x, b.globalMaxPool(x.handle, p), [p.batch, p.channels], 'globalMaxPool', [x], (dy) => [
    makeGrad(x, b.globalMaxPoolBackward(dy.handle, x.handle, p), x.shape),
  ]);
}
