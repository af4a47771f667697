/**
 * Exports a Model (src/nn) to ONNX for inference, through OnnxGraphBuilder.
 *
 * The graph input keeps the library's public layout, NHWC ([batch, H, W, C], batch dynamic); one
 * Transpose turns it into ONNX's NCHW, every spatial layer runs in NCHW, and a spatial model
 * output is transposed back to NHWC. Kernels are converted as documented in onnx.ts. A Flatten of
 * a feature map transposes to NHWC first so that the flattened order (and hence a following
 * Dense kernel) matches Keras's. Dropout becomes Identity (inference), BatchNormalization uses the
 * moving statistics. A layer kind without an ONNX mapping is an OnnxGraphError naming it.
 */
import type { Layer } from '../nn/layer.js';
import type { Model } from '../nn/model.js';
import { OnnxGraphError } from './errors.js';
import { attr, kerasConvKernelToOnnx, kerasDepthwiseKernelToOnnx, OnnxAttributeValue, OnnxGraphBuilder, OnnxModelOptions, tfSamePads } from './onnx.js';

export interface OnnxExportOptions extends OnnxModelOptions {
  /** Name of the batch dimension (symbolic, default 'batch') or a fixed batch size. */
  batch?: string | number;
  inputName?: string;
  outputName?: string;
}

/** Layer fields the exporter reads (the classes in src/nn/layers expose them). */
interface ConvLike {
  kernelSize: [number, number];
  strides: [number, number];
  dilationRate: [number, number];
  padding: 'same' | 'valid';
  useBias: boolean;
  activation: string;
}

