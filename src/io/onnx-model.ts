/**
 * ONNX export of any functional model the library builds (Xception and its research variants,
 * Inception V3), as a standard opset-13+ graph of Conv, BatchNormalization, pooling, Gemm, …
 * It reads the model's inference graph (src/infer/graph.ts): one ONNX node (or a few) per graph
 * node, the graph's post-ops as the activation nodes after it.
 *
 * Layout. The graph input is NCHW [batch, C, H, W] by default, as ONNX tools and runtimes expect
 * (inputLayout 'nhwc' instead declares [batch, H, W, C], the project's and Keras's layout, and
 * starts the graph with a Transpose). Inside, every 4-D tensor is NCHW. A 4-D model output (no
 * top, no pooling) leaves the graph in the input's layout. The batch dimension is symbolic
 * ('batch'); the spatial size is fixed, since TensorFlow's 'same' padding depends on it.
 *
 * Batch normalization is folded by default: into the weights and bias of the convolution
 * feeding it when that convolution has no activation and no other consumer (every BN of
 * Xception and Inception V3), or else into one per-channel Mul and Add. `foldBatchNorm: false`
 * keeps ONNX BatchNormalization nodes with the moving statistics.
 *
 * With `int8` (a calibration, infer/calibrate.ts) the export is the quantized model in QDQ form
 * (onnx-qdq.ts), on the graph int8 runs: every fusion made (residual sums and activations are
 * then the nodes after their convolution), so the calibration's value keys name its tensors.
 */
import { OptionError } from '../core/errors.js';
import type { Model } from '../nn/model.js';
import { checkCalibrationFits } from '../infer/calibration-check.js';
import { fuseGraph } from '../infer/fuse.js';
import { int8Graph } from '../infer/interpret.js';
import { type Int8Calibration, valueKey } from '../infer/quant-types.js';
import {
  bnAffine,
  canLower,
  convWeightRecipes,
  lowerModel,
  type BatchNormNode,
  type ConvNode,
  type DenseNode,
  type GraphNode,
  type InferenceGraph,
} from '../infer/graph.js';
import { OnnxGraphError } from './errors.js';
import { attr, kerasConvKernelToOnnx, OnnxGraphBuilder, type OnnxAttributeValue } from './onnx.js';
import { QdqWriter } from './onnx-qdq.js';

export interface ExportOnnxOptions {
  /** Fold batch normalization into the preceding convolution (default true). */
  foldBatchNorm?: boolean;
  /** Default-domain opset, 13…21 (default 13). */
  opset?: number;
  /** 'nchw' (default) or 'nhwc' graph input. */
  inputLayout?: 'nchw' | 'nhwc';
  /** Appended to the model's doc_string (e.g. how to preprocess the input). */
  description?: string;
  /** Graph input and output names (default 'input' and 'output'). */
  inputName?: string;
  outputName?: string;
  /** Export the int8 model in QDQ form with this calibration (batch norms are then always folded). */
  int8?: Int8Calibration;
}

export const ONNX_MIN_OPSET = 13;
export const ONNX_MAX_OPSET = 21;

type Layout = 'nchw' | 'nhwc';

/** ONNX nodes and initializers, with unique tensor names; `names` holds each graph node's tensor. */
export class OnnxEmitter {
  readonly names = new Map<GraphNode, string>();
  /** Set for a QDQ (int8) export. */
  qdq: QdqWriter | null = null;
  private readonly used: Set<string>;

  constructor(
    readonly g: OnnxGraphBuilder,
    readonly fold: boolean,
    reserved: string[],
  ) {
    this.used = new Set(reserved);
  }

  unique(base: string): string {
    let n = base;
    for (let i = 1; this.used.has(n); i++) n = `${base}_${i}`;
    this.used.add(n);
    return n;
  }

  constant(base: string, shape: number[], data: Float32Array): string {
    const n = this.unique(base);
    this.g.addInitializer(n, shape, data);
    return n;
  }

