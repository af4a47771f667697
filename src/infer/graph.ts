/**
 * The inference graph: a model's layers lowered once, for every consumer that runs or describes
 * the network in inference mode (compiled plans in compile.ts, ONNX export in io/onnx-model.ts,
 * FLOP counting in bench/flops.ts, later an int8 quantizer).
 *
 * Lowering (lowerModel): every layer, in the model's execution order, becomes zero or more nodes.
 *   - Dropout, InputLayer and linear activations are the identity: no node.
 *   - A separable convolution is two convolution nodes (depthwise/grouped spatial + 1×1 pointwise,
 *     in the layer's order); a depthwise convolution is a grouped convolution (groups = channels).
 *   - A layer's own ReLU/ELU is a post-op of its convolution or dense node; its own softmax is a
 *     softmax node after it. The logits rule lives here once: with `logits`, the output layer's
 *     softmax is left out.
 *   - Flatten is a node (the value is an NHWC image read in (h, w, c) order: a reshape).
 * Each layer type says how it lowers in one place: the LOWERINGS table below.
 *
 * Fusing (fuse.ts) then rewrites the graph in place: batch norms folded into their convolution's
 * weights (as `affine` recipes), residual adds into a convolution's sum post-op, ReLU/ELU nodes into
 * the convolution or dense node before them.
 *
 * Weights are recipes (closures over the model's Variables), so a consumer can re-read them when
 * the weights change; `variables` lists every Variable a recipe reads. Shapes leave out the batch
 * and are NHWC (or [features]). Convolution kernels are Keras HWIO, grouped: [kh, kw, in/groups, out].
 */
import { OptionError } from '../core/errors.js';
import { resolveConv2D } from '../core/ops/conv.js';
import { resolvePool2D } from '../core/ops/pooling.js';
import { type ActivationName, isLogitsActivation } from '../core/ops/activations.js';
import type { Layer, Shape, Variable } from '../nn/layer.js';
import { Conv2D, DepthwiseConv2D, SeparableConv2D } from '../nn/layers/convolutional.js';
import { Activation, Dense, Dropout, Flatten, InputLayer } from '../nn/layers/core.js';
import { Add, Concatenate } from '../nn/layers/merge.js';
import { BatchNormalization } from '../nn/layers/normalization.js';
import { AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D } from '../nn/layers/pooling.js';
import type { Model } from '../nn/model.js';

/** Produces one weight array from the model's current weights. */
export type WeightRecipe = () => Float32Array;

export type EltwiseAlg = 'relu' | 'elu';
/** Applied to a node's result in order: an activation, or adding the node's result into `sumInto`. */
export type Post = { kind: 'eltwise'; alg: EltwiseAlg; alpha: number } | { kind: 'sum' };

/** Per output channel y·scale + shift (an inference-mode batch norm). */
export interface Affine {
  scale: Float64Array;
  shift: Float64Array;
}

/** A convolution's geometry, the names native/plan.h uses (padding made explicit). */
export interface ConvGeometry {
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  sH: number;
  sW: number;
  dH: number;
  dW: number;
  padT: number;
  padL: number;
  padB: number;
  padR: number;
  groups: number;
}

/** A pooling window (padding made explicit). */
export interface PoolWindow {
  winH: number;
  winW: number;
  sH: number;
  sW: number;
  padT: number;
  padL: number;
  padB: number;
  padR: number;
}

interface NodeBase {
  id: number;
  inputs: GraphNode[];
  /** Without the batch dimension, NHWC (or [features]). */
  shape: number[];
  /** Names of the layers this node computes (grows as layers fuse into it; for descriptions). */
  layers: string[];
  /** The layer the node was lowered from. */
  layer: Layer;
}

