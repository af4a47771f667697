import { OptionError, ShapeError } from '../errors.js';

/** 'same' and 'valid' follow TensorFlow; explicit pads are [[top, bottom], [left, right]]. */
export type Padding = 'same' | 'valid' | [[number, number], [number, number]];

export interface ResolvedWindow {
  out: number;
  padBefore: number;
  padAfter: number;
}

/**
 * Output size and padding along one axis.
 * 'same': out = ceil(in / stride); the total padding is split with the odd pixel at the end
 * (TensorFlow's rule, which PyTorch's symmetric padding does not reproduce).
 * 'valid': out = floor((in − effectiveKernel) / stride) + 1, no padding.
 */
export function resolveAxis(
  axis: string,
  size: number,
  kernel: number,
  stride: number,
  dilation: number,
  padding: 'same' | 'valid' | [number, number],
): ResolvedWindow {
  const effective = (kernel - 1) * dilation + 1;
  if (padding === 'same') {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + effective - size, 0);
    const padBefore = Math.floor(total / 2);
    return { out, padBefore, padAfter: total - padBefore };
  }
  const [before, after] = padding === 'valid' ? [0, 0] : padding;
  if (!Number.isInteger(before) || !Number.isInteger(after) || before < 0 || after < 0) {
    throw new OptionError(`padding for ${axis} must be non-negative integers, got [${before}, ${after}]`);
  }
  const span = size + before + after - effective;
  if (span < 0) {
    throw new ShapeError(
      `${axis} ${size}${before || after ? ` (padded by ${before}+${after})` : ''} is smaller than the ${effective}-wide window`,
    );
  }
  return { out: Math.floor(span / stride) + 1, padBefore: before, padAfter: after };
}

export function splitPadding(padding: Padding): ['same' | 'valid' | [number, number], 'same' | 'valid' | [number, number]] {
  if (padding === 'same' || padding === 'valid') return [padding, padding];
  if (!Array.isArray(padding) || padding.length !== 2 || !Array.isArray(padding[0]) || !Array.isArray(padding[1])) {
    throw new OptionError(`padding must be 'same', 'valid' or [[top, bottom], [left, right]], got ${JSON.stringify(padding)}`);
  }
  return [padding[0], padding[1]];
}

export function pair(name: string, v: number | readonly [number, number] | undefined, dflt: number): [number, number] {
  const p: [number, number] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((x) => Number.isInteger(x) && x > 0)) {
    throw new OptionError(`${name} must be positive integers, got ${JSON.stringify(v)}`);
  }
  return p;
}
