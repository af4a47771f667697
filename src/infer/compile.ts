/**
 * From a model's functional graph to a compiled inference plan's spec (format: native/plan.h).
 *
 * 1. Every layer becomes a node in inference mode (dropout, linear activations and flatten are
 *    aliases; a separable convolution is two convolution nodes).
 * 2. Fusions, each only where it cannot change the result:
 *    - a BatchNormalization whose input is a convolution used by nothing else, without an
 *      activation of its own, is folded into that convolution's weights and bias;
 *    - an Add of two inputs, one of them such a convolution, becomes the convolution's sum post-op
 *      when the Add is the other input's last reader (the convolution then writes into it);
 *    - a ReLU/ELU whose input is a convolution or dense layer used by nothing else becomes its
 *      eltwise post-op.
 *    Anything else runs as its own primitive.
 * 3. Nodes are emitted in the model's execution order; a convolution that absorbed an Add runs
 *    where the Add was. Weights are produced by recipes (closures over the model's Variables), so
 *    that the plan can re-read them when the weights change.
 */
import { OptionError, ShapeError, shapeToString } from '../core/errors.js';
import { resolveConv2D } from '../core/ops/conv.js';
import { resolvePool2D } from '../core/ops/pooling.js';
import type { Layer, Shape, Variable } from '../nn/layer.js';
import { Conv2D, DepthwiseConv2D, SeparableConv2D } from '../nn/layers/convolutional.js';
import { Activation, Dense, Dropout, Flatten, InputLayer } from '../nn/layers/core.js';
import { Add, Concatenate } from '../nn/layers/merge.js';
import { BatchNormalization } from '../nn/layers/normalization.js';
import { AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D } from '../nn/layers/pooling.js';
import type { Model } from '../nn/model.js';

/** A layer or pattern the compiled plan does not support (the op-by-op path still runs it). */
export class CompileError extends OptionError {}

export type Precision = 'fp32' | 'bf16';
/**
 * Activation layout inside an fp32 plan: 'channels-last' lets oneDNN choose (channels-last
 * brgconv kernels here); 'blocked' runs pointwise and depthwise convolutions with jit kernels
 * over channel blocks of 16, faster for separable networks; 'auto' is 'blocked' for a network with
 * depthwise convolutions, else 'channels-last'.
 */
export type PlanLayout = 'auto' | 'channels-last' | 'blocked';

type Post = { kind: 'eltwise'; alg: 'relu' | 'elu'; alpha: number } | { kind: 'sum' };

/** Produces one weight array of the plan from the model's current weights. */
export type WeightRecipe = () => Float32Array;

interface NodeBase {
  id: number;
  inputs: Node[];
  /** Without the batch dimension, NHWC (or [features]). */
  shape: number[];
  /** Layers this node computes (for descriptions). */
  layers: string[];
}

interface ConvNode extends NodeBase {
  op: 'conv';
  kernel: () => Float32Array; // Keras HWIO (grouped: [kh, kw, in/groups, out])
  bias: (() => Float32Array) | null;
  /** Per output channel y·scale + shift folded in from batch norms (applied in order). */
  affine: Array<() => { scale: Float64Array; shift: Float64Array }>;
  outChannels: number;
  geometry: number[]; // inH … groups, 17 numbers (native/plan.h)
  posts: Post[];
  /** The Add whose other input this convolution adds into. */
  sumInto: Node | null;
}
interface EltwiseNode extends NodeBase {
  op: 'eltwise';
  alg: 'relu' | 'elu';
  alpha: number;
  /** Became a post-op of its input. */
  fused: boolean;
}
interface PoolNode extends NodeBase {
  op: 'pool';
  alg: 'max' | 'avg';
  numbers: number[]; // winH, winW, sH, sW, padT, padL, padB, padR
}
interface GlobalPoolNode extends NodeBase {
  op: 'gpool';
  alg: 'max' | 'avg';
}
interface AddNode extends NodeBase {
  op: 'add';
  /** Set when a convolution absorbed this Add: the node that now produces its value. */
  absorbedBy: ConvNode | null;
}
interface ConcatNode extends NodeBase {
  op: 'concat';
}
interface DenseNode extends NodeBase {
  op: 'dense';
  kernel: () => Float32Array;
  bias: (() => Float32Array) | null;
  units: number;
  posts: Post[];
}
interface SoftmaxNode extends NodeBase {
  op: 'softmax';
}
interface BatchNormNode extends NodeBase {
  op: 'bn';
  layer: BatchNormalization;
  /** Folded into a convolution: its value is that convolution's. */
  foldedInto: ConvNode | null;
}
interface InputNode extends NodeBase {
  op: 'input';
}
type Node = ConvNode | EltwiseNode | PoolNode | GlobalPoolNode | AddNode | ConcatNode | DenseNode | SoftmaxNode | BatchNormNode | InputNode;