export interface InputNode extends NodeBase {
  op: 'input';
}
export interface ConvNode extends NodeBase {
  op: 'conv';
  /** Which part of its layer this convolution is (names exported weights). */
  role: 'conv' | 'depthwise' | 'spatial' | 'pointwise';
  kernel: WeightRecipe;
  /** HWIO, grouped: [kh, kw, in/groups, out]. */
  kernelShape: number[];
  bias: WeightRecipe | null;
  /** Batch norms folded into this convolution, applied in order (see foldKernel, foldBias). */
  affine: Array<() => Affine>;
  geometry: ConvGeometry;
  posts: Post[];
  /** With a sum post-op: the value this convolution adds into (and overwrites). */
  sumInto: GraphNode | null;
}
export interface DenseNode extends NodeBase {
  op: 'dense';
  kernel: WeightRecipe;
  /** [features, units] */
  kernelShape: number[];
  bias: WeightRecipe | null;
  units: number;
  posts: Post[];
}
export interface EltwiseNode extends NodeBase {
  op: 'eltwise';
  alg: EltwiseAlg;
  alpha: number;
}
/** Softmax over the last axis (the channels of an image). */
export interface SoftmaxNode extends NodeBase {
  op: 'softmax';
}
/** Inference-mode batch norm with the moving statistics (gamma ones and beta zeros when the layer has none). */
export interface BatchNormNode extends NodeBase {
  op: 'bn';
  epsilon: number;
  gamma: WeightRecipe;
  beta: WeightRecipe;
  mean: WeightRecipe;
  variance: WeightRecipe;
}
export interface PoolNode extends NodeBase {
  op: 'pool';
  alg: 'max' | 'avg';
  window: PoolWindow;
}
export interface GlobalPoolNode extends NodeBase {
  op: 'gpool';
  alg: 'max' | 'avg';
}
export interface AddNode extends NodeBase {
  op: 'add';
}
/** Concatenation on the last axis (channels). */
export interface ConcatNode extends NodeBase {
  op: 'concat';
}
export interface FlattenNode extends NodeBase {
  op: 'flatten';
}

export type GraphNode =
  | InputNode
  | ConvNode
  | DenseNode
  | EltwiseNode
  | SoftmaxNode
  | BatchNormNode
  | PoolNode
  | GlobalPoolNode
  | AddNode
  | ConcatNode
  | FlattenNode;

export interface InferenceGraph {
  /** In execution order; a node's inputs come before it. nodes[0] is the input. */
  nodes: GraphNode[];
  input: InputNode;
  /** The node whose value is the model's output. */
  output: GraphNode;
  /** The model's output shape without the batch, as Keras gives it (flat after a Flatten). */
  outputShape: number[];
  /** Every Variable a recipe reads (to notice when the weights change). */
  variables: Variable[];
}

/** A layer the lowering has no entry for. */
export class LoweringError extends OptionError {
  constructor(
    readonly layer: Layer,
    message: string,
  ) {
    super(message);
  }
}

export interface LowerOptions {
  /** [height, width, channels] (or the model's input shape). */
  inputShape: readonly number[];
  /** Leave out the output layer's softmax. */
  logits: boolean;
  /** Geometry is resolved for this batch (default 1; sizes do not depend on it). */
  batch?: number;
}

/** What a lowering function gets: its layer's inputs and output shape, and ways to add nodes. */
export interface LowerContext<L extends Layer = Layer> {
  layer: L;
  inputs: GraphNode[];
  /** The layer's output shape (without the batch). */
  shape: number[];
  isOutput: boolean;
  logits: boolean;
  batch: number;
  /** Adds a node (its id is assigned) and returns it. */
  add<T extends GraphNode>(node: Omit<T, 'id' | 'layer'>): T;
  /** Records Variables the node's recipes read. */
  watch(...vs: (Variable | null | undefined)[]): void;
}

/** Lowers one layer: adds its nodes and returns the node holding the layer's value. */
export type LowerFn<L extends Layer> = (c: LowerContext<L>) => GraphNode;

