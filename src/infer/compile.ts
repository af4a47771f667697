/**
 * From a model's inference graph (graph.ts, fused by fuse.ts) to a compiled plan's spec: the flat
 * list of numbers native/plan.h reads (codes and field orders in plan-format.ts) and the weight
 * recipes. Flatten is free here (the plan keeps the image and reads it in (h, w, c) order where it
 * matters: dense, output). Nodes are emitted in the graph's order; a convolution that absorbed an
 * Add runs where the Add was. What the plan cannot run is refused with a CompileError (the
 * op-by-op path still runs it).
 */
import { OptionError, ShapeError, shapeToString } from '../core/errors.js';
import type { Layer, Variable } from '../nn/layer.js';
import type { Model } from '../nn/model.js';
import { fuseGraph, type FuseOptions, type FusionCounts } from './fuse.js';
import { int8Plan, type Int8Plan } from './int8-plan.js';
import { type Int8Calibration, weightScales } from './quant-types.js';
import {
  convWeightRecipes,
  lowerModel,
  LoweringError,
  type ConvNode,
  type DenseNode,
  type GraphNode,
  type InferenceGraph,
  type Post,
  type WeightRecipe,
} from './graph.js';
import {
  CONV_GEOMETRY,
  ELTWISE_ALG,
  HEADER,
  LAYOUT,
  NONE,
  OP,
  PLAN_FORMAT_VERSION,
  POOL_ALG,
  POOL_WINDOW,
  POST_KIND,
  PRECISION,
  VALUE_QUANT,
} from './plan-format.js';

export type { WeightRecipe } from './graph.js';

/** A layer or pattern the compiled plan does not support (the op-by-op path still runs it). */
export class CompileError extends OptionError {}

export type Precision = 'fp32' | 'bf16' | 'int8';
/**
 * Activation layout inside an fp32 plan: 'channels-last' lets oneDNN choose (channels-last
 * brgconv kernels here); 'blocked' runs pointwise and depthwise convolutions with jit kernels
 * over channel blocks of 16, faster for separable networks; 'auto' is 'blocked' for a network with
 * depthwise convolutions, else 'channels-last'.
 */
export type PlanLayout = 'auto' | 'channels-last' | 'blocked';

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
  fusions: FusionCounts;
  /** int8 plans: convolution and dense nodes that run in int8, and all of them. */
  int8Convolutions: { int8: number; total: number } | null;
}

export interface CompileSpecOptions {
  batch: number;
  inputShape: readonly number[];
  logits: boolean;
  precision: Precision;
  /** Default 'auto'. */
  layout?: PlanLayout;
  /** Which fusions to make (default all); off runs those layers as their own primitives. */
  fuse?: FuseOptions;
  /** Required with precision 'int8' (checked against the graph here, before any native call). */
  calibration?: Int8Calibration;
}

function fail(layer: Layer, why: string): never {
  throw new CompileError(`compileInference: layer '${layer.name}' (${layer.className}) ${why}`);
}

/** The graph at the plan's input size, with the compile errors' wording. */
function lowerForPlan(model: Model, o: CompileSpecOptions): InferenceGraph {
  try {
    return lowerModel(model, { inputShape: o.inputShape, logits: o.logits, batch: o.batch });
  } catch (e) {
    if (e instanceof LoweringError) fail(e.layer, 'cannot be compiled (no compiled equivalent); use model.forward');
    if (e instanceof ShapeError) throw new ShapeError(`compileInference at input ${shapeToString(o.inputShape)}: ${e.message}`);
    throw e;
  }
}

/** The node whose value a flatten (free in a plan) passes on. */
function throughFlatten(n: GraphNode): GraphNode {
  while (n.op === 'flatten') n = n.inputs[0]!;
  return n;
}