export function modelToOnnx(model: Model, options: OnnxExportOptions = {}): Uint8Array {
  const batch = options.batch ?? 'batch';
  const inputName = options.inputName ?? 'input';
  const outputName = options.outputName ?? 'output';
  const g = new OnnxGraphBuilder(model.name, options);
  const valueOf = new Map<Layer, string>();
  let counter = 0;
  const fresh = (base: string) => `${base}__${++counter}`;

  const inputLayer = model.input.layer;
  const inShape = [...model.input.shape];
  g.addInput(inputName, [batch, ...inShape]);
  if (inShape.length === 3) {
    g.addNode('Transpose', [inputName], [inputLayer.name], { perm: [0, 3, 1, 2] }, `${inputLayer.name}/to_nchw`);
  } else {
    g.addNode('Identity', [inputName], [inputLayer.name], {}, `${inputLayer.name}/identity`);
  }
  valueOf.set(inputLayer, inputLayer.name);

  const weight = (layer: Layer, name: string) => {
    const v = layer.getWeight(name);
    return { shape: [...v.shape], data: v.value.data() as Float32Array };
  };
  const init = (name: string, shape: number[], data: Float32Array) => {
    g.addInitializer(name, shape, data);
    return name;
  };
  /** Applies a Keras activation to `x`, producing `out`. */
  const activate = (layer: Layer, act: string, x: string, out: string, rank: number) => {
    switch (act) {
      case 'linear': g.addNode('Identity', [x], [out], {}, `${layer.name}/linear`); return;
      case 'relu': g.addNode('Relu', [x], [out], {}, `${layer.name}/relu`); return;
      case 'elu': g.addNode('Elu', [x], [out], { alpha: attr.float(1) }, `${layer.name}/elu`); return;
      case 'softmax': g.addNode('Softmax', [x], [out], { axis: rank === 3 ? 1 : -1 }, `${layer.name}/softmax`); return;
      default: throw new OnnxGraphError(`layer "${layer.name}": activation "${act}" has no ONNX mapping here`);
    }
  };
  const pads = (c: { kernelSize: [number, number]; strides: [number, number]; padding: string }, inHW: [number, number], dil: [number, number] = [1, 1]) =>
    c.padding === 'same' ? tfSamePads(inHW, c.kernelSize, c.strides, dil) : [0, 0, 0, 0];
  const conv = (layer: Layer, name: string, x: string, w: { shape: number[]; data: Float32Array }, group: number, c: ConvLike | null, inHW: [number, number], bias: string | null, out: string) => {
    const attrs: Record<string, OnnxAttributeValue> = c
      ? { kernel_shape: c.kernelSize, strides: c.strides, dilations: c.dilationRate, pads: pads(c, inHW, c.dilationRate), group }
      : { kernel_shape: [1, 1], group };
    g.addNode('Conv', bias ? [x, init(`${layer.name}/${name}`, w.shape, w.data), bias] : [x, init(`${layer.name}/${name}`, w.shape, w.data)], [out], attrs, `${layer.name}/${name.replace(/_kernel$/, '')}`);
  };

  for (const layer of model.executionOrder) {
    if (layer === inputLayer) continue;
    const inbound = layer.inbound ?? [];
    const ins = inbound.map((s) => valueOf.get(s.layer)!);
    const inShapes = inbound.map((s) => [...s.shape]);
    const outShape = [...layer.output!.shape];
    const out = layer.name;
    const x = ins[0]!;
    const rank = inShapes[0]?.length ?? 0;
    const hw = (): [number, number] => [inShapes[0]![0]!, inShapes[0]![1]!];
    const l = layer as unknown as Record<string, unknown>;
    switch (layer.className) {
      case 'Conv2D': {
        const c = l as unknown as ConvLike & { groups: number };
        const k = weight(layer, 'kernel');
        const w = kerasConvKernelToOnnx(k.data, k.shape);
        const bias = c.useBias ? init(`${layer.name}/bias`, [outShape[2]!], weight(layer, 'bias').data) : null;
        const y = c.activation === 'linear' ? out : fresh(out);
        conv(layer, 'kernel', x, w, c.groups, c, hw(), bias, y);
        if (y !== out) activate(layer, c.activation, y, out, 3);
        break;
      }
      case 'DepthwiseConv2D': {
        const c = l as unknown as ConvLike;
        const k = weight(layer, 'depthwise_kernel');
        const w = kerasDepthwiseKernelToOnnx(k.data, k.shape);
        const bias = c.useBias ? init(`${layer.name}/bias`, [outShape[2]!], weight(layer, 'bias').data) : null;
        const y = c.activation === 'linear' ? out : fresh(out);
        conv(layer, 'depthwise_kernel', x, w, w.group, c, hw(), bias, y);
        if (y !== out) activate(layer, c.activation, y, out, 3);
        break;
      }
      case 'SeparableConv2D': {
        const c = l as unknown as ConvLike & { order: string; intermediateActivation: string };
        const depthwiseLayout = layer.weights.some((v) => v.weightName === 'depthwise_kernel');
        const sk = weight(layer, depthwiseLayout ? 'depthwise_kernel' : 'spatial_kernel');
        // Grouped layout [kh, kw, C/groups, C]: groups = C / (C/groups).
        const spatialW = depthwiseLayout ? kerasDepthwiseKernelToOnnx(sk.data, sk.shape) : { ...kerasConvKernelToOnnx(sk.data, sk.shape), group: sk.shape[3]! / sk.shape[2]! };
        const pk = weight(layer, 'pointwise_kernel');
        const pointW = kerasConvKernelToOnnx(pk.data, pk.shape);
        const bias = c.useBias ? init(`${layer.name}/bias`, [outShape[2]!], weight(layer, 'bias').data) : null;
        const first = fresh(out);
        const between = c.intermediateActivation === 'none' ? first : fresh(out);
        const y = c.activation === 'linear' ? out : fresh(out);
        const spatialName = depthwiseLayout ? 'depthwise_kernel' : 'spatial_kernel';
        if (c.order === 'pointwise-first') {
          conv(layer, 'pointwise_kernel', x, pointW, 1, null, hw(), null, first);
          if (between !== first) activate(layer, c.intermediateActivation, first, between, 3);
          conv(layer, spatialName, between, spatialW, spatialW.group, c, hw(), bias, y);
        } else {
          conv(layer, spatialName, x, spatialW, spatialW.group, c, hw(), null, first);
          if (between !== first) activate(layer, c.intermediateActivation, first, between, 3);
          conv(layer, 'pointwise_kernel', between, pointW, 1, null, hw(), bias, y);
        }
        if (y !== out) activate(layer, c.activation, y, out, 3);
        break;
      }
      case 'BatchNormalization': {
        const c = l as unknown as { epsilon: number; scale: boolean; center: boolean };
        const ch = outShape[outShape.length - 1]!;
        const gamma = c.scale ? weight(layer, 'gamma').data : new Float32Array(ch).fill(1);
        const beta = c.center ? weight(layer, 'beta').data : new Float32Array(ch);
        g.addNode('BatchNormalization', [
          x,
          init(`${layer.name}/gamma`, [ch], gamma),
          init(`${layer.name}/beta`, [ch], beta),
          init(`${layer.name}/moving_mean`, [ch], weight(layer, 'moving_mean').data),
          init(`${layer.name}/moving_variance`, [ch], weight(layer, 'moving_variance').data),
        ], [out], { epsilon: attr.float(c.epsilon) }, `${layer.name}/bn`);
        break;
      }
      case 'Activation':
        activate(layer, String(l.activation), x, out, rank);
        break;
      case 'Dropout':
        g.addNode('Identity', [x], [out], {}, `${layer.name}/identity`);
        break;
      case 'Dense': {
        const c = l as unknown as { useBias: boolean; activation: string };
        const k = weight(layer, 'kernel');
        const gemmIn = [x, init(`${layer.name}/kernel`, k.shape, k.data)];
        if (c.useBias) gemmIn.push(init(`${layer.name}/bias`, [k.shape[1]!], weight(layer, 'bias').data));
        const y = c.activation === 'linear' ? out : fresh(out);
        g.addNode('Gemm', gemmIn, [y], { alpha: attr.float(1), beta: attr.float(1), transA: 0, transB: 0 }, `${layer.name}/gemm`);
        if (y !== out) activate(layer, c.activation, y, out, 1);
        break;
      }
      case 'Flatten': {
        // Keras flattens NHWC (channels fastest); ONNX would flatten NCHW.
        const src = rank === 3 ? fresh(out) : x;
        if (rank === 3) g.addNode('Transpose', [x], [src], { perm: [0, 2, 3, 1] }, `${layer.name}/to_nhwc`);
        g.addNode('Flatten', [src], [out], { axis: 1 }, `${layer.name}/flatten`);
        break;
      }
      case 'Add':
        g.addNode(ins.length === 2 ? 'Add' : 'Sum', ins, [out], {}, `${layer.name}/add`);
        break;
      case 'Concatenate':
        g.addNode('Concat', ins, [out], { axis: rank === 3 ? 1 : -1 }, `${layer.name}/concat`);
        break;
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const c = l as unknown as { poolSize: [number, number]; strides: [number, number]; padding: string };
        const p = pads({ kernelSize: c.poolSize, strides: c.strides, padding: c.padding }, hw());
        // TensorFlow's average pooling divides by the number of real (unpadded) pixels: count_include_pad = 0.
        const attrs: Record<string, OnnxAttributeValue> = layer.className === 'MaxPooling2D'
          ? { kernel_shape: c.poolSize, strides: c.strides, pads: p }
          : { kernel_shape: c.poolSize, strides: c.strides, pads: p, count_include_pad: 0 };
        g.addNode(layer.className === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [x], [out], attrs, `${layer.name}/pool`);
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        const pooled = fresh(out);
        g.addNode(layer.className === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', [x], [pooled], {}, `${layer.name}/pool`);
        g.addNode('Flatten', [pooled], [out], { axis: 1 }, `${layer.name}/flatten`);
        break;
      }
      default:
        throw new OnnxGraphError(`layer "${layer.name}" (${layer.className}) has no ONNX export`);
    }
    valueOf.set(layer, out);
  }

  const last = valueOf.get(model.output.layer)!;
  const outShape = [...model.output.shape];
  if (outShape.length === 3) g.addNode('Transpose', [last], [outputName], { perm: [0, 2, 3, 1] }, 'output/to_nhwc');
  else g.addNode('Identity', [last], [outputName], {}, 'output/identity');
  g.addOutput(outputName, [batch, ...outShape]);
  return g.toBytes();
}
