/**
 * Simulated int8: the reference the native int8 plan and the QDQ export are tested against. It
 * runs the int8 graph (interpret.ts) exactly per the contract (quant-types.ts):
 *   - every value with a scale in the calibration is stored quantized: rounded (half to even) and
 *     saturated when produced, whichever node produces it;
 *   - an int8 convolution or dense node (not in fp32Nodes) multiplies the integers of its input by
 *     per-output-channel int8 weights (weightScales of the batch-norm-folded kernel), the sum is
 *     scaled by scaleIn·scaleW[c] in float64 and the bias added — rounded to a whole step of
 *     scaleIn·scaleW[c], the int32 bias of ONNX's QDQ form (int8NodeBias) — then its post-ops (residual
 *     sum, ReLU/ELU) run in float and the result is requantized to its own scale.
 * The integer products are summed by the backend's fp32 convolution: exact while a partial sum
 * stays below 2^24, an approximation of int32 accumulation beyond.
 */
import { getBackend } from '../core/engine.js';
import type { Backend, Handle } from '../core/backend.js';
import type { Model } from '../nn/model.js';
import type { Tensor } from '../core/tensor.js';
import { checkCalibrationFits } from './calibration-check.js';
import { convWeightRecipes, type ConvNode, type DenseNode, type GraphNode } from './graph.js';
import { GraphInterpreter, int8Graph } from './interpret.js';
import { type Int8Calibration, int8NodeBias, quantizeValue, type ValueQuant, valueKey, weightScales } from './quant-types.js';

/** The backend a model's weights live on. */
export function modelBackend(model: Model): Backend {
  return model.weights[0]?.value.backend ?? getBackend();
}

/** round(x / scale) saturated, times scale: the value as int8 storage gives it back. */
export function fakeQuantize(x: Float32Array, q: ValueQuant): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = quantizeValue(x[i]!, q) * q.scale;
  return out;
}

/** An int8 node's weights: the quantized kernel (integers, uploaded), its scales and fp32 bias. */
interface QuantWeights {
  kernel: Handle;
  scales: Float32Array;
  bias: Float32Array | null;
}

/** The int8 weights of a convolution or dense node (kernel HWIO or [in, units]; output channel last). */
export function quantizedKernel(n: ConvNode | DenseNode): { q: Int8Array; scales: Float32Array; bias: Float32Array | null } {
  const r = n.op === 'conv' ? convWeightRecipes(n) : { kernel: n.kernel, bias: n.bias };
  const k = r.kernel();
  const outC = n.op === 'conv' ? n.geometry.outC : n.units;
  const scales = weightScales(k, outC);
  const q = new Int8Array(k.length);
  for (let i = 0; i < k.length; i++) q[i] = quantizeValue(k[i]!, { scale: scales[i % outC]!, unsigned: false });
  return { q, scales, bias: r.bias ? r.bias() : null };
}

export class Int8Simulator {
  readonly graph;
  private readonly interp: GraphInterpreter;
  private readonly weights = new Map<GraphNode, QuantWeights>();

  constructor(
    model: Model,
    readonly calibration: Int8Calibration,
    logits = false,
  ) {
    this.graph = int8Graph(model, logits);
    checkCalibrationFits(this.graph, calibration);
    this.interp = new GraphInterpreter(this.graph, modelBackend(model));
  }

  private quant(n: GraphNode): ValueQuant | undefined {
    const k = valueKey(n);
    return Object.hasOwn(this.calibration.values, k) ? this.calibration.values[k] : undefined;
  }

  private weightsOf(n: ConvNode | DenseNode): QuantWeights {
    let w = this.weights.get(n);
    if (!w) {
      const { q, scales, bias } = quantizedKernel(n);
      w = { kernel: this.interp.backend.upload(Float32Array.from(q)), scales, bias };
      this.weights.set(n, w);
    }
    return w;
  }

  /** An int8 node's result before its post-ops: integer products, rescaled in float64, plus the (int32) bias. */
  private int8Linear(n: ConvNode | DenseNode, x: Float32Array, batch: number): Float32Array | null {
    if (Object.hasOwn(this.calibration.fp32Nodes, valueKey(n))) return null;
    const qin = this.quant(n.inputs[0]!)!;
    const qx = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) qx[i] = quantizeValue(x[i]!, qin);
    const w = this.weightsOf(n);
    const acc = this.interp.linearWith(n, qx, batch, { kernel: w.kernel, bias: null });
    const outC = w.scales.length;
    const bias = w.bias ? int8NodeBias(w.bias, w.scales, qin.scale) : null;
    for (let i = 0; i < acc.length; i++) {
      const c = i % outC;
      acc[i] = acc[i]! * (qin.scale * w.scales[c]!) + (bias ? bias[c]! : 0);
    }
    return acc;
  }

  /** Output for `input` [batch, ...model input] (NHWC, flat). */
  run(input: Float32Array, batch: number): Float32Array {
    return this.interp.run(input, batch, {
      onValue: (n, v) => {
        const q = this.quant(n);
        return q ? fakeQuantize(v, q) : undefined;
      },
      linear: (n, x, b) => this.int8Linear(n, x, b),
    });
  }

  dispose(): void {
    for (const w of this.weights.values()) this.interp.backend.dispose(w.kernel);
    this.weights.clear();
    this.interp.dispose();
  }
}

/** One simulated run (model, calibration, flat NHWC input). */
export function simulateGraph(model: Model, cal: Int8Calibration, input: Float32Array, batch: number, logits: boolean): Float32Array {
  const sim = new Int8Simulator(model, cal, logits);
  try {
    return sim.run(input, batch);
  } finally {
    sim.dispose();
  }
}

export interface SimulateInt8Options {
  /** Images in `input` (default: a Tensor's first dimension, else 1). */
  batch?: number;
  /** Leave out the output softmax (default false). */
  logits?: boolean;
}

/**
 * The simulated int8 output of `model` under `calibration` for `input` (a Tensor [batch, H, W, C]
 * or its flat NHWC data): the reference for the native int8 plan. Throws a CalibrationError when
 * the calibration does not fit the model.
 */
export function simulateInt8(
  model: Model,
  calibration: Int8Calibration,
  input: Tensor | Float32Array,
  o: SimulateInt8Options = {},
): Float32Array {
  const data = input instanceof Float32Array ? input : (input.data() as Float32Array);
  const batch = o.batch ?? (input instanceof Float32Array ? 1 : input.shape[0]!);
  return simulateGraph(model, calibration, data, batch, o.logits ?? false);
}
