import type { Conv2DParams } from '../backend.js';
import { makeResult } from '../autograd.js';
import { OptionError, ShapeError, shapeToString } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { pair, resolveAxis, splitPadding, type Padding } from './padding.js';
import { checkRank, checkSameBackend, makeGrad, wants } from './util.js';

export interface Conv2DOptions {
  strides?: number | [number, number];
  padding?: Padding;
  dilations?: number | [number, number];
  /** Channel segments: 1 = a regular convolution, inChannels = depthwise. */
  groups?: number;
}

/**
 * Validates shapes and resolves every number a backend needs, once.
 * x: [N, H, W, Cin]; w: [KH, KW, Cin / groups, Cout].
 */
export function resolveConv2D(xShape: readonly number[], wShape: readonly number[], opts: Conv2DOptions = {}): Conv2DParams {
  if (xShape.length !== 4) throw new ShapeError(`conv2d: input must be [batch, height, width, channels], got ${shapeToString(xShape)}`);
  if (wShape.length !== 4) throw new ShapeError(`conv2d: filter must be [kh, kw, in/groups, out], got ${shapeToString(wShape)}`);
  const [batch, inHeight, inWidth, inChannels] = xShape as [number, number, number, number];
  const [kernelHeight, kernelWidth, inPerGroup, outChannels] = wShape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new OptionError(`conv2d: groups must be a positive integer, got ${groups}`);
  if (inChannels % groups !== 0) {
    throw new ShapeError(`conv2d: groups ${groups} does not divide the ${inChannels} input channels`);
  }
  if (outChannels % groups !== 0) {
    throw new ShapeError(`conv2d: groups ${groups} does not divide the ${outChannels} output channels`);
  }
  if (inPerGroup * groups !== inChannels) {
    throw new ShapeError(
      `conv2d: filter ${shapeToString(wShape)} expects ${inPerGroup * groups} input channels with ${groups} group(s), input has ${inChannels}`,
    );
  }
  if ([kernelHeight, kernelWidth, outChannels].some((d) => d < 1)) throw new ShapeError(`conv2d: empty filter ${shapeToString(wShape)}`);
  const [strideHeight, strideWidth] = pair('conv2d strides', opts.strides, 1);
  const [dilationHeight, dilationWidth] = pair('conv2d dilations', opts.dilations, 1);
  const [padH, padW] = splitPadding(opts.padding ?? 'valid');
  const h = resolveAxis('height', inHeight, kernelHeight, strideHeight, dilationHeight, padH);
  const w = resolveAxis('width', inWidth, kernelWidth, strideWidth, dilationWidth, padW);
  return {
    batch,
    inHeight,
    inWidth,
    inChannels,
    outHeight: h.out,
    outWidth: w.out,
    outChannels,
    kernelHeight,
    kernelWidth,
    strideHeight,
    strideWidth,
    dilationHeight,
    dilationWidth,
    padTop: h.padBefore,
    padBottom: h.padAfter,
    padLeft: w.padBefore,
    padRight: w.padAfter,
    groups,
  };
}

/** 2-D convolution (cross-correlation, as in every framework), with groups. */
export function conv2d(x: Tensor, w: Tensor, opts: Conv2DOptions = {}): Tensor {
  checkSameBackend('conv2d', x, w);
  const p = resolveConv2D(x.shape, w.shape, opts);
  return convWithParams(x, w, p);
}

/**
 * Depthwise convolution with a Keras depthwise kernel [KH, KW, C, multiplier]: one call with
 * groups = C (that kernel's memory order is already the grouped layout).
 */
export function depthwiseConv2d(x: Tensor, w: Tensor, opts: Omit<Conv2DOptions, 'groups'> = {}): Tensor {
  checkSameBackend('depthwiseConv2d', x, w);
  checkRank('depthwiseConv2d', 'filter', w, 4);
  checkRank('depthwiseConv2d', 'input', x, 4);
  const [kh, kw, c, m] = w.shape as [number, number, number, number];
  if (c !== x.shape[3]) {
    throw new ShapeError(`depthwiseConv2d: filter ${shapeToString(w.shape)} is for ${c} channels, input has ${x.shape[3]}`);
  }
  const p = resolveConv2D(x.shape, [kh, kw, 1, c * m], { ...opts, groups: c });
  return convWithParams(x, w, p);
}

function convWithParams(x: Tensor, w: Tensor, p: Conv2DParams): Tensor {
  const b = x.backend;
  const y = b.conv2d(x.handle, w.handle, p);
  return makeResult(x, y, [p.batch, p.outHeight, p.outWidth, p.outChannels], 'conv2d', [x, w], (dy) => [
    wants(x) ? makeGrad(x, b.conv2dBackwardInput(dy.handle, w.handle, p), x.shape) : null,
    wants(w) ? makeGrad(w, b.conv2dBackwardFilter(x.handle, dy.handle, p), w.shape) : null,
  ]);
}