type LayerClass<L extends Layer> = abstract new (...args: never[]) => L;

const LOWERINGS = new Map<LayerClass<Layer>, LowerFn<Layer>>();
function lowering<L extends Layer>(cls: LayerClass<L>, fn: LowerFn<L>): void {
  LOWERINGS.set(cls, fn as LowerFn<Layer>);
}

/** Whether the lowering knows this layer's type. */
export function canLower(layer: Layer): boolean {
  return LOWERINGS.has(layer.constructor as LayerClass<Layer>);
}

const recipe =
  (v: Variable): WeightRecipe =>
  () =>
    v.value.data();
const identity = (c: LowerContext): GraphNode => c.inputs[0]!;

/** The activation a layer applies here: the logits rule (no softmax at the output) is this one place. */
function effectiveActivation(c: LowerContext, act: ActivationName): Exclude<ActivationName, 'sigmoid'> {
  const a = isLogitsActivation(act) && c.isOutput && c.logits ? 'linear' : act;
  if (a === 'sigmoid')
    throw new OptionError(
      `${c.layer.name}: a sigmoid head lowers only as logits (compiled plans and ONNX export take the logits; apply the sigmoid after)`,
    );
  return a;
}

export function eltwisePost(alg: EltwiseAlg): Post {
  return { kind: 'eltwise', alg, alpha: alg === 'elu' ? 1 : 0 };
}

/** A layer's own activation after `node`: a post-op, a softmax node, or nothing. */
function withActivation(c: LowerContext, node: ConvNode | DenseNode, act: ActivationName): GraphNode {
  const a = effectiveActivation(c, act);
  if (a === 'linear') return node;
  if (a === 'softmax') return c.add<SoftmaxNode>({ op: 'softmax', inputs: [node], shape: node.shape, layers: [c.layer.name] });
  node.posts.push(eltwisePost(a));
  return node;
}

interface ConvParts {
  name: string;
  role: ConvNode['role'];
  kernel: Variable;
  kernelShape: readonly number[];
  groups: number;
  strides: [number, number];
  dilations: [number, number];
  padding: 'same' | 'valid';
}

function convNode(c: LowerContext, input: GraphNode, shape: number[], p: ConvParts): ConvNode {
  const r = resolveConv2D([c.batch, ...input.shape], p.kernelShape, {
    strides: p.strides,
    dilations: p.dilations,
    padding: p.padding,
    groups: p.groups,
  });
  c.watch(p.kernel);
  const geometry: ConvGeometry = {
    inH: r.inHeight,
    inW: r.inWidth,
    inC: r.inChannels,
    outH: r.outHeight,
    outW: r.outWidth,
    outC: r.outChannels,
    kH: r.kernelHeight,
    kW: r.kernelWidth,
    sH: r.strideHeight,
    sW: r.strideWidth,
    dH: r.dilationHeight,
    dW: r.dilationWidth,
    padT: r.padTop,
    padL: r.padLeft,
    padB: r.padBottom,
    padR: r.padRight,
    groups: r.groups,
  };
  return c.add<ConvNode>({
    op: 'conv',
    inputs: [input],
    shape,
    layers: [p.name],
    role: p.role,
    kernel: recipe(p.kernel),
    kernelShape: [...p.kernelShape],
    bias: null,
    affine: [],
    geometry,
    posts: [],
    sumInto: null,
  });
}

function setBias(c: LowerContext, node: ConvNode, bias: Variable | null): void {
  if (!bias) return;
  node.bias = recipe(bias);
  c.watch(bias);
}

lowering(Conv2D, (c) => {
  const l = c.layer;
  const n = convNode(c, c.inputs[0]!, c.shape, {
    name: l.name,
    role: 'conv',
    kernel: l.kernel,
    kernelShape: l.kernel.shape,
    groups: l.groups,
    strides: l.strides,
    dilations: l.dilationRate,
    padding: l.padding,
  });
  setBias(c, n, l.bias);
  return withActivation(c, n, l.activation);
});

