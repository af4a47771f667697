/**
 * Post-training int8 calibration (the contract is quant-types.ts): run the fp32 graph
 * (interpret.ts) on calibration images, measure every value a convolution or dense node reads or
 * writes, and choose a per-tensor scale for each by one of three methods:
 *   - minmax: the largest |x| seen;
 *   - percentile: the given percentile of |x| (default 99.99), never above minmax;
 *   - entropy: TensorRT's KL-divergence threshold over a 2048-bin histogram of |x|.
 * A value is unsigned (uint8) when the graph makes it never negative (a ReLU's output, a pool of
 * one, …): decided from the graph, not from the data seen, so unseen images cannot break it.
 * Then the stem convolution(s) and the dense classifier are measured one by one: a node whose int8
 * form causes a large share of the output error stays fp32, with the measured figures as reason.
 */
import { OptionError } from '../core/errors.js';
import type { Model } from '../nn/model.js';
import type { GraphNode, InferenceGraph } from './graph.js';
import { GraphInterpreter, int8Graph, readsOf, valueSize } from './interpret.js';
import { type CalibrationMethod, type Int8Calibration, INT8_MAX, UINT8_MAX, type ValueQuant, valueKey } from './quant-types.js';
import { modelBackend, simulateGraph } from './simulate-int8.js';

export const HISTOGRAM_BINS = 2048;
export const DEFAULT_PERCENTILE = 99.99;
/**
 * Measured on a small Xception trained on Fashion-MNIST (83.0% fp32 top-1 on 1,000 test images,
 * 256 calibration images): percentile 83.5% with 98.7% of predictions identical to fp32, minmax
 * 83.1% / 98.9%, entropy 82.9% / 89.4% (its thresholds clip too much here).
 */
export const DEFAULT_METHOD: CalibrationMethod = 'percentile';
/** Images kept from the stream to measure which nodes stay fp32. */
const DECISION_IMAGES = 16;
/** A candidate stays fp32 when int8 there makes more than this share of the output error. */
const FP32_SHARE = 0.25;

export interface CalibrateOptions {
  /** Default 'percentile' (see DEFAULT_METHOD). */
  method?: CalibrationMethod;
  /** For 'percentile' (0 < p ≤ 100). */
  percentile?: number;
  /** Stop after this many images (default: all the source gives). */
  maxImages?: number;
  /** Called after each batch with the images seen so far. */
  onProgress?: (images: number) => void;
  /** Skip the measurement of which nodes stay fp32 (every convolution and dense node is int8). */
  allInt8?: boolean;
}

/** A histogram of |x| over [0, range) that doubles its range (merging bin pairs) as larger values come. */
export class AbsHistogram {
  readonly counts = new Float64Array(HISTOGRAM_BINS);
  range = 0;
  max = 0;
  min = Infinity;
  total = 0;

  add(x: Float32Array): void {
    let hi = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (!Number.isFinite(v)) throw new OptionError('calibration: a value in the network is not finite (NaN or infinite)');
      const a = Math.abs(v);
      if (a > hi) hi = a;
      if (v < this.min) this.min = v;
    }
    if (hi > this.max) this.max = hi;
    if (this.range === 0 && hi > 0) this.range = hi;
    while (hi >= this.range && this.range > 0 && hi > 0) this.grow();
    const perBin = this.range > 0 ? HISTOGRAM_BINS / this.range : 0;
    for (let i = 0; i < x.length; i++) {
      const b = Math.min(HISTOGRAM_BINS - 1, Math.floor(Math.abs(x[i]!) * perBin));
      this.counts[b]! += 1;
    }
    this.total += x.length;
  }

  private grow(): void {
    const c = this.counts;
    for (let i = 0; i < HISTOGRAM_BINS / 2; i++) c[i] = c[2 * i]! + c[2 * i + 1]!;
    c.fill(0, HISTOGRAM_BINS / 2);
    this.range *= 2;
  }

  /** The p-th percentile of |x| (upper edge of its bin), at most the largest |x|. */
  percentile(p: number): number {
    const want = (p / 100) * this.total;
    let seen = 0;
    for (let i = 0; i < HISTOGRAM_BINS; i++) {
      seen += this.counts[i]!;
      if (seen >= want) return Math.min(this.max, ((i + 1) * this.range) / HISTOGRAM_BINS);
    }
    return this.max;
  }

  /** TensorRT's entropy threshold for `levels` quantized bins (128 signed, 256 unsigned). */
  entropyThreshold(levels: number): number {
    const last = this.lastNonEmpty();
    if (this.max === 0 || last < levels) return this.max;
    let best = Infinity;
    let bestI = last + 1;
    for (let i = levels; i <= last + 1; i++) {
      const kl = klDivergence(this.counts, i, levels);
      if (kl < best) {
        best = kl;
        bestI = i;
      }
    }
    return Math.min(this.max, (bestI * this.range) / HISTOGRAM_BINS);
  }

  private lastNonEmpty(): number {
    for (let i = HISTOGRAM_BINS - 1; i >= 0; i--) if (this.counts[i]! > 0) return i;
    return -1;
  }
}

