/**
 * ONNX export of any functional model the library builds (Xception and its research variants,
 * Inception V3), as a standard opset-13+ graph of Conv, BatchNormalization, pooling, Gemm, …
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
 */
import { OptionError } from '../core/errors.js';
import type { Layer } from '../nn/layer.js';
import type { Model } from '../nn/model.js';
import { Conv2D, DepthwiseConv2D, SeparableConv2D } from '../nn/layers/convolutional.js';
import { Activation, Dense, Dropout, Flatten, InputLayer } from '../nn/layers/core.js';
import { Add, Concatenate } from '../nn/layers/merge.js';
import { BatchNormalization } from '../nn/layers/normalization.js';
import { AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D } from '../nn/layers/pooling.js';
import { OnnxGraphError } from './errors.js';
import { attr, kerasConvKernelToOnnx, kerasDepthwiseKernelToOnnx, OnnxGraphBuilder, tfSamePads, type OnnxAttributeValue } from './onnx.js';

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
}

export const ONNX_MIN_OPSET = 13;
export const ONNX_MAX_OPSET = 21;

/** A convolution about to be emitted, whose weights a following BN may still rescale. */
interface ConvSpec {
  weight: Float32Array;
  /** ONNX weight shape [out, in/group, kh, kw]. */
  shape: number[];
  bias: Float32Array | null;
  attrs: Record<string, number | number[]>;
}

