/**
 * A plain-loop fake-quantization reference for the int8 plan tests, independent of the plan: it runs
 * the fused inference graph node by node in float64 on NHWC arrays. With a calibration, a value
 * with a ValueQuant is replaced by scale · q(value) after its node, and a convolution or dense node
 * that qualifies for int8 (the rule of src/infer/int8-plan.ts, restated here) uses its per-channel
 * quantized kernel and its bias rounded to whole accumulator steps.
 * Without one it gives every node's fp32 value, from which minmaxCalibration makes test calibrations.
 */
import { fuseGraph } from '../../src/infer/fuse.js';
import { convWeightRecipes, lowerModel, type ConvNode, type DenseNode, type GraphNode } from '../../src/infer/graph.js';
import { type Int8Calibration, type ValueQuant, quantizeValue, valueKey, weightScales } from '../../src/infer/quant-types.js';
import type { Model } from '../../src/nn/model.js';

type Arr = Float64Array;

/** Conv (grouped, dilated, padded) on NHWC [b, h, w, c] with an HWIO [kh, kw, c/g, o] kernel. */
function conv(x: Arr, b: number, n: ConvNode, kernel: Float32Array, bias: Float32Array | null): Arr {
  const g = n.geometry;
  const inPer = g.inC / g.groups,
    outPer = g.outC / g.groups;
  const y = new Float64Array(b * g.outH * g.outW * g.outC);
  for (let i = 0; i < b; i++)
    for (let oy = 0; oy < g.outH; oy++)
      for (let ox = 0; ox < g.outW; ox++)
        for (let o = 0; o < g.outC; o++) {
          const gi = Math.floor(o / outPer);
          let s = bias ? bias[o]! : 0;
          for (let ky = 0; ky < g.kH; ky++) {
            const iy = oy * g.sH - g.padT + ky * g.dH;
            if (iy < 0 || iy >= g.inH) continue;
            for (let kx = 0; kx < g.kW; kx++) {
              const ix = ox * g.sW - g.padL + kx * g.dW;
              if (ix < 0 || ix >= g.inW) continue;
              const xb = ((i * g.inH + iy) * g.inW + ix) * g.inC + gi * inPer;
              const kb = (ky * g.kW + kx) * inPer * g.outC + o;
              for (let c = 0; c < inPer; c++) s += x[xb + c]! * kernel[kb + c * g.outC]!;
            }
          }
          y[((i * g.outH + oy) * g.outW + ox) * g.outC + o] = s;
        }
  return y;
}

/** The kernel as its int8 plan uses it: per output channel, scale · q. */
export function fakeQuantKernel(kernel: Float32Array, outC: number): Float32Array {
  const s = weightScales(kernel, outC);
  return kernel.map((w, i) => s[i % outC]! * quantizeValue(w, { scale: s[i % outC]!, unsigned: false }));
}

/**
 * The bias as an int8 node adds it: in whole steps of scaleIn · scaleW[c] (fp32 products), halves
 * rounded up — the int32 bias of ONNX's QDQ form — unless a channel's step count is no int32.
 */
export function int32RoundedBias(bias: Float32Array, kernel: Float32Array, outC: number, inScale: number): Float32Array {
  const s = weightScales(kernel, outC);
  const steps = Array.from(bias, (v, c) => Math.round(v / Math.fround(inScale * s[c]!)));
  if (steps.some((k) => !Number.isFinite(k) || Math.abs(k) > 2 ** 31 - 1)) return bias;
  return Float32Array.from(steps, (k, c) => k * Math.fround(inScale * s[c]!));
}

function pool(
  x: Arr,
  b: number,
  inShape: number[],
  outShape: number[],
  alg: 'max' | 'avg',
  w: { winH: number; winW: number; sH: number; sW: number; padT: number; padL: number },
): Arr {
  const [ih, iw, c] = inShape as [number, number, number];
  const [oh, ow] = outShape as [number, number];
  const y = new Float64Array(b * oh * ow * c);
  for (let i = 0; i < b; i++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let ch = 0; ch < c; ch++) {
          let m = -Infinity,
            s = 0,
            k = 0;
          for (let ky = 0; ky < w.winH; ky++)
            for (let kx = 0; kx < w.winW; kx++) {
              const iy = oy * w.sH - w.padT + ky,
                ix = ox * w.sW - w.padL + kx;
              if (iy < 0 || iy >= ih || ix < 0 || ix >= iw) continue;
              const v = x[((i * ih + iy) * iw + ix) * c + ch]!;
              m = Math.max(m, v);
              s += v;
              k++;
            }
          y[((i * oh + oy) * ow + ox) * c + ch] = alg === 'max' ? m : s / k;
        }
  return y;
}

const perChannel = (x: Arr, c: number, f: (v: number, ch: number) => number): Arr => x.map((v, i) => f(v, i % c));

function dense(x: Arr, b: number, kernel: Float32Array, units: number, bias: Float32Array | null): Arr {
  const features = x.length / b;
  const y = new Float64Array(b * units);
  for (let i = 0; i < b; i++)
    for (let u = 0; u < units; u++) {
      let s = bias ? bias[u]! : 0;
      for (let f = 0; f < features; f++) s += x[i * features + f]! * kernel[f * units + u]!;
      y[i * units + u] = s;
    }
  return y;
}

function softmax(x: Arr, c: number): Arr {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length; r += c) {
    let m = -Infinity;
    for (let j = 0; j < c; j++) m = Math.max(m, x[r + j]!);
    let s = 0;
    for (let j = 0; j < c; j++) s += y[r + j] = Math.exp(x[r + j]! - m);
    for (let j = 0; j < c; j++) y[r + j]! /= s;
  }
  return y;
}