/**
 * KL(P‖Q) for a threshold at bin i: P is the first i bins with the outliers added to the last;
 * Q is those i bins merged into `levels` groups and spread back evenly over each group's non-empty bins.
 */
function klDivergence(counts: Float64Array, i: number, levels: number): number {
  const p = counts.slice(0, i);
  let outliers = 0;
  for (let j = i; j < counts.length; j++) outliers += counts[j]!;
  p[i - 1]! += outliers;
  const q = new Float64Array(i);
  const per = i / levels;
  for (let k = 0; k < levels; k++) {
    const start = Math.floor(k * per);
    const end = k === levels - 1 ? i : Math.floor((k + 1) * per);
    let sum = 0;
    let nonEmpty = 0;
    for (let j = start; j < end; j++) {
      sum += counts[j]!;
      if (counts[j]! > 0) nonEmpty++;
    }
    for (let j = start; j < end; j++) if (counts[j]! > 0) q[j] = sum / nonEmpty;
  }
  let pSum = 0;
  let qSum = 0;
  for (let j = 0; j < i; j++) {
    pSum += p[j]!;
    qSum += q[j]!;
  }
  let kl = 0;
  for (let j = 0; j < i; j++) {
    if (p[j]! === 0) continue;
    // An empty Q bin where P has mass: a small floor instead of an infinite divergence.
    const qj = q[j]! > 0 ? q[j]! / qSum : 1e-12;
    const pj = p[j]! / pSum;
    kl += pj * Math.log(pj / qj);
  }
  return kl;
}

/** Whether the graph makes a node's value never negative (so it may be uint8). */
export function neverNegative(n: GraphNode): boolean {
  switch (n.op) {
    case 'conv':
    case 'dense': {
      const last = n.posts[n.posts.length - 1];
      return last?.kind === 'eltwise' && last.alg === 'relu';
    }
    case 'eltwise':
      return n.alg === 'relu';
    case 'softmax':
      return true;
    case 'pool':
    case 'gpool':
    case 'flatten':
      return neverNegative(n.inputs[0]!);
    case 'add':
    case 'concat':
      return n.inputs.every(neverNegative);
    default:
      return false;
  }
}

/** Convolution and dense nodes: the ones int8 can run. */
export function quantizableNodes(g: InferenceGraph): GraphNode[] {
  return g.nodes.filter((n) => n.op === 'conv' || n.op === 'dense');
}

/** The values int8 nodes read or write (each node once, in graph order). */
export function int8Values(g: InferenceGraph, fp32Nodes: Record<string, string>): GraphNode[] {
  const out = new Set<GraphNode>();
  for (const n of quantizableNodes(g)) {
    if (Object.hasOwn(fp32Nodes, valueKey(n))) continue;
    for (const v of [...readsOf(n), n]) out.add(v);
  }
  return g.nodes.filter((n) => out.has(n));
}

function scaleFor(h: AbsHistogram, unsigned: boolean, method: CalibrationMethod, percentile: number): number {
  const t = method === 'minmax' ? h.max : method === 'percentile' ? h.percentile(percentile) : h.entropyThreshold(unsigned ? 256 : 128);
  // A float32 scale: what oneDNN and ONNX store, so every consumer divides by the same number.
  const s = Math.fround(t / (unsigned ? UINT8_MAX : INT8_MAX));
  return Number.isFinite(s) && s > 0 ? s : 1;
}

function checkOptions(o: CalibrateOptions): { method: CalibrationMethod; percentile: number } {
  const method = o.method ?? DEFAULT_METHOD;
  if (!['minmax', 'percentile', 'entropy'].includes(method)) {
    throw new OptionError(`calibration method must be 'minmax', 'percentile' or 'entropy', got ${JSON.stringify(method)}`);
  }
  const percentile = o.percentile ?? DEFAULT_PERCENTILE;
  if (typeof percentile !== 'number' || !(percentile > 0 && percentile <= 100)) {
    throw new OptionError(`calibration percentile must be a number in (0, 100], got ${percentile}`);
  }
  if (o.maxImages !== undefined && !(Number.isInteger(o.maxImages) && o.maxImages >= 1)) {
    throw new OptionError(`calibration maxImages must be a positive integer, got ${o.maxImages}`);
  }
  return { method, percentile };
}

/** Batches of images (NHWC, flat; each a whole number of the model's images). */
export type CalibrationImages = Iterable<Float32Array> | AsyncIterable<Float32Array>;

interface Observed {
  /** By valueKey. */
  histograms: Map<string, AbsHistogram>;
  images: number;
  kept: Float32Array[];
}