  node(op: string, inputs: string[], outName: string, attrs: Record<string, OnnxAttributeValue> = {}): string {
    this.g.addNode(op, inputs, [outName], attrs, this.unique(`${outName}/${op}`));
    return outName;
  }

  /** The tensor of a node's input. */
  in(n: GraphNode, i = 0): string {
    return this.names.get(n.inputs[i]!)!;
  }

  /**
   * Runs `emit` for the node's linear result, then its post-ops; the last tensor is named after
   * the node's last layer either way.
   */
  withPosts(n: GraphNode & { posts: ConvNode['posts'] }, emit: (out: string) => string): string {
    const result = this.unique(n.layers[n.layers.length - 1]!);
    if (n.posts.length === 0) return emit(result);
    let y = emit(this.unique(`${result}/linear`));
    n.posts.forEach((p, i) => {
      const out = i === n.posts.length - 1 ? result : this.unique(`${result}/post${i}`);
      if (p.kind === 'sum') y = this.node('Add', [y, this.names.get((n as ConvNode).sumInto!)!], out);
      else y = p.alg === 'relu' ? this.node('Relu', [y], out) : this.node('Elu', [y], out, { alpha: attr.float(p.alpha) });
    });
    return y;
  }
}

/** An int8 node's dequantized weight and bias tensors (null for an fp32 node or export). */
function int8Weights(e: OnnxEmitter, n: ConvNode | DenseNode, base: string): { kernel: string; bias: string | null } | null {
  if (!e.qdq?.isInt8(n)) return null;
  return e.qdq.weights(e, n, base, e.qdq.quant(valueKey(n.inputs[0]!))!.scale);
}

function convWeights(e: OnnxEmitter, n: ConvNode): string[] {
  const base = `${n.layer.name}/${n.role}`;
  const q = int8Weights(e, n, base);
  if (q) return q.bias ? [q.kernel, q.bias] : [q.kernel];
  const w = convWeightRecipes(n);
  const k = kerasConvKernelToOnnx(w.kernel(), n.kernelShape);
  const inputs = [e.constant(`${base}/W`, k.shape, k.data)];
  if (w.bias) inputs.push(e.constant(`${base}/B`, [k.shape[0]!], w.bias()));
  return inputs;
}

function conv(e: OnnxEmitter, n: ConvNode): string {
  const inputs = [e.in(n), ...convWeights(e, n)];
  const g = n.geometry;
  const attrs = {
    kernel_shape: [g.kH, g.kW],
    strides: [g.sH, g.sW],
    dilations: [g.dH, g.dW],
    pads: [g.padT, g.padL, g.padB, g.padR],
    group: g.groups,
  };
  return e.withPosts(n, (out) => e.node('Conv', inputs, out, attrs));
}

function dense(e: OnnxEmitter, n: DenseNode): string {
  const name = n.layer.name;
  const q = int8Weights(e, n, name);
  const kernel = q ? q.kernel : e.constant(`${name}/kernel`, n.kernelShape, n.kernel());
  const bias = q ? q.bias : n.bias ? e.constant(`${name}/bias`, [n.units], n.bias()) : null;
  return e.withPosts(n, (out) =>
    bias
      ? e.node('Gemm', [e.in(n), kernel, bias], out, {
          alpha: attr.float(1),
          beta: attr.float(1),
        })
      : e.node('MatMul', [e.in(n), kernel], out),
  );
}

