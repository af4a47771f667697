/**
 * The QDQ part of the ONNX export (onnx-model.ts with `int8`): the quantized model as standard
 * QuantizeLinear / DequantizeLinear pairs that ONNX Runtime fuses into its own int8 kernels.
 *   - Every graph value with a scale in the calibration is stored quantized: its tensor is followed
 *     by QuantizeLinear → DequantizeLinear (per-tensor scale, zero point 0, uint8 where unsigned),
 *     and its readers read the dequantized tensor — the rule of the simulated int8 executor
 *     (infer/simulate-int8.ts).
 *   - An int8 convolution or dense node reads its weights through DequantizeLinear of an int8
 *     initializer with per-output-channel scales (axis 0 of OIHW, axis 1 of a [in, units] matrix)
 *     and its bias through DequantizeLinear of int32 at scale scaleIn·scaleW[c] (ONNX Runtime's
 *     QDQ convolution wants it so; the contract's bias is that int32 one: quant-types.ts int32Bias).
 * Differences from the simulation (before the contract took the int32 bias, ORT and simulateInt8
 * agreed on 99.7% of top-1 on Fashion-MNIST Xceptions, 10,000 or 2,000 test images, and the int32
 * bias was the largest part of the difference; a simulation mimicking all of these, on 100%):
 *   - ORT's requantization and QuantizeLinear compute in fp32 (scaleIn·scaleW/scaleOut, x/scale),
 *     the contract in float64; a convolution with a residual sum is not fused by ORT (Conv → Add →
 *     QuantizeLinear) and runs in fp32 on the dequantized values: rare ties only.
 */
import type { ConvNode, DenseNode } from '../infer/graph.js';
import type { Int8Calibration, ValueQuant } from '../infer/quant-types.js';
import { int32Bias, valueKey } from '../infer/quant-types.js';
import { quantizedKernel } from '../infer/simulate-int8.js';
import type { OnnxEmitter } from './onnx-model.js';
import { kerasConvKernelToOnnx } from './onnx.js';

/** What the emitter needs to write QDQ: the calibration. */
export class QdqWriter {
  constructor(readonly calibration: Int8Calibration) {}

  quant(key: string): ValueQuant | undefined {
    return Object.hasOwn(this.calibration.values, key) ? this.calibration.values[key] : undefined;
  }

  isInt8(n: ConvNode | DenseNode): boolean {
    return !Object.hasOwn(this.calibration.fp32Nodes, valueKey(n));
  }

  /** `tensor` stored quantized: QuantizeLinear → DequantizeLinear; returns the dequantized tensor. */
  value(e: OnnxEmitter, tensor: string, q: ValueQuant): string {
    const scale = e.constant(`${tensor}/scale`, [], Float32Array.of(q.scale));
    const zero = e.unique(`${tensor}/zero_point`);
    e.g.addIntInitializer(zero, [], q.unsigned ? new Uint8Array(1) : new Int8Array(1));
    const quantized = e.node('QuantizeLinear', [tensor, scale, zero], e.unique(`${tensor}/quantized`));
    return e.node('DequantizeLinear', [quantized, scale, zero], e.unique(`${tensor}/dequantized`));
  }

  /** An int8 node's weight (and bias) inputs: DequantizeLinear of int8 (int32) initializers. */
  weights(e: OnnxEmitter, n: ConvNode | DenseNode, base: string, inputScale: number): { kernel: string; bias: string | null } {
    const { q, scales, bias } = quantizedKernel(n);
    const outC = scales.length;
    let shape: number[];
    let data: Int8Array;
    if (n.op === 'conv') {
      const k = kerasConvKernelToOnnx(Float32Array.from(q), n.kernelShape);
      shape = k.shape;
      data = Int8Array.from(k.data);
    } else {
      shape = [...n.kernelShape];
      data = q;
    }
    const axis = n.op === 'conv' ? 0 : 1;
    const kernel = this.dequantize(e, `${base}/W`, shape, data, scales, axis);
    if (!bias) return { kernel, bias: null };
    const qb = int32Bias(bias, scales, inputScale);
    // An int32 bias out of range (scales near 0): the fp32 bias, as the contract keeps it then.
    if (!qb) return { kernel, bias: e.constant(`${base}/B`, [outC], bias) };
    return { kernel, bias: this.dequantize(e, `${base}/B`, [outC], qb.q, qb.scales, 0) };
  }

  private dequantize(
    e: OnnxEmitter,
    base: string,
    shape: number[],
    data: Int8Array | Int32Array,
    scales: Float32Array,
    axis: number,
  ): string {
    const q = e.unique(`${base}/quantized`);
    e.g.addIntInitializer(q, shape, data);
    const scale = e.constant(`${base}/scale`, [scales.length], scales);
    const zero = e.unique(`${base}/zero_point`);
    e.g.addIntInitializer(zero, [scales.length], data instanceof Int8Array ? new Int8Array(scales.length) : new Int32Array(scales.length));
    return e.node('DequantizeLinear', [q, scale, zero], e.unique(base), { axis });
  }
}