/** Runs the fp32 graph over the images and histograms every value a conv/dense node reads or writes. */
async function observe(model: Model, g: InferenceGraph, images: CalibrationImages, o: CalibrateOptions): Promise<Observed> {
  const watched = new Set(int8Values(g, {}));
  const histograms = new Map([...watched].map((n) => [valueKey(n), new AbsHistogram()]));
  const per = valueSize(g.input);
  const interp = new GraphInterpreter(g, modelBackend(model));
  const kept: Float32Array[] = [];
  let seen = 0;
  try {
    for await (let batch of images) {
      if (batch.length === 0 || batch.length % per !== 0) {
        throw new OptionError(
          `calibration: a batch of ${batch.length} values is not a whole number of [${g.input.shape.join(', ')}] images`,
        );
      }
      const room = (o.maxImages ?? Infinity) - seen;
      if (room <= 0) break;
      if (batch.length / per > room) batch = batch.subarray(0, room * per);
      const n = batch.length / per;
      if (kept.length < DECISION_IMAGES)
        for (let i = 0; i < n && kept.length < DECISION_IMAGES; i++) kept.push(batch.slice(i * per, (i + 1) * per));
      interp.run(batch, n, { onValue: (node, v) => void (watched.has(node) && histograms.get(valueKey(node))!.add(v)) });
      seen += n;
      o.onProgress?.(seen);
    }
  } finally {
    interp.dispose();
  }
  if (seen === 0) throw new OptionError('calibration: no images');
  return { histograms, images: seen, kept };
}

/** Scales for the values int8 nodes use, given which nodes stay fp32. */
function scalesFor(g: InferenceGraph, obs: Observed, fp32Nodes: Record<string, string>, m: CalibrationMethod, p: number) {
  const values: Record<string, ValueQuant> = {};
  for (const n of int8Values(g, fp32Nodes)) {
    const unsigned = neverNegative(n);
    values[valueKey(n)] = { scale: scaleFor(obs.histograms.get(valueKey(n))!, unsigned, m, p), unsigned };
  }
  return values;
}

/** Relative RMS error of simulated int8 logits against fp32 ones. */
function relError(model: Model, cal: Int8Calibration, x: Float32Array, batch: number, fp32: Float32Array): number {
  const y = simulateGraph(model, cal, x, batch, true);
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.length; i++) {
    num += (y[i]! - fp32[i]!) ** 2;
    den += fp32[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** The stem convolutions (reading the image) and the dense nodes: the candidates to stay fp32. */
function fp32Candidates(g: InferenceGraph): GraphNode[] {
  return quantizableNodes(g).filter((n) => n.op === 'dense' || n.inputs[0] === g.input);
}

/** Measures each candidate: int8 everywhere vs the candidate alone in fp32, on the kept images. */
function decideFp32(model: Model, g: InferenceGraph, obs: Observed, base: Int8Calibration): Record<string, string> {
  const batch = obs.kept.length;
  const x = new Float32Array(batch * valueSize(g.input));
  obs.kept.forEach((img, i) => x.set(img, i * img.length));
  const interp = new GraphInterpreter(int8Graph(model, true), modelBackend(model));
  const fp32 = interp.run(x, batch);
  interp.dispose();
  const all = relError(model, base, x, batch, fp32);
  const fp32Nodes: Record<string, string> = {};
  for (const c of fp32Candidates(g)) {
    const key = valueKey(c);
    const trial = { ...base, fp32Nodes: { [key]: 'trial' } };
    trial.values = scalesFor(g, obs, trial.fp32Nodes, base.method, base.percentile ?? DEFAULT_PERCENTILE);
    const without = relError(model, trial, x, batch, fp32);
    if (all > 0 && all - without > FP32_SHARE * all) {
      const pct = (((all - without) / all) * 100).toFixed(0);
      fp32Nodes[key] =
        `int8 here made ${pct}% of the output error (relative RMS of logits ${all.toExponential(2)} vs ` +
        `${without.toExponential(2)} with it fp32, on ${batch} calibration images)`;
    }
  }
  return fp32Nodes;
}

/**
 * Calibrates `model` on `images` (batches of its input, preprocessed as for predict). The graph is
 * int8Graph(model): value keys name its nodes.
 */
export async function calibrate(model: Model, images: CalibrationImages, options: CalibrateOptions = {}): Promise<Int8Calibration> {
  const { method, percentile } = checkOptions(options);
  const g = int8Graph(model);
  const obs = await observe(model, g, images, options);
  const head = { method, images: obs.images, ...(method === 'percentile' ? { percentile } : {}) };
  const base: Int8Calibration = { ...head, values: scalesFor(g, obs, {}, method, percentile), fp32Nodes: {} };
  if (options.allInt8) return base;
  const fp32Nodes = decideFp32(model, g, obs, base);
  return { ...head, values: scalesFor(g, obs, fp32Nodes, method, percentile), fp32Nodes };
}
