/** Builders of resolved kernel parameters for tests, from Keras-style descriptions. */
import type { Conv2DParams, Pool2DParams } from '../../src/core/backend.js';
import { type AxisWindow, sameWindow, validWindow } from './windows.js';

/** 'same', 'valid', or explicit [before, after] padding per axis. */
export type Padding = 'same' | 'valid' | { height: [number, number]; width: [number, number] };

function axis(padding: Padding, which: 'height' | 'width', inSize: number, k: number, s: number, d: number): AxisWindow {
  if (padding === 'same') return sameWindow(inSize, k, s, d);
  if (padding === 'valid') return validWindow(inSize, k, s, d);
  const [padBefore, padAfter] = padding[which];
  const span = d * (k - 1) + 1;
  return { out: Math.floor((inSize + padBefore + padAfter - span) / s) + 1, padBefore, padAfter };
}

export interface ConvSpec {
  batch?: number;
  height: number;
  width: number;
  inChannels: number;
  outChannels: number;
  kernel: [number, number];
  stride?: [number, number];
  dilation?: [number, number];
  padding: Padding;
  groups?: number;
}

export function convParams(s: ConvSpec): Conv2DParams {
  const [kh, kw] = s.kernel;
  const [sh, sw] = s.stride ?? [1, 1];
  const [dh, dw] = s.dilation ?? [1, 1];
  const h = axis(s.padding, 'height', s.height, kh, sh, dh);
  const w = axis(s.padding, 'width', s.width, kw, sw, dw);
  return {
    batch: s.batch ?? 1,
    inHeight: s.height,
    inWidth: s.width,
    inChannels: s.inChannels,
    outHeight: h.out,
    outWidth: w.out,
    outChannels: s.outChannels,
    kernelHeight: kh,
    kernelWidth: kw,
    strideHeight: sh,
    strideWidth: sw,
    dilationHeight: dh,
    dilationWidth: dw,
    padTop: h.padBefore,
    padLeft: w.padBefore,
    padBottom: h.padAfter,
    padRight: w.padAfter,
    groups: s.groups ?? 1,
  };
}

export interface PoolSpec {
  batch?: number;
  height: number;
  width: number;
  channels: number;
  window: [number, number];
  stride: [number, number];
  padding: Padding;
}

export function poolParams(s: PoolSpec): Pool2DParams {
  const h = axis(s.padding, 'height', s.height, s.window[0], s.stride[0], 1);
  const w = axis(s.padding, 'width', s.width, s.window[1], s.stride[1], 1);
  return {
    batch: s.batch ?? 1,
    inHeight: s.height,
    inWidth: s.width,
    channels: s.channels,
    outHeight: h.out,
    outWidth: w.out,
    windowHeight: s.window[0],
    windowWidth: s.window[1],
    strideHeight: s.stride[0],
    strideWidth: s.stride[1],
    padTop: h.padBefore,
    padLeft: w.padBefore,
    padBottom: h.padAfter,
    padRight: w.padAfter,
  };
}

export const convInputSize = (p: Conv2DParams) => p.batch * p.inHeight * p.inWidth * p.inChannels;
export const convOutputSize = (p: Conv2DParams) => p.batch * p.outHeight * p.outWidth * p.outChannels;
export const convFilterSize = (p: Conv2DParams) => p.kernelHeight * p.kernelWidth * (p.inChannels / p.groups) * p.outChannels;
export const poolInputSize = (p: Pool2DParams) => p.batch * p.inHeight * p.inWidth * p.channels;
export const poolOutputSize = (p: Pool2DParams) => p.batch * p.outHeight * p.outWidth * p.channels;