/** Refuses what the plan cannot run (on the unfused graph). */
function refuseUnsupported(g: InferenceGraph, inputShape: readonly number[]): void {
  for (const n of g.nodes) {
    const x = n.inputs[0] ? throughFlatten(n.inputs[0]) : null;
    if (n.op === 'bn' && n.shape.length === 1 && x!.shape.length === 3 && x!.shape[0]! * x!.shape[1]! !== 1) {
      // After a Flatten the channels are the flattened features, not the image's channels.
      fail(n.layer, 'after a Flatten of an image is not compiled');
    }
    if (n.op === 'softmax' && x!.op !== 'dense') {
      if (x!.layer === n.layer) fail(n.layer, `has activation 'softmax', which compiled convolutions do not support`);
      fail(n.layer, 'softmax is compiled only right after a Dense layer');
    }
    if (n.op === 'concat' && n.shape.length !== 3) fail(n.layer, `is compiled on images only, got ${shapeToString(n.shape)}`);
    if (n.op === 'dense') {
      const features = x!.shape.reduce((a, b) => a * b, 1);
      if (n.kernelShape[0] !== features) {
        fail(n.layer, `has a kernel for ${n.kernelShape[0]} features, but gets ${features} at input ${shapeToString(inputShape)}`);
      }
    }
  }
}

const postNumbers = (posts: Post[]): number[] => [
  posts.length,
  ...posts.flatMap((p) => (p.kind === 'sum' ? [POST_KIND.sum, 0, 0] : [POST_KIND.eltwise, ELTWISE_ALG[p.alg], p.alpha])),
];

/** The steps of the spec and the weight recipes they index, in the graph's order. */
function emitSteps(
  g: InferenceGraph,
  int8: Int8Plan | null,
): { steps: number[]; count: number; recipes: WeightRecipe[]; output: number; valueNodes: GraphNode[] } {
  const steps: number[] = [];
  const recipes: WeightRecipe[] = [];
  const bufferOf = new Map<GraphNode, number>();
  const valueNodes: GraphNode[] = [g.input];
  const weight = (r: WeightRecipe) => (recipes.push(r), recipes.length - 1);
  let count = 0;
  for (const n of g.nodes) {
    if (n.op === 'input' || n.op === 'flatten') {
      bufferOf.set(n, n.op === 'input' ? 0 : bufferOf.get(n.inputs[0]!)!);
      continue;
    }
    const v = (x: GraphNode) => {
      const id = bufferOf.get(x);
      if (id === undefined) throw new CompileError(`compileInference: internal order error at ${n.layers.join('+')}`);
      return id;
    };
    steps.push(...stepNumbers(n, v, weight, int8));
    bufferOf.set(n, ++count);
    valueNodes.push(n);
  }
  return { steps, count, recipes, output: bufferOf.get(g.output)!, valueNodes };
}

/** An int8 plan's value table (native/plan.h): scale and unsigned per value, scale 0 for fp32. */
function valueTable(valueNodes: GraphNode[], int8: Int8Plan): number[] {
  return valueNodes.flatMap((n) => {
    const q = int8.quantOf(n);
    const entry: Record<(typeof VALUE_QUANT)[number], number> = { scale: q ? q.scale : 0, unsigned: q?.unsigned ? 1 : 0 };
    return VALUE_QUANT.map((f) => entry[f]);
  });
}

/** An int8 plan's convolution and dense field: the kernel's per-output-channel scales (a weight array), or NONE. */
function weightScalesIndex(n: ConvNode | DenseNode, kernel: WeightRecipe, weight: (r: WeightRecipe) => number, int8: Int8Plan | null) {
  if (!int8) return [];
  const outC = n.op === 'conv' ? n.geometry.outC : n.units;
  return [int8.runsInt8(n) ? weight(() => weightScales(kernel(), outC)) : NONE];
}

