/**
 * Checks of resolved kernel parameters for backends that hand them to unchecked compiled code
 * (the wasm backend): integers in range, output sizes that follow from input, window, stride and
 * padding. Core already resolved these numbers; this is the backend's own guard, so bad numbers
 * become ShapeError/OptionError before any memory is touched.
 */
import type { BatchNormParams, Conv2DParams, CrossEntropyParams, GlobalPoolParams, Pool2DParams, RowsParams } from '../core/backend.js';
import { OptionError, ShapeError } from '../core/errors.js';

export const CONV_FIELDS = [
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
  'padTop',
  'padLeft',
  'padBottom',
  'padRight',
  'groups',
] as const satisfies readonly (keyof Conv2DParams)[];

export const POOL_FIELDS = [
  'batch',
  'inHeight',
  'inWidth',
  'channels',
  'outHeight',
  'outWidth',
  'windowHeight',
  'windowWidth',
  'strideHeight',
  'strideWidth',
  'padTop',
  'padLeft',
  'padBottom',
  'padRight',
] as const satisfies readonly (keyof Pool2DParams)[];

/** An integer in [min, 2³¹ − 1]. */
export function checkInt(op: string, name: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > 0x7fffffff) {
    throw new ShapeError(`${op}: ${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

export function checkReal(op: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new OptionError(`${op}: ${name} must be a finite number, got ${String(v)}`);
  return v;
}

/** A product of dimensions that must stay a valid 32-bit element count. */
export function checkCount(op: string, what: string, ...dims: number[]): number {
  const n = dims.reduce((a, b) => a * b, 1);
  if (n > 0x7fffffff) throw new ShapeError(`${op}: ${what} has ${n} elements, more than 2^31 - 1`);
  return n;
}

function checkAxis(
  op: string,
  axis: string,
  input: number,
  window: number,
  dilation: number,
  stride: number,
  pads: [number, number],
  output: number,
) {
  const span = input + pads[0] + pads[1] - ((window - 1) * dilation + 1);
  if (span < 0) throw new ShapeError(`${op}: the dilated window is larger than the padded input along ${axis}`);
  const expected = Math.floor(span / stride) + 1;
  if (expected !== output) {
    throw new ShapeError(
      `${op}: output ${axis} ${output} does not follow from input ${input}, window ${window}, dilation ${dilation}, ` +
        `stride ${stride}, padding ${pads[0]}+${pads[1]} (expected ${expected})`,
    );
  }
}

export function checkConv(op: string, p: Conv2DParams): number[] {
  const nums = CONV_FIELDS.map((f) => checkInt(op, f, p[f], f.startsWith('pad') ? 0 : 1));
  if (p.inChannels % p.groups !== 0 || p.outChannels % p.groups !== 0) {
    throw new ShapeError(`${op}: groups ${p.groups} must divide inChannels ${p.inChannels} and outChannels ${p.outChannels}`);
  }
  checkAxis(op, 'height', p.inHeight, p.kernelHeight, p.dilationHeight, p.strideHeight, [p.padTop, p.padBottom], p.outHeight);
  checkAxis(op, 'width', p.inWidth, p.kernelWidth, p.dilationWidth, p.strideWidth, [p.padLeft, p.padRight], p.outWidth);
  checkCount(op, 'the input', p.batch, p.inHeight, p.inWidth, p.inChannels);
  checkCount(op, 'the output', p.batch, p.outHeight, p.outWidth, p.outChannels);
  checkCount(op, 'the filter', p.kernelHeight, p.kernelWidth, p.inChannels / p.groups, p.outChannels);
  return nums;
}

export function checkPool(op: string, p: Pool2DParams): number[] {
  const nums = POOL_FIELDS.map((f) => checkInt(op, f, p[f], f.startsWith('pad') ? 0 : 1));
  checkAxis(op, 'height', p.inHeight, p.windowHeight, 1, p.strideHeight, [p.padTop, p.padBottom], p.outHeight);
  checkAxis(op, 'width', p.inWidth, p.windowWidth, 1, p.strideWidth, [p.padLeft, p.padRight], p.outWidth);
  if (Math.max(p.padTop, p.padBottom) >= p.windowHeight || Math.max(p.padLeft, p.padRight) >= p.windowWidth) {
    throw new ShapeError(`${op}: padding must be smaller than the window`);
  }
  checkCount(op, 'the input', p.batch, p.inHeight, p.inWidth, p.channels);
  return nums;
}

export function checkRows(op: string, p: RowsParams): [number, number] {
  const rows = checkInt(op, 'rows', p.rows);
  const channels = checkInt(op, 'channels', p.channels);
  checkCount(op, 'the tensor', rows, channels);
  return [rows, channels];
}

export function checkBatchNorm(op: string, p: BatchNormParams): number {
  checkRows(op, p);
  const eps = checkReal(op, 'epsilon', p.epsilon);
  if (eps <= 0) throw new OptionError(`${op}: epsilon must be positive, got ${eps}`);
  return eps;
}

export function checkGlobal(op: string, p: GlobalPoolParams): void {
  checkInt(op, 'batch', p.batch);
  checkInt(op, 'spatial', p.spatial);
  checkInt(op, 'channels', p.channels);
  checkCount(op, 'the input', p.batch, p.spatial, p.channels);
}

export function checkCrossEntropy(op: string, p: CrossEntropyParams, labels: Int32Array): void {
  const [rows, channels] = checkRows(op, p);
  const s = checkReal(op, 'labelSmoothing', p.labelSmoothing);
  if (s < 0 || s > 1) throw new OptionError(`${op}: labelSmoothing must be in [0, 1], got ${s}`);
  if (!(labels instanceof Int32Array)) throw new ShapeError(`${op}: labels must be an Int32Array`);
  if (labels.length !== rows) throw new ShapeError(`${op}: ${labels.length} labels for ${rows} rows`);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l < 0 || l >= channels) throw new ShapeError(`${op}: label ${l} at row ${i} is outside [0, ${channels})`);
  }
}
