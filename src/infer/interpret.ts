/**
 * A plain interpreter of the lowered and fused inference graph (graph.ts, fuse.ts): one Backend
 * kernel (or a few) per node, in fp32, values kept as NHWC Float32Arrays between nodes so a hook
 * can read (calibration) or replace (simulated int8) each one. It is the readable executor of the
 * same graph the compiled plans and the ONNX export read; it is not fast.
 */
import type { Backend, Handle } from '../core/backend.js';
import { ShapeError } from '../core/errors.js';
import type { Model } from '../nn/model.js';
import { fuseGraph } from './fuse.js';
import { convWeightRecipes, lowerModel, type ConvNode, type DenseNode, type GraphNode, type InferenceGraph, type Post } from './graph.js';

/** The graph every int8 consumer names values in: lowered at the model's input size, all fusions made. */
export function int8Graph(model: Model, logits = false): InferenceGraph {
  const g = lowerModel(model, { inputShape: model.inputShape, logits });
  fuseGraph(g);
  return g;
}

/** Elements of one example of a node's value. */
export function valueSize(n: GraphNode): number {
  return n.shape.reduce((a, b) => a * b, 1);
}

export interface InterpretHooks {
  /** Sees each node's value (the whole batch) once produced; a returned array replaces it. */
  onValue?: (node: GraphNode, value: Float32Array) => Float32Array | undefined;
  /**
   * Computes a convolution or dense node's linear result (bias added, before its post-ops)
   * instead of the fp32 kernel; null keeps the fp32 kernel.
   */
  linear?: (node: ConvNode | DenseNode, input: Float32Array, batch: number) => Float32Array | null;
}

/** Runs graphs on one backend; folded weights are made and uploaded once per node. */
export class GraphInterpreter {
  private readonly weights = new Map<GraphNode, { kernel: Handle; bias: Handle | null }>();

  constructor(
    readonly graph: InferenceGraph,
    readonly backend: Backend,
  ) {}

  /** The graph's output for `input` [batch, ...input shape] (NHWC, flat). */
  run(input: Float32Array, batch: number, hooks: InterpretHooks = {}): Float32Array {
    const want = batch * valueSize(this.graph.input);
    if (!Number.isInteger(batch) || batch < 1 || input.length !== want) {
      throw new ShapeError(`interpret: input of ${input.length} values for batch ${batch} of [${this.graph.input.shape.join(', ')}]`);
    }
    const values = new Map<GraphNode, Float32Array>();
    const readersLeft = this.readerCounts();
    for (const n of this.graph.nodes) {
      let v = n.op === 'input' ? input : this.compute(n, values, batch, hooks);
      v = hooks.onValue?.(n, v) ?? v;
      values.set(n, v);
      for (const i of readsOf(n)) {
        const left = readersLeft.get(i)! - 1;
        readersLeft.set(i, left);
        if (left === 0 && i !== this.graph.output) values.delete(i);
      }
    }
    return values.get(this.graph.output)!;
  }

  dispose(): void {
    for (const w of this.weights.values()) {
      this.backend.dispose(w.kernel);
      if (w.bias) this.backend.dispose(w.bias);
    }
    this.weights.clear();
  }

  private readerCounts(): Map<GraphNode, number> {
    const r = new Map<GraphNode, number>();
    for (const n of this.graph.nodes) for (const i of readsOf(n)) r.set(i, (r.get(i) ?? 0) + 1);
    return r;
  }

  private weightsOf(n: ConvNode | DenseNode): { kernel: Handle; bias: Handle | null } {
    let w = this.weights.get(n);
    if (!w) {
      const r = n.op === 'conv' ? convWeightRecipes(n) : { kernel: n.kernel, bias: n.bias };
      w = { kernel: this.backend.upload(r.kernel()), bias: r.bias ? this.backend.upload(r.bias()) : null };
      this.weights.set(n, w);
    }
    return w;
  }

  /** Runs `fn` on uploaded inputs and downloads its result; every handle is freed. */
  private kernel(inputs: Float32Array[], size: number, fn: (h: Handle[]) => Handle): Float32Array {
    const b = this.backend;
    const hs = inputs.map((x) => b.upload(x));
    try {
      const out = fn(hs);
      const data = b.download(out, size, 'float32') as Float32Array;
      b.dispose(out);
      return data;
    } finally {
      for (const h of hs) b.dispose(h);
    }
  }