export interface CompiledSpec {
  spec: Float64Array;
  recipes: WeightRecipe[];
  /** Every Variable the recipes read (to notice when the weights change). */
  variables: Variable[];
  /** Output shape without the batch dimension, as the model gives it. */
  outputShape: number[];
  /** The layout the plan uses ('auto' resolved). */
  layout: Exclude<PlanLayout, 'auto'>;
  /** Counts of what was fused, for reports and tests. */
  fusions: { foldedBatchNorms: number; sumPostOps: number; eltwisePostOps: number; standaloneBatchNorms: number };
}

export interface CompileSpecOptions {
  batch: number;
  inputShape: readonly number[];
  logits: boolean;
  precision: Precision;
  /** Default 'auto'. */
  layout?: PlanLayout;
  /** Which fusions to make (default all); off runs those layers as their own primitives. */
  fuse?: { batchNorm?: boolean; sum?: boolean; eltwise?: boolean };
}

const data = (v: Variable) => () => v.value.data();

/** y = x·scale + shift of an inference-mode batch norm, in float64. */
function bnAffine(bn: BatchNormalization): { scale: Float64Array; shift: Float64Array } {
  const mean = bn.movingMean.value.data();
  const variance = bn.movingVariance.value.data();
  const gamma = bn.gamma ? bn.gamma.value.data() : null;
  const beta = bn.beta ? bn.beta.value.data() : null;
  const c = mean.length;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    const s = (gamma ? gamma[i]! : 1) / Math.sqrt(variance[i]! + bn.epsilon);
    scale[i] = s;
    shift[i] = (beta ? beta[i]! : 0) - mean[i]! * s;
  }
  return { scale, shift };
}