lowering(DepthwiseConv2D, (c) => {
  const l = c.layer;
  const ch = c.inputs[0]!.shape[2]!;
  // A depthwise kernel [kh, kw, C, m] is the grouped HWIO kernel [kh, kw, 1, C·m] with groups = C.
  const n = convNode(c, c.inputs[0]!, c.shape, {
    name: l.name,
    role: 'depthwise',
    kernel: l.depthwiseKernel,
    kernelShape: [l.kernelSize[0], l.kernelSize[1], 1, ch * l.depthMultiplier],
    groups: ch,
    strides: l.strides,
    dilations: l.dilationRate,
    padding: l.padding,
  });
  setBias(c, n, l.bias);
  return withActivation(c, n, l.activation);
});

lowering(SeparableConv2D, (c) => {
  const l = c.layer;
  const x = c.inputs[0]!;
  const depthwiseFirst = l.order === 'depthwise-first';
  const spatialChannels = depthwiseFirst ? x.shape[2]! : l.filters;
  const groups = l.groupsFor(spatialChannels);
  const ks = l.spatialKernel.shape;
  const depthwise = groups === spatialChannels;
  const spatial: Omit<ConvParts, 'name'> = {
    role: depthwise ? 'depthwise' : 'spatial',
    kernel: l.spatialKernel,
    groups,
    strides: l.strides,
    dilations: l.dilationRate,
    padding: l.padding,
    kernelShape: depthwise ? [ks[0]!, ks[1]!, 1, spatialChannels * l.depthMultiplier] : [...ks],
  };
  const pointwise: Omit<ConvParts, 'name'> = {
    role: 'pointwise',
    kernel: l.pointwiseKernel,
    kernelShape: l.pointwiseKernel.shape,
    groups: 1,
    strides: [1, 1],
    dilations: [1, 1],
    padding: 'valid',
  };
  const [h, w] = x.shape as [number, number];
  const [firstParts, lastParts, midShape] = depthwiseFirst
    ? [spatial, pointwise, [c.shape[0]!, c.shape[1]!, spatialChannels * l.depthMultiplier]]
    : [pointwise, spatial, [h, w, l.filters]];
  const first = convNode(c, x, midShape, { ...firstParts, name: `${l.name}/${depthwiseFirst ? 'spatial' : 'pointwise'}` });
  if (l.intermediateActivation !== 'none') first.posts.push(eltwisePost(l.intermediateActivation));
  const last = convNode(c, first, c.shape, { ...lastParts, name: l.name });
  setBias(c, last, l.bias);
  return withActivation(c, last, l.activation);
});

lowering(Dense, (c) => {
  const l = c.layer;
  c.watch(l.kernel, l.bias);
  const n = c.add<DenseNode>({
    op: 'dense',
    inputs: [c.inputs[0]!],
    shape: c.shape,
    layers: [l.name],
    kernel: recipe(l.kernel),
    kernelShape: [...l.kernel.shape],
    bias: l.bias ? recipe(l.bias) : null,
    units: l.units,
    posts: [],
  });
  return withActivation(c, n, l.activation);
});

lowering(BatchNormalization, (c) => {
  const l = c.layer;
  const channels = l.movingMean.shape[0]!;
  c.watch(l.gamma, l.beta, l.movingMean, l.movingVariance);
  return c.add<BatchNormNode>({
    op: 'bn',
    inputs: [c.inputs[0]!],
    shape: c.shape,
    layers: [l.name],
    epsilon: l.epsilon,
    gamma: l.gamma ? recipe(l.gamma) : () => new Float32Array(channels).fill(1),
    beta: l.beta ? recipe(l.beta) : () => new Float32Array(channels),
    mean: recipe(l.movingMean),
    variance: recipe(l.movingVariance),
  });
});