  private compute(n: GraphNode, values: Map<GraphNode, Float32Array>, batch: number, hooks: InterpretHooks): Float32Array {
    const b = this.backend;
    const x = n.inputs.length > 0 ? values.get(n.inputs[0]!)! : new Float32Array(0);
    const size = batch * valueSize(n);
    const inC = n.inputs[0]?.shape[n.inputs[0].shape.length - 1] ?? 0;
    switch (n.op) {
      case 'conv':
      case 'dense': {
        const y = hooks.linear?.(n, x, batch) ?? this.linear(n, x, batch);
        return this.posts(n, y, values, size);
      }
      case 'eltwise':
        return this.kernel([x], size, ([h]) => (n.alg === 'relu' ? b.relu(h!, size) : b.elu(h!, n.alpha, size)));
      case 'softmax':
        return this.kernel([x], size, ([h]) => b.softmax(h!, { rows: size / inC, channels: inC }));
      case 'bn': {
        const p = { rows: size / inC, channels: inC, epsilon: n.epsilon };
        const ws = [n.gamma(), n.beta(), n.mean(), n.variance()];
        return this.kernel([x, ...ws], size, ([h, g, be, m, v]) => b.batchNormInference(h!, g!, be!, m!, v!, p));
      }
      case 'pool': {
        const [inH, inW] = n.inputs[0]!.shape as [number, number];
        const w = n.window;
        const p = {
          batch,
          inHeight: inH,
          inWidth: inW,
          channels: inC,
          outHeight: n.shape[0]!,
          outWidth: n.shape[1]!,
          windowHeight: w.winH,
          windowWidth: w.winW,
          strideHeight: w.sH,
          strideWidth: w.sW,
          padTop: w.padT,
          padLeft: w.padL,
          padBottom: w.padB,
          padRight: w.padR,
        };
        return this.kernel([x], size, ([h]) => (n.alg === 'max' ? b.maxPool2d(h!, p) : b.avgPool2d(h!, p)));
      }
      case 'gpool': {
        const p = { batch, spatial: valueSize(n.inputs[0]!) / inC, channels: inC };
        return this.kernel([x], size, ([h]) => (n.alg === 'max' ? b.globalMaxPool(h!, p) : b.globalAvgPool(h!, p)));
      }
      case 'add': {
        const xs = n.inputs.map((i) => values.get(i)!);
        const out = Float32Array.from(xs[0]!);
        for (const o of xs.slice(1)) for (let i = 0; i < out.length; i++) out[i]! += o[i]!;
        return out;
      }
      case 'concat': {
        const xs = n.inputs.map((i) => values.get(i)!);
        const channels = n.inputs.map((i) => i.shape[i.shape.length - 1]!);
        return this.kernel(xs, size, (hs) => b.concatChannels(hs, size / channels.reduce((a, c) => a + c, 0), channels));
      }
      case 'flatten':
        return x; // NHWC data read in (h, w, c) order is already the flat vector
      default:
        throw new ShapeError(`interpret: no rule for a '${n.op}' node`);
    }
  }

  /** The fp32 linear result of a convolution or dense node, bias added. */
  private linear(n: ConvNode | DenseNode, x: Float32Array, batch: number): Float32Array {
    return this.linearWith(n, x, batch, this.weightsOf(n));
  }

  /** A convolution or dense node's kernel run on `x` with the given weights (bias added when given). */
  linearWith(n: ConvNode | DenseNode, x: Float32Array, batch: number, w: { kernel: Handle; bias: Handle | null }): Float32Array {
    const b = this.backend;
    const outC = n.op === 'conv' ? n.geometry.outC : n.units;
    const size = batch * valueSize(n);
    return this.kernel([x], size, ([h]) => {
      let y: Handle;
      if (n.op === 'conv') {
        const g = n.geometry;
        y = b.conv2d(h!, w.kernel, {
          batch,
          inHeight: g.inH,
          inWidth: g.inW,
          inChannels: g.inC,
          outHeight: g.outH,
          outWidth: g.outW,
          outChannels: g.outC,
          kernelHeight: g.kH,
          kernelWidth: g.kW,
          strideHeight: g.sH,
          strideWidth: g.sW,
          dilationHeight: g.dH,
          dilationWidth: g.dW,
          padTop: g.padT,
          padLeft: g.padL,
          padBottom: g.padB,
          padRight: g.padR,
          groups: g.groups,
        });
      } else {
        y = b.matmul(h!, w.kernel, { m: batch, k: n.kernelShape[0]!, n: n.units, transA: false, transB: false });
      }
      if (!w.bias) return y;
      const withBias = b.biasAdd(y, w.bias, { rows: size / outC, channels: outC });
      b.dispose(y);
      return withBias;
    });
  }

  /** A node's post-ops in order: the residual sum, ReLU/ELU. */
  private posts(n: ConvNode | DenseNode, y: Float32Array, values: Map<GraphNode, Float32Array>, size: number): Float32Array {
    return applyPosts(n.posts, y, n.op === 'conv' && n.sumInto ? values.get(n.sumInto)! : null, size);
  }
}

/** Post-ops applied in place on `y` (which the caller owns). */
export function applyPosts(posts: readonly Post[], y: Float32Array, sum: Float32Array | null, size: number): Float32Array {
  for (const p of posts) {
    if (p.kind === 'sum') for (let i = 0; i < size; i++) y[i]! += sum![i]!;
    else if (p.alg === 'relu') for (let i = 0; i < size; i++) y[i] = y[i]! > 0 ? y[i]! : y[i]! < 0 ? 0 : y[i]!;
    else for (let i = 0; i < size; i++) y[i] = y[i]! > 0 ? y[i]! : p.alpha * Math.expm1(y[i]!);
  }
  return y;
}

/** The values a node reads: its inputs, and the value a sum post-op adds. */
export function readsOf(n: GraphNode): GraphNode[] {
  return n.op === 'conv' && n.sumInto ? [...n.inputs, n.sumInto] : n.inputs;
}