export function compileSpec(model: Model, o: CompileSpecOptions): CompiledSpec {
  const nodes: Node[] = [];
  const byLayer = new Map<Layer, Node>();
  // What each layer outputs, as Keras sees it (a Flatten's node is its input's, its shape is flat).
  const layerShape = new Map<Layer, number[]>();
  const variables = new Set<Variable>();
  let nextId = 0;
  const add = <T extends Node>(n: Omit<T, 'id'>): T => {
    const node = { ...n, id: nextId++ } as T;
    nodes.push(node);
    return node;
  };
  const fail = (layer: Layer, why: string): never => {
    throw new CompileError(`compileInference: layer '${layer.name}' (${layer.className}) ${why}`);
  };
  const watch = (...vs: (Variable | null | undefined)[]) => {
    for (const v of vs) if (v) variables.add(v);
  };

  // ---- 1. nodes ----
  const outputLayer = model.output.layer;
  for (const layer of model.executionOrder) {
    if (layer === model.input.layer) {
      const shape = [...o.inputShape];
      byLayer.set(layer, add<InputNode>({ op: 'input', inputs: [], shape, layers: [layer.name] }));
      layerShape.set(layer, shape);
      continue;
    }
    const ins = layer.inbound!.map((s) => byLayer.get(s.layer)!);
    const x = ins[0]!;
    const isOutput = layer === outputLayer;
    let shape: number[];
    try {
      shape = [...layer.computeOutputShape(layer.inbound!.map((s) => layerShape.get(s.layer)! as Shape))];
    } catch (e) {
      if (e instanceof ShapeError) throw new ShapeError(`compileInference at input ${shapeToString(o.inputShape)}: ${e.message}`);
      throw e;
    }
    const conv = (name: string, kernel: Variable, kshape: readonly number[], groups: number, strides: [number, number],
      dilations: [number, number], padding: 'same' | 'valid', input: Node, outShape: number[]): ConvNode => {
      const p = resolveConv2D([o.batch, ...input.shape], kshape, { strides, dilations, padding, groups });
      watch(kernel);
      return add<ConvNode>({
        op: 'conv', inputs: [input], shape: outShape, layers: [name], kernel: data(kernel), bias: null, affine: [],
        outChannels: p.outChannels, posts: [], sumInto: null,
        geometry: [p.inHeight, p.inWidth, p.inChannels, p.outHeight, p.outWidth, p.outChannels, p.kernelHeight, p.kernelWidth,
          p.strideHeight, p.strideWidth, p.dilationHeight, p.dilationWidth, p.padTop, p.padLeft, p.padBottom, p.padRight, p.groups],
      });
    };
    const activationPost = (act: string, what: Layer): Post | null => {
      if (act === 'linear') return null;
      if (act === 'relu') return { kind: 'eltwise', alg: 'relu', alpha: 0 };
      if (act === 'elu') return { kind: 'eltwise', alg: 'elu', alpha: 1 };
      return fail(what, `has activation '${act}', which compiled convolutions do not support`);
    };
    let node: Node;
    if (layer instanceof Conv2D || layer instanceof DepthwiseConv2D) {
      const dw = layer instanceof DepthwiseConv2D;
      const kernel = dw ? layer.depthwiseKernel : layer.kernel;
      const c = x.shape[2]!;
      const groups = dw ? c : layer.groups;
      // A depthwise kernel [kh, kw, C, m] is the grouped HWIO kernel with groups = C (core/backend.ts).
      const kshape = dw ? [layer.kernelSize[0], layer.kernelSize[1], 1, c * layer.depthMultiplier] : kernel.shape;
      const n = conv(layer.name, kernel, kshape, groups, layer.strides, layer.dilationRate, layer.padding, x, shape);
      if (layer.bias) {
        n.bias = data(layer.bias);
        watch(layer.bias);
      }
      if (layer.activation === 'softmax' && isOutput && o.logits) {
        // logits: the output's softmax is left out
      } else {
        const post = activationPost(layer.activation, layer);
        if (post) n.posts.push(post);
      }
      node = n;
    } else if (layer instanceof SeparableConv2D) {
      const c = x.shape[2]!;
      const [h, w] = x.shape as [number, number];
      const spatialChannels = layer.order === 'depthwise-first' ? c : layer.filters;
      const groups = layer.groupsFor(spatialChannels);
      const ks = layer.spatialKernel.shape;
      const spatialShape = groups === spatialChannels
        ? [ks[0]!, ks[1]!, 1, spatialChannels * layer.depthMultiplier] // depthwise [kh, kw, C, m] read as grouped
        : [...ks];
      const between = layer.intermediateActivation === 'none' ? null : activationPost(layer.intermediateActivation, layer);
      const pwShape = layer.pointwiseKernel.shape;
      let first: ConvNode, last: ConvNode;
      if (layer.order === 'depthwise-first') {
        const mid = [shape[0]!, shape[1]!, spatialChannels * layer.depthMultiplier];
        first = conv(`${layer.name}/spatial`, layer.spatialKernel, spatialShape, groups, layer.strides, layer.dilationRate, layer.padding, x, mid);
        last = conv(layer.name, layer.pointwiseKernel, pwShape, 1, [1, 1], [1, 1], 'valid', first, shape);
      } else {
        first = conv(`${layer.name}/pointwise`, layer.pointwiseKernel, pwShape, 1, [1, 1], [1, 1], 'valid', x, [h, w, layer.filters]);
        last = conv(layer.name, layer.spatialKernel, spatialShape, groups, layer.strides, layer.dilationRate, layer.padding, first, shape);
      }
      if (between) first.posts.push(between);
      if (layer.bias) {
        last.bias = data(layer.bias);
        watch(layer.bias);
      }
      if (!(layer.activation === 'softmax' && isOutput && o.logits)) {
        const post = activationPost(layer.activation, layer);
        if (post) last.posts.push(post);
      }
      node = last;
    } else if (layer instanceof BatchNormalization) {
      // After a Flatten the channels are the flattened features, not the image's channels.
      if (shape.length === 1 && x.shape.length === 3 && x.shape[0]! * x.shape[1]! !== 1) fail(layer, 'after a Flatten of an image is not compiled');
      watch(layer.gamma, layer.beta, layer.movingMean, layer.movingVariance);
      node = add<BatchNormNode>({ op: 'bn', inputs: [x], shape, layers: [layer.name], layer, foldedInto: null });
    } else if (layer instanceof Activation) {
      if (layer.activation === 'linear' || (layer.activation === 'softmax' && isOutput && o.logits)) {
        node = x;
      } else if (layer.activation === 'softmax') {
        if (x.op !== 'dense') fail(layer, 'softmax is compiled only right after a Dense layer');
        node = add<SoftmaxNode>({ op: 'softmax', inputs: [x], shape, layers: [layer.name] });
      } else {
        node = add<EltwiseNode>({ op: 'eltwise', inputs: [x], shape: x.shape, layers: [layer.name], alg: layer.activation, alpha: layer.activation === 'elu' ? 1 : 0, fused: false });
      }
    } else if (layer instanceof Dense) {
      const features = x.shape.reduce((a, b) => a * b, 1);
      if (layer.kernel.shape[0] !== features) {
        fail(layer, `has a kernel for ${layer.kernel.shape[0]} features, but gets ${features} at input ${shapeToString(o.inputShape)}`);
      }
      watch(layer.kernel, layer.bias);
      const n = add<DenseNode>({
        op: 'dense', inputs: [x], shape, layers: [layer.name], kernel: data(layer.kernel),
        bias: layer.bias ? data(layer.bias) : null, units: layer.units, posts: [],
      });
      node = n;
      if (layer.activation === 'softmax') {
        if (!(isOutput && o.logits)) node = add<SoftmaxNode>({ op: 'softmax', inputs: [n], shape, layers: [layer.name] });
      } else {
        const post = activationPost(layer.activation, layer);
        if (post) n.posts.push(post);
      }
    } else if (layer instanceof MaxPooling2D || layer instanceof AveragePooling2D) {
      const p = resolvePool2D([o.batch, ...x.shape], { poolSize: layer.poolSize, strides: layer.strides, padding: layer.padding });
      node = add<PoolNode>({
        op: 'pool', inputs: [x], shape, layers: [layer.name], alg: layer instanceof MaxPooling2D ? 'max' : 'avg',
        numbers: [p.windowHeight, p.windowWidth, p.strideHeight, p.strideWidth, p.padTop, p.padLeft, p.padBottom, p.padRight],
      });
    } else if (layer instanceof GlobalAveragePooling2D || layer instanceof GlobalMaxPooling2D) {
      node = add<GlobalPoolNode>({ op: 'gpool', inputs: [x], shape, layers: [layer.name], alg: layer instanceof GlobalMaxPooling2D ? 'max' : 'avg' });
    } else if (layer instanceof Add) {
      node = add<AddNode>({ op: 'add', inputs: ins, shape, layers: [layer.name], absorbedBy: null });
    } else if (layer instanceof Concatenate) {
      if (shape.length !== 3) fail(layer, `is compiled on images only, got ${shapeToString(shape)}`);
      node = add<ConcatNode>({ op: 'concat', inputs: ins, shape, layers: [layer.name] });
    } else if (layer instanceof Dropout || layer instanceof InputLayer) {
      node = x; // inference: the identity
    } else if (layer instanceof Flatten) {
      // The plan keeps the image and reads it in (h, w, c) order where it matters (dense, output).
      node = x;
    } else {
      return fail(layer, 'cannot be compiled (no compiled equivalent); use model.forward');
    }
    byLayer.set(layer, node);
    layerShape.set(layer, shape);
  }
  const output = byLayer.get(outputLayer)!;
  const outputShape = layerShape.get(outputLayer)!;

  // Readers of each node (a node listed once per input edge), and the output as one more.
  const readers = () => {
    const r = new Map<Node, Node[]>();
    for (const n of live()) {
      // A convolution with a sum post-op also reads (and overwrites) the value it adds into.
      const read = n.op === 'conv' && n.sumInto ? [...n.inputs, n.sumInto] : n.inputs;
      for (const i of read) r.set(i, [...(r.get(i) ?? []), n]);
    }
    return r;
  };
  const live = () => nodes.filter((n) => !(n.op === 'bn' && n.foldedInto) && !(n.op === 'add' && n.absorbedBy) && !(n.op === 'eltwise' && n.fused));
  const fusions = { foldedBatchNorms: 0, sumPostOps: 0, eltwisePostOps: 0, standaloneBatchNorms: 0 };
  const replace = (from: Node, to: Node) => {
    for (const n of nodes) n.inputs = n.inputs.map((i) => (i === from ? to : i));
  };
  let out: Node = output;

  // ---- 2a. batch norms into the convolutions before them ----
  if (o.fuse?.batchNorm ?? true) {
    for (const n of nodes) {
      if (n.op !== 'bn') continue;
      const r = readers();
      const c = n.inputs[0]!;
      if (c.op !== 'conv' || c.posts.length > 0 || c === out || (r.get(c)?.length ?? 0) !== 1) continue;
      const bn = n.layer;
      c.affine.push(() => bnAffine(bn));
      c.layers.push(...n.layers);
      n.foldedInto = c;
      replace(n, c);
      if (out === n) out = c;
      fusions.foldedBatchNorms++;
    }
  }

  // ---- 2b. residual adds into a convolution's sum post-op ----
  if (o.fuse?.sum ?? true) {
    const order = new Map(nodes.map((n, i) => [n, i]));
    for (const n of nodes) {
      if (n.op !== 'add' || n.inputs.length !== 2) continue;
      const r = readers();
      for (const k of [0, 1]) {
        const a = n.inputs[k]!;
        const b = n.inputs[1 - k]!;
        if (a.op !== 'conv' || a.posts.length > 0 || a === out || a === b || (r.get(a)?.length ?? 0) !== 1) continue;
        // b is overwritten: it must be an intermediate whose every other reader runs before the add,
        // and not the convolution's own input.
        if (b.op === 'input' || b === out || a.inputs[0] === b) continue;
        const bReaders = r.get(b) ?? [];
        if (bReaders.filter((x) => x === n).length !== 1) continue;
        if (bReaders.some((x) => x !== n && order.get(x)! > order.get(n)!)) continue;
        a.posts.push({ kind: 'sum' });
        a.sumInto = b;
        a.layers.push(...n.layers);
        n.absorbedBy = a;
        replace(n, a);
        if (out === n) out = a;
        // The convolution now runs where the add was.
        nodes.splice(nodes.indexOf(a), 1);
        nodes.splice(nodes.indexOf(n), 0, a);
        nodes.forEach((x, i) => order.set(x, i));
        fusions.sumPostOps++;
        break;
      }
    }
  }

  // ---- 2c. ReLU / ELU into the convolution or dense layer before them ----
  if (o.fuse?.eltwise ?? true) {
    for (const n of nodes) {
      if (n.op !== 'eltwise') continue;
      const r = readers();
      const c = n.inputs[0]!;
      if ((c.op !== 'conv' && c.op !== 'dense') || c === out || (r.get(c)?.length ?? 0) !== 1) continue;
      if (c.posts.some((p) => p.kind === 'eltwise')) continue;
      c.posts.push({ kind: 'eltwise', alg: n.alg, alpha: n.alpha });
      c.layers.push(...n.layers);
      n.fused = true;
      replace(n, c);
      if (out === n) out = c;
      fusions.eltwisePostOps++;
    }
  }

  // ---- 3. emit ----
  const spec: number[] = [];
  const recipes: WeightRecipe[] = [];
  const valueOf = new Map<Node, number>();
  const weight = (r: WeightRecipe) => (recipes.push(r), recipes.length - 1);
  const postNumbers = (posts: Post[]) => [
    posts.length,
    ...posts.flatMap((p) => (p.kind === 'sum' ? [2, 0, 0] : [1, p.alg === 'relu' ? 1 : 2, p.alpha])),
  ];
  let steps = 0;
  for (const n of live()) {
    if (n.op === 'input') {
      valueOf.set(n, 0);
      continue;
    }
    const v = (x: Node) => {
      const id = valueOf.get(x);
      if (id === undefined) throw new CompileError(`compileInference: internal order error at ${n.layers.join('+')}`);
      return id;
    };
    switch (n.op) {
      case 'conv': {
        const { kernel, bias, affine, outChannels } = n;
        const wi = weight(affine.length === 0 ? kernel : () => foldKernel(kernel(), outChannels, affine.map((f) => f())));
        const bi = bias || affine.length > 0 ? weight(() => foldBias(bias ? bias() : null, outChannels, affine.map((f) => f()))) : -1;
        spec.push(1, v(n.inputs[0]!), ...n.geometry, wi, bi, n.sumInto ? v(n.sumInto) : -1, ...postNumbers(n.posts));
        break;
      }
      case 'eltwise':
        spec.push(2, v(n.inputs[0]!), n.alg === 'relu' ? 1 : 2, n.alpha);
        break;
      case 'pool':
        spec.push(3, v(n.inputs[0]!), n.alg === 'max' ? 1 : 2, ...n.numbers);
        break;
      case 'gpool':
        spec.push(4, v(n.inputs[0]!), n.alg === 'max' ? 1 : 2);
        break;
      case 'add':
        spec.push(5, n.inputs.length, ...n.inputs.map(v));
        break;
      case 'concat':
        spec.push(6, n.inputs.length, ...n.inputs.map(v));
        break;
      case 'dense': {
        const wi = weight(n.kernel);
        const bi = n.bias ? weight(n.bias) : -1;
        spec.push(7, v(n.inputs[0]!), n.units, wi, bi, ...postNumbers(n.posts));
        break;
      }
      case 'softmax':
        spec.push(8, v(n.inputs[0]!));
        break;
      case 'bn': {
        const bn = n.layer;
        const c = bn.movingMean.shape[0]!;
        const gamma = bn.gamma ? data(bn.gamma) : () => new Float32Array(c).fill(1);
        const beta = bn.beta ? data(bn.beta) : () => new Float32Array(c);
        spec.push(9, v(n.inputs[0]!), bn.epsilon, weight(gamma), weight(beta), weight(data(bn.movingMean)), weight(data(bn.movingVariance)));
        fusions.standaloneBatchNorms++;
        break;
      }
    }
    valueOf.set(n, ++steps);
  }
  if (out.op === 'input') throw new CompileError('compileInference: the model computes nothing (its output is its input)');
  // Blocked pays off where depthwise convolutions are (Xception's family); regular 3×3s are
  // slower blocked (Inception V3's plan: batch 1 0.73×, batch 8 0.90× of channels-last).
  const depthwise = nodes.some((n) => {
    if (n.op !== 'conv') return false;
    const inChannels = n.geometry[2]!, groups = n.geometry[16]!;
    return groups > 1 && groups === inChannels && groups === n.outChannels;
  });
  const layout = (o.layout ?? 'auto') === 'auto' ? (depthwise ? 'blocked' : 'channels-last') : (o.layout as Exclude<PlanLayout, 'auto'>);
  const header = [2, o.batch, o.inputShape[0]!, o.inputShape[1]!, o.inputShape[2]!, o.precision === 'bf16' ? 1 : 0, layout === 'blocked' ? 1 : 0, steps, valueOf.get(out)!];
  return { spec: Float64Array.from([...header, ...spec]), recipes, variables: [...variables], outputShape, layout, fusions };
}

/** HWIO kernel with every output channel o scaled by the folded batch norms: w·s₁·s₂… */
export function foldKernel(kernel: Float32Array, outChannels: number, affines: { scale: Float64Array }[]): Float32Array {
  const out = new Float32Array(kernel.length);
  const scale = new Float64Array(outChannels).fill(1);
  for (const a of affines) for (let o = 0; o < outChannels; o++) scale[o]! *= a.scale[o]!;
  for (let i = 0; i < kernel.length; i++) out[i] = kernel[i]! * scale[i % outChannels]!;
  return out;
}

/** Bias after the folded batch norms: ((b·s₁ + t₁)·s₂ + t₂)… */
export function foldBias(bias: Float32Array | null, outChannels: number, affines: { scale: Float64Array; shift: Float64Array }[]): Float32Array {
  const out = new Float32Array(outChannels);
  for (let o = 0; o < outChannels; o++) {
    let b = bias ? bias[o]! : 0;
    for (const a of affines) b = b * a.scale[o]! + a.shift[o]!;
    out[o] = b;
  }
  return out;
}