lowering(Activation, (c) => {
  const a = effectiveActivation(c, c.layer.activation);
  const x = c.inputs[0]!;
  if (a === 'linear') return x;
  if (a === 'softmax') return c.add<SoftmaxNode>({ op: 'softmax', inputs: [x], shape: c.shape, layers: [c.layer.name] });
  return c.add<EltwiseNode>({ op: 'eltwise', inputs: [x], shape: x.shape, layers: [c.layer.name], alg: a, alpha: a === 'elu' ? 1 : 0 });
});

const pool =
  (alg: 'max' | 'avg'): LowerFn<MaxPooling2D | AveragePooling2D> =>
  (c) => {
    const l = c.layer;
    const x = c.inputs[0]!;
    const p = resolvePool2D([c.batch, ...x.shape], { poolSize: l.poolSize, strides: l.strides, padding: l.padding });
    const window: PoolWindow = {
      winH: p.windowHeight,
      winW: p.windowWidth,
      sH: p.strideHeight,
      sW: p.strideWidth,
      padT: p.padTop,
      padL: p.padLeft,
      padB: p.padBottom,
      padR: p.padRight,
    };
    return c.add<PoolNode>({ op: 'pool', inputs: [x], shape: c.shape, layers: [l.name], alg, window });
  };
lowering(MaxPooling2D, pool('max'));
lowering(AveragePooling2D, pool('avg'));

const globalPool =
  (alg: 'max' | 'avg'): LowerFn<Layer> =>
  (c) =>
    c.add<GlobalPoolNode>({ op: 'gpool', inputs: [c.inputs[0]!], shape: c.shape, layers: [c.layer.name], alg });
lowering(GlobalMaxPooling2D, globalPool('max'));
lowering(GlobalAveragePooling2D, globalPool('avg'));

lowering(Add, (c) => c.add<AddNode>({ op: 'add', inputs: c.inputs, shape: c.shape, layers: [c.layer.name] }));
lowering(Concatenate, (c) => c.add<ConcatNode>({ op: 'concat', inputs: c.inputs, shape: c.shape, layers: [c.layer.name] }));
lowering(Flatten, (c) => c.add<FlattenNode>({ op: 'flatten', inputs: [c.inputs[0]!], shape: c.shape, layers: [c.layer.name] }));
lowering(Dropout, identity); // inference: the identity
lowering(InputLayer, identity);

/** Nodes under construction: ids, the Variables read, the node list. */
class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly variables = new Set<Variable>();

  context(layer: Layer, inputs: GraphNode[], shape: number[], isOutput: boolean, o: LowerOptions): LowerContext {
    return {
      layer,
      inputs,
      shape,
      isOutput,
      logits: o.logits,
      batch: o.batch ?? 1,
      add: <T extends GraphNode>(n: Omit<T, 'id' | 'layer'>): T => {
        const node = { ...n, id: this.nodes.length, layer } as unknown as T;
        this.nodes.push(node);
        return node;
      },
      watch: (...vs) => {
        for (const v of vs) if (v) this.variables.add(v);
      },
    };
  }
}

/** Runs `layer`'s entry of the lowering table (LoweringError if it has none). */
function lowerWith(c: LowerContext): GraphNode {
  const fn = LOWERINGS.get(c.layer.constructor as LayerClass<Layer>);
  if (!fn) throw new LoweringError(c.layer, `layer '${c.layer.name}' (${c.layer.className}) has no inference lowering`);
  return fn(c);
}

/**
 * Lowers the model at `inputShape` (unfused; see fuseGraph). Shape errors of a layer at that input
 * size are the layer's ShapeErrors; a layer type without a lowering is a LoweringError.
 */