/** A batch norm on its own: ONNX BatchNormalization (not folding), or one per-channel Mul and Add. */
function batchNorm(e: OnnxEmitter, n: BatchNormNode, result: string): string {
  const name = n.layer.name;
  if (!e.fold) {
    const mean = n.mean();
    const c = mean.length;
    return e.node(
      'BatchNormalization',
      [
        e.in(n),
        e.constant(`${name}/gamma`, [c], n.gamma()),
        e.constant(`${name}/beta`, [c], n.beta()),
        e.constant(`${name}/moving_mean`, [c], mean),
        e.constant(`${name}/moving_variance`, [c], n.variance()),
      ],
      result,
      { epsilon: attr.float(n.epsilon) },
    );
  }
  const { scale, shift } = bnAffine(n);
  const c = scale.length;
  const bshape = n.shape.length === 3 ? [c, 1, 1] : [c];
  const scaled = e.node('Mul', [e.in(n), e.constant(`${name}/scale`, bshape, Float32Array.from(scale))], e.unique(`${name}/scaled`));
  return e.node('Add', [scaled, e.constant(`${name}/shift`, bshape, Float32Array.from(shift))], result);
}

/** Nodes without post-ops: the ONNX node(s) giving `result`. */
function plain(e: OnnxEmitter, n: GraphNode, result: string): string {
  const x = n.inputs.length > 0 ? e.in(n) : '';
  switch (n.op) {
    case 'bn':
      return batchNorm(e, n, result);
    case 'eltwise':
      return n.alg === 'relu' ? e.node('Relu', [x], result) : e.node('Elu', [x], result, { alpha: attr.float(n.alpha) });
    // Keras softmax is over the last axis: channels, which is axis 1 of an NCHW tensor.
    case 'softmax':
      return e.node('Softmax', [x], result, { axis: n.shape.length === 3 ? 1 : -1 });
    case 'pool': {
      const w = n.window;
      const attrs: Record<string, number | number[]> = {
        kernel_shape: [w.winH, w.winW],
        strides: [w.sH, w.sW],
        pads: [w.padT, w.padL, w.padB, w.padR],
      };
      // TensorFlow's average excludes the padding from the count.
      if (n.alg === 'avg') attrs['count_include_pad'] = 0;
      return e.node(n.alg === 'max' ? 'MaxPool' : 'AveragePool', [x], result, attrs);
    }
    case 'gpool': {
      const pooled = e.node(n.alg === 'avg' ? 'GlobalAveragePool' : 'GlobalMaxPool', [x], e.unique(`${n.layer.name}/nc11`));
      return e.node('Flatten', [pooled], result, { axis: 1 });
    }
    case 'add':
      return e.node(
        n.inputs.length === 2 ? 'Add' : 'Sum',
        n.inputs.map((_, i) => e.in(n, i)),
        result,
      );
    // Keras concatenates on the last axis: channels, axis 1 in NCHW (and of [batch, features]).
    case 'concat':
      return e.node(
        'Concat',
        n.inputs.map((_, i) => e.in(n, i)),
        result,
        { axis: 1 },
      );
    case 'flatten': {
      // Keras flattens NHWC in (h, w, c) order; the Dense after it expects that order.
      const src = n.inputs[0]!.shape.length === 3 ? e.node('Transpose', [x], e.unique(`${n.layer.name}/nhwc`), { perm: [0, 2, 3, 1] }) : x;
      return e.node('Flatten', [src], result, { axis: 1 });
    }
    default:
      throw new OnnxGraphError(`ONNX export: internal error: no ONNX form for a '${n.op}' node`);
  }
}

function emitNode(e: OnnxEmitter, n: GraphNode): string {
  if (n.op === 'conv') return conv(e, n);
  if (n.op === 'dense') return dense(e, n);
  return plain(e, n, e.unique(n.layers[n.layers.length - 1]!));
}

/** The graph input (transposed to NCHW when declared NHWC). */
function emitInput(e: OnnxEmitter, graph: InferenceGraph, layout: Layout, inputName: string): void {
  const [H, W, C] = graph.input.shape as [number, number, number];
  e.g.addInput(inputName, layout === 'nchw' ? ['batch', C, H, W] : ['batch', H, W, C]);
  e.names.set(
    graph.input,
    layout === 'nchw' ? inputName : e.node('Transpose', [inputName], e.unique(`${inputName}/nchw`), { perm: [0, 3, 1, 2] }),
  );
}