/** One step: its kind and fields (native/plan.h). */
function stepNumbers(n: GraphNode, v: (x: GraphNode) => number, weight: (r: WeightRecipe) => number, int8: Int8Plan | null): number[] {
  switch (n.op) {
    case 'conv': {
      const w = convWeightRecipes(n);
      const wi = weight(w.kernel);
      const bi = w.bias ? weight(w.bias) : NONE;
      return [
        OP.conv,
        v(n.inputs[0]!),
        ...CONV_GEOMETRY.map((f) => n.geometry[f]),
        wi,
        bi,
        n.sumInto ? v(n.sumInto) : NONE,
        ...weightScalesIndex(n, w.kernel, weight, int8),
        ...postNumbers(n.posts),
      ];
    }
    case 'eltwise':
      return [OP.eltwise, v(n.inputs[0]!), ELTWISE_ALG[n.alg], n.alpha];
    case 'pool':
      return [OP.pool, v(n.inputs[0]!), POOL_ALG[n.alg], ...POOL_WINDOW.map((f) => n.window[f])];
    case 'gpool':
      return [OP.globalPool, v(n.inputs[0]!), POOL_ALG[n.alg]];
    case 'add':
      return [OP.add, n.inputs.length, ...n.inputs.map(v)];
    case 'concat':
      return [OP.concat, n.inputs.length, ...n.inputs.map(v)];
    case 'dense': {
      const wi = weight(n.kernel);
      const bi = n.bias ? weight(n.bias) : NONE;
      return [OP.dense, v(n.inputs[0]!), n.units, wi, bi, ...weightScalesIndex(n, n.kernel, weight, int8), ...postNumbers(n.posts)];
    }
    case 'softmax':
      return [OP.softmax, v(n.inputs[0]!)];
    case 'bn':
      return [OP.batchNorm, v(n.inputs[0]!), n.epsilon, weight(n.gamma), weight(n.beta), weight(n.mean), weight(n.variance)];
    default:
      throw new CompileError(`compileInference: internal error: no plan step for a '${n.op}' node`);
  }
}

/**
 * 'auto' resolved. Blocked pays off where depthwise convolutions are (Xception's family); regular
 * 3×3s are slower blocked (Inception V3's plan: batch 1 0.73×, batch 8 0.90× of channels-last).
 */
function resolveLayout(g: InferenceGraph, layout: PlanLayout): Exclude<PlanLayout, 'auto'> {
  if (layout !== 'auto') return layout;
  const depthwise = g.nodes.some(
    (n) => n.op === 'conv' && n.geometry.groups > 1 && n.geometry.groups === n.geometry.inC && n.geometry.groups === n.geometry.outC,
  );
  return depthwise ? 'blocked' : 'channels-last';
}

export function compileSpec(model: Model, o: CompileSpecOptions): CompiledSpec {
  const g = lowerForPlan(model, o);
  refuseUnsupported(g, o.inputShape);
  const fusions = fuseGraph(g, o.fuse);
  if ((o.precision === 'int8') !== (o.calibration !== undefined))
    throw new OptionError(
      `compileInference: ${o.precision === 'int8' ? "precision 'int8' needs a calibration" : "a calibration needs precision 'int8'"}`,
    );
  const int8 = o.precision === 'int8' ? int8Plan(model, g, o.calibration) : null;
  const { steps, count, recipes, output, valueNodes } = emitSteps(g, int8);
  if (throughFlatten(g.output).op === 'input')
    throw new CompileError('compileInference: the model computes nothing (its output is its input)');
  const layout = resolveLayout(g, o.layout ?? 'auto');
  const header: Record<(typeof HEADER)[number], number> = {
    formatVersion: PLAN_FORMAT_VERSION,
    batch: o.batch,
    height: o.inputShape[0]!,
    width: o.inputShape[1]!,
    channels: o.inputShape[2]!,
    precision: PRECISION[o.precision],
    layout: LAYOUT[layout],
    stepCount: count,
    outputValue: output,
  };
  return {
    spec: Float64Array.from([...HEADER.map((f) => header[f]), ...(int8 ? valueTable(valueNodes, int8) : []), ...steps]),
    recipes,
    variables: g.variables,
    outputShape: g.outputShape,
    layout,
    fusions,
    int8Convolutions: int8 ? int8Counts(g, int8) : null,
  };
}

function int8Counts(g: InferenceGraph, int8: Int8Plan): { int8: number; total: number } {
  const linear = g.nodes.filter((n): n is ConvNode | DenseNode => n.op === 'conv' || n.op === 'dense');
  return { int8: linear.filter((n) => int8.runsInt8(n)).length, total: linear.length };
}