export function exportOnnx(model: Model, options: ExportOnnxOptions = {}): Uint8Array {
  const opset = options.opset ?? ONNX_MIN_OPSET;
  if (!Number.isInteger(opset) || opset < ONNX_MIN_OPSET || opset > ONNX_MAX_OPSET) {
    throw new OptionError(`ONNX export: opset must be an integer from ${ONNX_MIN_OPSET} to ${ONNX_MAX_OPSET}, got ${opset}`);
  }
  const layout = options.inputLayout ?? 'nchw';
  if (layout !== 'nchw' && layout !== 'nhwc') throw new OptionError(`ONNX export: inputLayout must be 'nchw' or 'nhwc', got ${JSON.stringify(layout)}`);
  const fold = options.foldBatchNorm ?? true;
  const inputName = options.inputName ?? 'input';
  const outputName = options.outputName ?? 'output';
  const g = new OnnxGraphBuilder(model.name, {
    opset,
    docString: `${model.name} exported by xception; input ${layout.toUpperCase()} float32, batch normalization ${fold ? 'folded' : 'kept'}` +
      (options.description ? `. ${options.description}` : ''),
  });

  // Consumers per layer, to know when a BN may be folded into the convolution before it.
  const consumers = new Map<Layer, Layer[]>();
  for (const l of model.executionOrder) for (const s of l.inbound ?? []) consumers.set(s.layer, [...(consumers.get(s.layer) ?? []), l]);
  const foldTarget = new Map<Layer, BatchNormalization>(); // conv layer → the BN folded into it
  if (fold) {
    for (const l of model.executionOrder) {
      if (!(l instanceof BatchNormalization) || l.output!.shape.length !== 3) continue;
      const src = l.inbound![0]!.layer;
      const isConv = src instanceof Conv2D || src instanceof DepthwiseConv2D || src instanceof SeparableConv2D;
      if (isConv && src.activation === 'linear' && consumers.get(src)?.length === 1 && src !== model.output.layer) foldTarget.set(src, l);
    }
  }

  /** ONNX tensor name of each layer's output. */
  const names = new Map<Layer, string>();
  const usedNames = new Set<string>([inputName, outputName]);
  const unique = (base: string) => {
    let n = base;
    for (let i = 1; usedNames.has(n); i++) n = `${base}_${i}`;
    usedNames.add(n);
    return n;
  };
  const constant = (base: string, shape: number[], data: Float32Array) => {
    const n = unique(base);
    g.addInitializer(n, shape, data);
    return n;
  };
  const node = (op: string, inputs: string[], outName: string, attrs: Record<string, OnnxAttributeValue> = {}) => {
    g.addNode(op, inputs, [outName], attrs, unique(`${outName}/${op}`));
    return outName;
  };

  const emitConv = (layer: Layer, x: string, spec: ConvSpec, out: string, suffix: string) => {
    const w = constant(`${layer.name}/${suffix}/W`, spec.shape, spec.weight);
    const inputs = [x, w];
    if (spec.bias) inputs.push(constant(`${layer.name}/${suffix}/B`, [spec.shape[0]!], spec.bias));
    return node('Conv', inputs, out, spec.attrs);
  };

  /** Conv attributes for an NCHW input of spatial size hw (TensorFlow padding made explicit). */
  const convAttrs = (hw: [number, number], k: [number, number], strides: [number, number], dil: [number, number], padding: 'same' | 'valid', group: number) => ({
    kernel_shape: [...k],
    strides: [...strides],
    dilations: [...dil],
    pads: padding === 'same' ? tfSamePads(hw, k, strides, dil) : [0, 0, 0, 0],
    group,
  });

  /** The last convolution of a layer, rescaled by a BN folded into it. */
  const foldInto = (layer: Layer, spec: ConvSpec): ConvSpec => {
    const bn = foldTarget.get(layer);
    if (!bn) return spec;
    const { scale, shift } = bnAffine(bn);
    const out = spec.shape[0]!;
    const per = spec.weight.length / out;
    const weight = new Float32Array(spec.weight.length);
    for (let o = 0; o < out; o++) for (let i = 0; i < per; i++) weight[o * per + i] = spec.weight[o * per + i]! * scale[o]!;
    const bias = new Float32Array(out);
    for (let o = 0; o < out; o++) bias[o] = (spec.bias ? spec.bias[o]! : 0) * scale[o]! + shift[o]!;
    return { ...spec, weight, bias };
  };

  const activationNode = (name: string, x: string, rank: number, out: string): string => {
    switch (name) {
      case 'linear': return x;
      case 'relu': return node('Relu', [x], out);
      case 'elu': return node('Elu', [x], out, { alpha: attr.float(1) });
      // Keras softmax is over the last axis: channels, which is axis 1 of an NCHW tensor.
      case 'softmax': return node('Softmax', [x], out, { axis: rank === 4 ? 1 : -1 });
      default: throw new OnnxGraphError(`ONNX export: activation '${name}' is not supported`);
    }
  };

  const exportable = new Set(['InputLayer', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'BatchNormalization', 'Activation', 'MaxPooling2D',
    'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Dense', 'Dropout', 'Add', 'Concatenate', 'Flatten']);
  for (const l of model.executionOrder) {
    if (!exportable.has(l.className)) throw new OnnxGraphError(`ONNX export: layer '${l.name}' of type ${l.className} is not supported`);
  }

  const inShape = model.inputShape;
  if (inShape.length !== 3) throw new OnnxGraphError(`ONNX export: the model input must be [height, width, channels], got [${inShape.join(', ')}]`);
  const [H, W, C] = inShape as [number, number, number];
  g.addInput(inputName, layout === 'nchw' ? ['batch', C, H, W] : ['batch', H, W, C]);

  for (const layer of model.executionOrder) {
    const inNames = (layer.inbound ?? []).map((s) => names.get(s.layer)!);
    const x = inNames[0]!;
    const inShape3 = (layer.inbound?.[0]?.shape ?? []) as number[];
    const hw = [inShape3[0]!, inShape3[1]!] as [number, number];
    const rank = layer.output!.shape.length + 1;
    // The layer's result is named after the layer (intermediates get suffixes).
    const result = unique(layer.name);
    let y: string;

    if (layer instanceof InputLayer) {
      y = layout === 'nchw' ? inputName : node('Transpose', [inputName], unique(`${inputName}/nchw`), { perm: [0, 3, 1, 2] });
    } else if (layer instanceof Conv2D) {
      const k = kerasConvKernelToOnnx(layer.kernel.value.data(), layer.kernel.shape);
      const spec = foldInto(layer, { weight: k.data, shape: k.shape, bias: layer.bias ? layer.bias.value.data() : null,
        attrs: convAttrs(hw, layer.kernelSize, layer.strides, layer.dilationRate, layer.padding, layer.groups) });
      y = withActivation(layer.activation, rank, result, (o) => emitConv(layer, x, spec, o, 'conv'));
    } else if (layer instanceof DepthwiseConv2D) {
      const k = kerasDepthwiseKernelToOnnx(layer.depthwiseKernel.value.data(), layer.depthwiseKernel.shape);
      const spec = foldInto(layer, { weight: k.data, shape: k.shape, bias: layer.bias ? layer.bias.value.data() : null,
        attrs: convAttrs(hw, layer.kernelSize, layer.strides, layer.dilationRate, layer.padding, k.group) });
      y = withActivation(layer.activation, rank, result, (o) => emitConv(layer, x, spec, o, 'depthwise'));
    } else if (layer instanceof SeparableConv2D) {
      y = withActivation(layer.activation, rank, result, (o) => emitSeparable(layer, x, hw, o));
    } else if (layer instanceof BatchNormalization) {
      const src = layer.inbound![0]!.layer;
      if (foldTarget.get(src) === layer) {
        y = x; // already inside the convolution's weights
      } else if (!fold) {
        const c = layer.movingMean.shape[0]!;
        const gamma = layer.gamma ? layer.gamma.value.data() : new Float32Array(c).fill(1);
        const beta = layer.beta ? layer.beta.value.data() : new Float32Array(c);
        y = node('BatchNormalization', [x,
          constant(`${layer.name}/gamma`, [c], gamma), constant(`${layer.name}/beta`, [c], beta),
          constant(`${layer.name}/moving_mean`, [c], layer.movingMean.value.data()),
          constant(`${layer.name}/moving_variance`, [c], layer.movingVariance.value.data())],
        result, { epsilon: attr.float(layer.epsilon) });
      } else {
        const { scale, shift } = bnAffine(layer);
        const bshape = rank === 4 ? [scale.length, 1, 1] : [scale.length];
        const scaled = node('Mul', [x, constant(`${layer.name}/scale`, bshape, scale)], unique(`${layer.name}/scaled`));
        y = node('Add', [scaled, constant(`${layer.name}/shift`, bshape, shift)], result);
      }
    } else if (layer instanceof Activation) {
      y = activationNode(layer.activation, x, rank, result);
    } else if (layer instanceof MaxPooling2D || layer instanceof AveragePooling2D) {
      const attrs: Record<string, number | number[]> = {
        kernel_shape: [...layer.poolSize], strides: [...layer.strides],
        pads: layer.padding === 'same' ? tfSamePads(hw, layer.poolSize, layer.strides) : [0, 0, 0, 0],
      };
      // TensorFlow's average excludes the padding from the count.
      if (layer instanceof AveragePooling2D) attrs['count_include_pad'] = 0;
      y = node(layer instanceof MaxPooling2D ? 'MaxPool' : 'AveragePool', [x], result, attrs);
    } else if (layer instanceof GlobalAveragePooling2D || layer instanceof GlobalMaxPooling2D) {
      const pooled = node(layer instanceof GlobalAveragePooling2D ? 'GlobalAveragePool' : 'GlobalMaxPool', [x], unique(`${layer.name}/nc11`));
      y = node('Flatten', [pooled], result, { axis: 1 });
    } else if (layer instanceof Dense) {
      const [fin, units] = layer.kernel.shape as [number, number];
      const kernel = constant(`${layer.name}/kernel`, [fin, units], layer.kernel.value.data());
      y = withActivation(layer.activation, 2, result, (o) => layer.bias
        ? node('Gemm', [x, kernel, constant(`${layer.name}/bias`, [units], layer.bias.value.data())], o, { alpha: attr.float(1), beta: attr.float(1) })
        : node('MatMul', [x, kernel], o));
    } else if (layer instanceof Dropout) {
      y = x; // inference
    } else if (layer instanceof Add) {
      y = inNames.length === 2 ? node('Add', inNames, result) : node('Sum', inNames, result);
    } else if (layer instanceof Concatenate) {
      // Keras concatenates on the last axis: channels, axis 1 in NCHW (and of [batch, features]).
      y = node('Concat', inNames, result, { axis: 1 });
    } else if (layer instanceof Flatten) {
      // Keras flattens NHWC in (h, w, c) order; the Dense after it expects that order.
      const src = layer.inbound![0]!.shape.length === 3 ? node('Transpose', [x], unique(`${layer.name}/nhwc`), { perm: [0, 2, 3, 1] }) : x;
      y = node('Flatten', [src], result, { axis: 1 });
    } else {
      throw new OnnxGraphError(`ONNX export: layer '${layer.name}' of type ${layer.className} is not supported`);
    }
    names.set(layer, y);
  }

  // The model output: 4-D outputs return to the input's layout.
  const last = names.get(model.output.layer)!;
  const outShape = model.outputShape;
  if (outShape.length === 3) {
    const [oh, ow, oc] = outShape as [number, number, number];
    if (layout === 'nhwc') node('Transpose', [last], outputName, { perm: [0, 2, 3, 1] });
    else node('Identity', [last], outputName);
    g.addOutput(outputName, layout === 'nhwc' ? ['batch', oh, ow, oc] : ['batch', oc, oh, ow]);
  } else {
    node('Identity', [last], outputName);
    g.addOutput(outputName, ['batch', ...outShape]);
  }
  return g.toBytes();

  /**
   * Runs `emit` to produce the linear result, then the activation; the final tensor is named
   * `result` (the layer's name) either way.
   */
  function withActivation(act: string, rank: number, result: string, emit: (out: string) => string): string {
    if (act === 'linear') return emit(result);
    const linear = emit(unique(`${result}/linear`));
    return activationNode(act, linear, rank, result);
  }

  /** SeparableConv2D as two ONNX Convs (spatial grouped/depthwise, pointwise 1×1) in its order. */
  function emitSeparable(layer: SeparableConv2D, x: string, hw: [number, number], out: string): string {
    const spatialData = layer.spatialKernel.value.data();
    const spatialShape = layer.spatialKernel.shape;
    const depthwise = layer.spatialKernel.weightName === 'depthwise_kernel';
    const spatialOnnx = depthwise
      ? kerasDepthwiseKernelToOnnx(spatialData, spatialShape)
      : { ...kerasConvKernelToOnnx(spatialData, spatialShape), group: spatialShape[3]! / spatialShape[2]! };
    const spatialHW: [number, number] = hw; // the pointwise 1×1 conv keeps the spatial size
    const spatialAttrs = convAttrs(spatialHW, layer.kernelSize, layer.strides, layer.dilationRate, layer.padding, spatialOnnx.group);
    const pw = kerasConvKernelToOnnx(layer.pointwiseKernel.value.data(), layer.pointwiseKernel.shape);
    const pwAttrs = { kernel_shape: [1, 1], strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0], group: 1 };
    const bias = layer.bias ? layer.bias.value.data() : null;
    const between = (t: string) =>
      layer.intermediateActivation === 'none' ? t : activationNode(layer.intermediateActivation, t, 4, unique(`${layer.name}/${layer.intermediateActivation}`));
    if (layer.order === 'depthwise-first') {
      const s = emitConv(layer, x, { weight: spatialOnnx.data, shape: spatialOnnx.shape, bias: null, attrs: spatialAttrs }, unique(`${layer.name}/spatial`), depthwise ? 'depthwise' : 'spatial');
      const last = foldInto(layer, { weight: pw.data, shape: pw.shape, bias, attrs: pwAttrs });
      return emitConv(layer, between(s), last, out, 'pointwise');
    }
    const p = emitConv(layer, x, { weight: pw.data, shape: pw.shape, bias: null, attrs: pwAttrs }, unique(`${layer.name}/pointwise`), 'pointwise');
    const last = foldInto(layer, { weight: spatialOnnx.data, shape: spatialOnnx.shape, bias, attrs: spatialAttrs });
    return emitConv(layer, between(p), last, out, depthwise ? 'depthwise' : 'spatial');
  }
}

/** Inference-mode BN as y = x·scale + shift per channel (computed in float64, stored float32). */
function bnAffine(bn: BatchNormalization): { scale: Float32Array; shift: Float32Array } {
  const mean = bn.movingMean.value.data();
  const variance = bn.movingVariance.value.data();
  const c = mean.length;
  const gamma = bn.gamma ? bn.gamma.value.data() : null;
  const beta = bn.beta ? bn.beta.value.data() : null;
  const scale = new Float32Array(c);
  const shift = new Float32Array(c);
  for (let i = 0; i < c; i++) {
    const s = (gamma ? gamma[i]! : 1) / Math.sqrt(variance[i]! + bn.epsilon);
    scale[i] = s;
    shift[i] = (beta ? beta[i]! : 0) - mean[i]! * s;
  }
  return { scale, shift };
}