/** The model output: 4-D outputs return to the input's layout. */
function emitOutput(e: OnnxEmitter, graph: InferenceGraph, layout: Layout, outputName: string): void {
  const last = e.names.get(graph.output)!;
  const outShape = graph.outputShape;
  if (outShape.length === 3) {
    const [oh, ow, oc] = outShape as [number, number, number];
    if (layout === 'nhwc') e.node('Transpose', [last], outputName, { perm: [0, 2, 3, 1] });
    else e.node('Identity', [last], outputName);
    e.g.addOutput(outputName, layout === 'nhwc' ? ['batch', oh, ow, oc] : ['batch', oc, oh, ow]);
  } else {
    e.node('Identity', [last], outputName);
    e.g.addOutput(outputName, ['batch', ...outShape]);
  }
}

/**
 * The model's inference graph with batch norms folded (or not); no other fusions, so every layer
 * stays visible. For int8, the int8 graph (all fusions), checked against the calibration.
 */
function exportGraph(model: Model, fold: boolean, int8?: Int8Calibration): InferenceGraph {
  for (const l of model.executionOrder) {
    if (!canLower(l)) throw new OnnxGraphError(`ONNX export: layer '${l.name}' of type ${l.className} is not supported`);
  }
  const inShape = model.inputShape;
  if (inShape.length !== 3)
    throw new OnnxGraphError(`ONNX export: the model input must be [height, width, channels], got [${inShape.join(', ')}]`);
  if (int8) {
    const g = int8Graph(model);
    checkCalibrationFits(g, int8);
    return g;
  }
  const graph = lowerModel(model, { inputShape: inShape, logits: false });
  fuseGraph(graph, { batchNorm: fold, sum: false, eltwise: false });
  return graph;
}

function checkOptions(options: ExportOnnxOptions): { opset: number; layout: Layout } {
  const opset = options.opset ?? ONNX_MIN_OPSET;
  if (!Number.isInteger(opset) || opset < ONNX_MIN_OPSET || opset > ONNX_MAX_OPSET) {
    throw new OptionError(`ONNX export: opset must be an integer from ${ONNX_MIN_OPSET} to ${ONNX_MAX_OPSET}, got ${opset}`);
  }
  const layout = options.inputLayout ?? 'nchw';
  if (layout !== 'nchw' && layout !== 'nhwc')
    throw new OptionError(`ONNX export: inputLayout must be 'nchw' or 'nhwc', got ${JSON.stringify(layout)}`);
  return { opset, layout };
}

export function exportOnnx(model: Model, options: ExportOnnxOptions = {}): Uint8Array {
  const { opset, layout } = checkOptions(options);
  const fold = options.int8 ? true : (options.foldBatchNorm ?? true);
  const inputName = options.inputName ?? 'input';
  const outputName = options.outputName ?? 'output';
  const graph = exportGraph(model, fold, options.int8);
  const g = new OnnxGraphBuilder(model.name, {
    opset,
    docString:
      `${model.name} exported by xception; input ${layout.toUpperCase()} float32, batch normalization ${fold ? 'folded' : 'kept'}` +
      (options.int8 ? `; int8 QDQ (calibration: ${options.int8.method} on ${options.int8.images} images)` : '') +
      (options.description ? `. ${options.description}` : ''),
  });
  const e = new OnnxEmitter(g, fold, [inputName, outputName]);
  if (options.int8) e.qdq = new QdqWriter(options.int8);
  emitInput(e, graph, layout, inputName);
  for (const n of graph.nodes) {
    if (n.op !== 'input') e.names.set(n, emitNode(e, n));
    const q = e.qdq?.quant(valueKey(n));
    if (q) e.names.set(n, e.qdq!.value(e, e.names.get(n)!, q));
  }
  emitOutput(e, graph, layout, outputName);
  return g.toBytes();
}
