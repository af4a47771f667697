/**
 * Reverse-mode automatic differentiation over the graph that recorded ops leave behind
 * (each output tensor points at the op that made it: its inputs and its backward rule).
 */
import type { Handle } from './backend.js';
import { isGradEnabled, isKept, keep } from './engine.js';
import { ShapeError, XceptionError, shapeToString } from './errors.js';
import { Tensor, type GradNode } from './tensor.js';

/** True if any input needs a gradient and recording is on. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!isGradEnabled()) return false;
  return inputs.some((t) => t != null && (t.requiresGrad || t.node !== null));
}

/** Wraps a kernel result in a tensor and records the op when a gradient will be needed. */
export function makeResult(
  like: Tensor,
  handle: Handle,
  shape: readonly number[],
  op: string,
  inputs: readonly Tensor[],
  backward: GradNode['backward'],
): Tensor {
  const out = new Tensor(like.backend, handle, shape, like.dtype);
  if (needsGrad(inputs)) out.node = { op, inputs, backward };
  return out;
}

export interface BackwardOptions {
  /** d(loss)/d(root); defaults to ones (the root must then have one element). */
  grad?: Tensor;
  /** Keep the recorded graph so backward can run again over it. */
  retainGraph?: boolean;
  /**
   * Dispose each intermediate tensor of the graph (an op's output, not the root, not a leaf, not
   * kept) as soon as backward no longer needs it, as PyTorch frees saved activations: the
   * network's activations go while the gradients come, instead of both being held until the end.
   * Read anything you need from those tensors before calling backward.
   */
  release?: boolean;
}

/**
 * Accumulates d(root)/d(leaf) into `.grad` of every leaf with requiresGrad that root depends on.
 * Intermediate gradients are disposed as soon as they have been passed on.
 */
export function backward(root: Tensor, options: BackwardOptions = {}): void {
  let seed = options.grad;
  if (!seed) {
    if (root.size !== 1) throw new ShapeError(`backward() without a gradient needs a one-element root, got ${shapeToString(root.shape)}`);
    const ones = root.dtype === 'float64' ? new Float64Array(1).fill(1) : new Float32Array(1).fill(1);
    seed = new Tensor(root.backend, root.backend.upload(ones), root.shape, root.dtype);
  } else if (seed.size !== root.size) {
    throw new ShapeError(`gradient ${shapeToString(seed.shape)} does not match root ${shapeToString(root.shape)}`);
  }

  if (options.release && options.retainGraph) throw new XceptionError('backward: release and retainGraph exclude each other');
  const order = topologicalOrder(root);
  const grads = new Map<Tensor, Tensor>();
  grads.set(root, seed);
  const ownsSeed = !options.grad;

  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i]!;
    const dy = grads.get(t);
    if (!dy) continue;
    grads.delete(t);
    const node = t.node;
    if (!node) {
      // A leaf: keep its gradient.
      if (t.requiresGrad) accumulateLeaf(t, dy);
      else if (dy !== seed || ownsSeed) dy.dispose();
      continue;
    }
    const inputGrads = node.backward(dy);
    if (inputGrads.length !== node.inputs.length) {
      throw new XceptionError(
        `internal: backward of '${node.op}' returned ${inputGrads.length} gradients for ${node.inputs.length} inputs`,
      );
    }
    if (dy !== seed || ownsSeed) dy.dispose();
    for (let k = 0; k < node.inputs.length; k++) {
      const x = node.inputs[k]!;
      const g = inputGrads[k];
      if (!g) continue;
      if (!(x.requiresGrad || x.node)) {
        g.dispose();
        continue;
      }
      if (g.size !== x.size) {
        throw new XceptionError(`internal: '${node.op}' gave a gradient of ${shapeToString(g.shape)} for input ${shapeToString(x.shape)}`);
      }
      const prev = grads.get(x);
      if (prev) {
        grads.set(x, addSame(prev, g));
        prev.dispose();
        g.dispose();
      } else if (sameShape(g.shape, x.shape)) {
        grads.set(x, g);
      } else {
        grads.set(x, g.reshape(x.shape));
        g.dispose();
      }
    }
    if (!options.retainGraph) t.node = null;
    // In reverse topological order every consumer of t has run its backward already, and so has
    // t's own: nothing recorded needs t any more.
    if (options.release && t !== root && !isKept(t)) t.dispose();
  }
}

function accumulateLeaf(t: Tensor, g: Tensor): void {
  const shaped = sameShape(g.shape, t.shape) ? g : g.reshape(t.shape);
  if (t.grad && !t.grad.isDisposed) {
    const sum = addSame(t.grad, shaped);
    t.grad.dispose();
    shaped.dispose();
    t.grad = keep(sum);
  } else {
    t.grad = keep(shaped);
  }
  if (shaped !== g) g.dispose();
}

function addSame(a: Tensor, b: Tensor): Tensor {
  return new Tensor(a.backend, a.backend.axpby(a.handle, b.handle, 1, 1, a.size), a.shape, a.dtype);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Tensors reachable from root through recorded ops, every input before its consumers. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: a deep network would overflow the call stack with recursion.
  const stack: { t: Tensor; expanded: boolean }[] = [{ t: root, expanded: false }];
  while (stack.length) {
    const top = stack.pop()!;
    if (top.expanded) {
      order.push(top.t);
      continue;
    }
    if (visited.has(top.t)) continue;
    visited.add(top.t);
    stack.push({ t: top.t, expanded: true });
    const inputs = top.t.node?.inputs ?? [];
    for (let i = inputs.length - 1; i >= 0; i--) {
      if (!visited.has(inputs[i]!)) stack.push({ t: inputs[i]!, expanded: false });
    }
  }
  return order;
}
