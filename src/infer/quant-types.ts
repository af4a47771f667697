/**
 * The int8 quantization contract shared by the calibrator, the simulated (reference) int8
 * executor, the QDQ ONNX export and the native int8 plan. One definition of each rule:
 *
 * - Symmetric linear quantization, zero point 0: real = scale · q.
 *   Signed values are int8: scales map the calibrated range to ±127 (symmetric), and a value
 *   beyond it saturates to [−128, 127], the int8 range, as ONNX QuantizeLinear and oneDNN's s8
 *   results saturate (weights, scaled by max |w| / 127, never reach −128); a value that is never
 *   negative (the output of a ReLU, a max pool of one, …) may be unsigned: uint8 in [0, 255].
 * - q = x / scale computed in fp32, rounded to nearest, ties to even (what oneDNN's reorders and
 *   ONNX QuantizeLinear do), then saturated to the range.
 * - Weights: per output channel, scale[c] = max |w[·, c]| / 127 of the kernel after batch-norm
 *   folding (a channel of zeros gets scale 1). Biases are ONNX's int32 ones: whole steps of
 *   scaleIn · scaleW[c] (int32Bias), added to the accumulator.
 * - Activations: one scale per graph value (per tensor), found by calibration.
 *
 * Graph values are named by `valueKey` over the lowered and fused graph (graph.ts, fuse.ts), so a
 * calibration made on one run applies to another of the same model and options.
 */
import type { GraphNode } from './graph.js';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export interface ValueQuant {
  scale: number;
  /** uint8 [0, 255] when true, else int8 [−128, 127] (scale from the symmetric range ±127). */
  unsigned: boolean;
}

export interface Int8Calibration {
  method: CalibrationMethod;
  /** Images the ranges were measured on. */
  images: number;
  /** For 'percentile': the percentile of |x| kept (e.g. 99.99). */
  percentile?: number;
  /** Activation quantization per graph value (valueKey). Values missing here stay fp32. */
  values: Record<string, ValueQuant>;
  /** Convolution and dense nodes (valueKey) kept in fp32, each with the reason (measured loss). */
  fp32Nodes: Record<string, string>;
}

/** The stable name of a node's value: its layer's name and its op (a conv's role). */
export function valueKey(node: GraphNode): string {
  return `${node.layer.name}/${node.op === 'conv' ? node.role : node.op}`;
}

export const INT8_MAX = 127;
/** Where signed values saturate: the int8 range, as ONNX QuantizeLinear and oneDNN do. */
export const INT8_MIN = -128;
export const UINT8_MAX = 255;

/**
 * x / scale in fp32 (as ONNX QuantizeLinear divides), rounded half to even, then clamped to the
 * value's range.
 */
export function quantizeValue(x: number, q: ValueQuant): number {
  const v = Math.fround(x / q.scale);
  const f = Math.floor(v);
  const d = v - f;
  const r = d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
  const lo = q.unsigned ? 0 : INT8_MIN;
  const hi = q.unsigned ? UINT8_MAX : INT8_MAX;
  return r < lo ? lo : r > hi ? hi : r;
}

const INT32_MAX = 2 ** 31 - 1;

/**
 * An int8 node's bias in ONNX's QDQ form: int32 at scale scaleIn·scaleW[c] (their fp32 product),
 * i.e. rounded to a whole accumulator step — what ONNX Runtime's int8 convolutions add. Null when a
 * channel's value is not a finite int32 (a step near 0): the bias then stays fp32.
 */
export function int32Bias(
  bias: Float32Array,
  weightScales: Float32Array,
  inputScale: number,
): { q: Int32Array; scales: Float32Array } | null {
  const scales = Float32Array.from(weightScales, (s) => s * inputScale);
  const q = new Int32Array(bias.length);
  for (let c = 0; c < bias.length; c++) {
    const v = Math.round(bias[c]! / scales[c]!);
    if (!Number.isFinite(v) || Math.abs(v) > INT32_MAX) return null;
    q[c] = v;
  }
  return { q, scales };
}

/** The bias an int8 node adds: its int32 form (int32Bias) dequantized in fp32, or the fp32 bias where it has none. */
export function int8NodeBias(bias: Float32Array, weightScales: Float32Array, inputScale: number): Float32Array {
  const b = int32Bias(bias, weightScales, inputScale);
  return b ? Float32Array.from(b.q, (v, c) => Math.fround(v) * b.scales[c]!) : bias;
}

/** Per-output-channel weight scales of an HWIO (grouped) kernel: [kh, kw, in/groups, out]. */
export function weightScales(kernel: Float32Array, outChannels: number): Float32Array {
  const scales = new Float32Array(outChannels);
  for (let i = 0; i < kernel.length; i++) {
    const c = i % outChannels;
    const a = Math.abs(kernel[i]!);
    if (a > scales[c]!) scales[c] = a;
  }
  for (let c = 0; c < outChannels; c++) scales[c] = scales[c]! > 0 ? scales[c]! / INT8_MAX : 1;
  return scales;
}
