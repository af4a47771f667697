import { makeResult } from '../autograd.js';
import { ShapeError, shapeToString } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { checkSameBackend, checkSameShape, makeGrad, rowsOf, wants } from './util.js';

/** a + b, same shapes (residual connections). */
export function add(a: Tensor, b: Tensor): Tensor {
  checkSameBackend('add', a, b);
  checkSameShape('add', a, b);
  const be = a.backend;
  // The gradient passes through unchanged: both inputs get views of dy (no copies; gradients
  // are never written in place).
  return makeResult(a, be.axpby(a.handle, b.handle, 1, 1, a.size), a.shape, 'add', [a, b], (dy) => [
    wants(a) ? dy.reshape(a.shape) : null,
    wants(b) ? dy.reshape(b.shape) : null,
  ]);
}

/** Sum of any number of same-shaped tensors. */
export function addN(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new ShapeError('addN: needs at least one tensor');
  let acc = xs[0]!;
  for (let i = 1; i < xs.length; i++) acc = add(acc, xs[i]!);
  return acc;
}

/** a · b elementwise, same shapes. */
export function mul(a: Tensor, b: Tensor): Tensor {
  checkSameBackend('mul', a, b);
  checkSameShape('mul', a, b);
  const be = a.backend;
  return makeResult(a, be.mul(a.handle, b.handle, a.size), a.shape, 'mul', [a, b], (dy) => [
    wants(a) ? makeGrad(a, be.mul(dy.handle, b.handle, a.size), a.shape) : null,
    wants(b) ? makeGrad(b, be.mul(dy.handle, a.handle, b.size), b.shape) : null,
  ]);
}

export function scale(a: Tensor, s: number): Tensor {
  checkSameBackend('scale', a);
  const be = a.backend;
  return makeResult(a, be.scale(a.handle, s, a.size), a.shape, 'scale', [a], (dy) => [
    makeGrad(a, be.scale(dy.handle, s, a.size), a.shape),
  ]);
}

/** Concatenation along the last (channel) axis; all other dimensions must agree. */
export function concat(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new ShapeError('concat: needs at least one tensor');
  checkSameBackend('concat', ...xs);
  const first = xs[0]!;
  const lead = first.shape.slice(0, -1);
  for (const x of xs) {
    if (x.rank !== first.rank || x.shape.slice(0, -1).some((d, i) => d !== lead[i])) {
      throw new ShapeError(`concat: ${shapeToString(x.shape)} does not match ${shapeToString(first.shape)} outside the last axis`);
    }
  }
  const channels = xs.map((x) => x.shape[x.rank - 1]!);
  const rows = rowsOf(first).rows;
  const total = channels.reduce((a, c) => a + c, 0);
  const be = first.backend;
  const h = be.concatChannels(
    xs.map((x) => x.handle),
    rows,
    channels,
  );
  return makeResult(first, h, [...lead, total], 'concat', xs, (dy) => {
    let start = 0;
    return xs.map((x, i) => {
      const c = channels[i]!;
      const g = wants(x) ? makeGrad(x, be.sliceChannels(dy.handle, { rows, channels: total }, start, c), x.shape) : null;
      start += c;
      return g;
    });
  });
}

/** A reshape that autograd sees through (gradients take the input's shape back). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const out = x.reshape(shape);
  if (x.requiresGrad || x.node) {
    out.node = { op: 'reshape', inputs: [x], backward: (dy) => [dy.reshape(x.shape)] };
  }
  return out;
}

export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.shape[0]!, -1]);
}