export function lowerModel(model: Model, o: LowerOptions): InferenceGraph {
  const g = new GraphBuilder();
  const nodeOfLayer = new Map<Layer, GraphNode>();
  const shapeOf = new Map<Layer, number[]>();
  const outputLayer = model.output.layer;
  const inputShape = [...o.inputShape];
  const input = g
    .context(model.input.layer, [], inputShape, false, o)
    .add<InputNode>({ op: 'input', inputs: [], shape: inputShape, layers: [model.input.layer.name] });
  nodeOfLayer.set(model.input.layer, input);
  shapeOf.set(model.input.layer, inputShape);
  for (const layer of model.executionOrder) {
    if (layer === model.input.layer) continue;
    const inbound = layer.inbound!;
    const shape = [...layer.computeOutputShape(inbound.map((s) => shapeOf.get(s.layer)! as Shape))];
    const inputs = inbound.map((s) => nodeOfLayer.get(s.layer)!);
    nodeOfLayer.set(layer, lowerWith(g.context(layer, inputs, shape, layer === outputLayer, o)));
    shapeOf.set(layer, shape);
  }
  return {
    nodes: g.nodes,
    input,
    output: nodeOfLayer.get(outputLayer)!,
    outputShape: shapeOf.get(outputLayer)!,
    variables: [...g.variables],
  };
}

/**
 * Lowers one layer on its own, at the shapes it was built with (its inputs stand in as input
 * nodes): the nodes it adds. A layer not applied yet, or without a lowering, adds none.
 */
export function lowerLayer(layer: Layer): GraphNode[] {
  if (!layer.inbound || layer.inbound.length === 0 || !layer.output || !canLower(layer)) return [];
  const g = new GraphBuilder();
  const o: LowerOptions = { inputShape: [], logits: false };
  const inputs = layer.inbound.map((s) =>
    g.context(s.layer, [], [...s.shape], false, o).add<InputNode>({ op: 'input', inputs: [], shape: [...s.shape], layers: [s.layer.name] }),
  );
  lowerWith(g.context(layer, inputs, [...layer.output.shape], false, o));
  return g.nodes.filter((n) => n.op !== 'input');
}

/** Readers of each node, one entry per input edge (a convolution with a sum post-op also reads its sumInto). */
export function readersOf(nodes: readonly GraphNode[]): Map<GraphNode, GraphNode[]> {
  const r = new Map<GraphNode, GraphNode[]>();
  for (const n of nodes) {
    const read = n.op === 'conv' && n.sumInto ? [...n.inputs, n.sumInto] : n.inputs;
    for (const i of read) r.set(i, [...(r.get(i) ?? []), n]);
  }
  return r;
}

/** y = x·scale + shift of an inference-mode batch norm, in float64. */
export function bnAffine(bn: BatchNormNode): Affine {
  const mean = bn.mean();
  const variance = bn.variance();
  const gamma = bn.gamma();
  const beta = bn.beta();
  const c = mean.length;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    const s = gamma[i]! / Math.sqrt(variance[i]! + bn.epsilon);
    scale[i] = s;
    shift[i] = beta[i]! - mean[i]! * s;
  }
  return { scale, shift };
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
export function foldBias(bias: Float32Array | null, outChannels: number, affines: Affine[]): Float32Array {
  const out = new Float32Array(outChannels);
  for (let o = 0; o < outChannels; o++) {
    let b = bias ? bias[o]! : 0;
    for (const a of affines) b = b * a.scale[o]! + a.shift[o]!;
    out[o] = b;
  }
  return out;
}

/** A convolution's weights with its folded batch norms applied: the kernel, and the bias (or null without one). */
export function convWeightRecipes(n: ConvNode): { kernel: WeightRecipe; bias: WeightRecipe | null } {
  const { kernel, bias, affine } = n;
  const out = n.geometry.outC;
  if (affine.length === 0) return { kernel, bias };
  return {
    kernel: () =>
      foldKernel(
        kernel(),
        out,
        affine.map((f) => f()),
      ),
    bias: () =>
      foldBias(
        bias ? bias() : null,
        out,
        affine.map((f) => f()),
      ),
  };
}