const act = (alg: 'relu' | 'elu', alpha: number) => (v: number) => (v > 0 ? v : alg === 'relu' ? 0 : alpha * (Math.exp(v) - 1));

export interface ReferenceRun {
  output: Float64Array;
  /** Every value by its key (after fake quantization when calibrated). */
  values: Map<string, Float64Array>;
  /** Keys of the convolution and dense nodes that ran in int8. */
  int8Nodes: string[];
}

/** Runs `model` on NHWC `x` (batch `b`) as the int8 plan would with `calibration` (or in fp32 without one). */
export function referenceRun(
  model: Model,
  x: Float32Array,
  b: number,
  o: { logits: boolean; calibration?: Int8Calibration },
): ReferenceRun {
  const g = lowerModel(model, { inputShape: model.inputShape, logits: o.logits, batch: b });
  fuseGraph(g);
  const val = new Map<GraphNode, Arr>();
  const values = new Map<string, Float64Array>();
  const int8Nodes: string[] = [];
  const through = (n: GraphNode): GraphNode => (n.op === 'flatten' ? through(n.inputs[0]!) : n);
  const quant = (n: GraphNode): ValueQuant | null => o.calibration?.values[valueKey(through(n))] ?? null;
  const runsInt8 = (n: ConvNode | DenseNode) =>
    o.calibration !== undefined &&
    !(valueKey(n) in o.calibration.fp32Nodes) &&
    quant(n.inputs[0]!) !== null &&
    quant(n) !== null &&
    (n.op === 'dense' || n.sumInto === null || quant(n.sumInto) !== null);
  for (const n of g.nodes) {
    const ins = n.inputs.map((i) => val.get(i)!);
    let y: Arr;
    switch (n.op) {
      case 'input':
        y = Float64Array.from(x);
        break;
      case 'flatten':
        y = ins[0]!;
        break;
      case 'conv': {
        const w = convWeightRecipes(n);
        const q8 = runsInt8(n);
        if (q8) int8Nodes.push(valueKey(n));
        const raw = w.kernel();
        const kernel = q8 ? fakeQuantKernel(raw, n.geometry.outC) : raw;
        const bias = w.bias ? w.bias() : null;
        const inScale = quant(n.inputs[0]!)?.scale ?? 1;
        y = conv(ins[0]!, b, n, kernel, bias && q8 ? int32RoundedBias(bias, raw, n.geometry.outC, inScale) : bias);
        for (const p of n.posts) {
          if (p.kind === 'sum') {
            const s = val.get(n.sumInto!)!;
            y = y.map((v, i) => v + s[i]!);
          } else y = y.map(act(p.alg, p.alpha));
        }
        break;
      }
      case 'eltwise':
        y = ins[0]!.map(act(n.alg, n.alpha));
        break;
      case 'pool':
        y = pool(ins[0]!, b, n.inputs[0]!.shape, n.shape, n.alg, n.window);
        break;
      case 'gpool': {
        const [h, w, c] = n.inputs[0]!.shape as [number, number, number];
        y = pool(ins[0]!, b, [h, w, c], [1, 1], n.alg, { winH: h, winW: w, sH: 1, sW: 1, padT: 0, padL: 0 });
        break;
      }
      case 'add':
        y = ins[0]!.map((v, i) => ins.reduce((s, a, k) => (k === 0 ? s : s + a[i]!), v));
        break;
      case 'dense': {
        const q8 = runsInt8(n);
        if (q8) int8Nodes.push(valueKey(n));
        const raw = n.kernel();
        const kernel = q8 ? fakeQuantKernel(raw, n.units) : raw;
        const bias = n.bias ? n.bias() : null;
        const inScale = quant(n.inputs[0]!)?.scale ?? 1;
        y = dense(ins[0]!, b, kernel, n.units, bias && q8 ? int32RoundedBias(bias, raw, n.units, inScale) : bias);
        for (const p of n.posts) if (p.kind === 'eltwise') y = y.map(act(p.alg, p.alpha));
        break;
      }
      case 'softmax':
        y = softmax(ins[0]!, n.shape[n.shape.length - 1]!);
        break;
      case 'bn': {
        const [gm, bt, mean, vr] = [n.gamma(), n.beta(), n.mean(), n.variance()];
        y = perChannel(ins[0]!, mean.length, (v, c) => ((v - mean[c]!) / Math.sqrt(vr[c]! + n.epsilon)) * gm[c]! + bt[c]!);
        break;
      }
      default:
        throw new Error(`reference: no rule for '${n.op}'`);
    }
    const q = n.op === 'flatten' ? null : quant(n);
    if (q) y = y.map((v) => q.scale * quantizeValue(v, q));
    val.set(n, y);
    if (n.op !== 'flatten') values.set(valueKey(n), y);
  }
  return { output: val.get(g.output)!, values, int8Nodes };
}

/** Min–max scales over every value of an fp32 reference run (unsigned where a value is never negative). */
export function minmaxCalibration(model: Model, x: Float32Array, b: number, logits: boolean): Int8Calibration {
  const { values } = referenceRun(model, x, b, { logits });
  const out: Int8Calibration = { method: 'minmax', images: b, values: {}, fp32Nodes: {} };
  for (const [key, v] of values) {
    let lo = Infinity,
      hi = 0;
    for (const a of v) {
      lo = Math.min(lo, a);
      hi = Math.max(hi, Math.abs(a));
    }
    if (key.endsWith('/softmax') || hi === 0) continue;
    out.values[key] = { scale: hi / (lo >= 0 ? 255 : 127), unsigned: lo >= 0 };
  }
  return out;
}
