/**
 * The parts of the wasm peer benchmark (scripts/wasm-peers.ts, web/bench.js) that run in Node and
 * in the browser alike: no Node built-ins, and TensorFlow.js / onnxruntime-web come in as objects
 * (the page loads them from node_modules as served; Node imports them), so only their types are
 * imported here.
 *
 * Contestants run interleaved — every round times each of them in turn — so all see the same
 * machine state; the report gives each one's median and the median of the rounds' ratios.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type * as TfLayers from '@tensorflow/tfjs-layers';
import type * as OrtWeb from 'onnxruntime-web';

/** TensorFlow.js as the page's globals or Node's imports give it: core plus layers. */
export type Tf = typeof TfCore & typeof TfLayers;
export type Ort = typeof OrtWeb;

/** One implementation under test: `run` does one forward pass and returns its output. */
export interface Contestant {
  name: string;
  /** How it runs (threads, compiled or op by op, …): printed beside its figure. */
  note: string;
  run(): Promise<Float32Array>;
}

export interface Timed {
  name: string;
  note: string;
  medianMs: number;
  roundsMs: number[];
  /** Largest difference of its first output from the first contestant's (the same weights and input). */
  maxDiff: number;
  /** Largest minus smallest value of its first output: what maxDiff is small against. */
  spread: number;
}

export const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Warms each contestant up (`warmup` runs, the first output kept for the check), then times `rounds` interleaved rounds. */
export async function timeInterleaved(contestants: readonly Contestant[], rounds: number, perRound: number, warmup = 1): Promise<Timed[]> {
  const first: Float32Array[] = [];
  for (const c of contestants) {
    first.push(await c.run());
    for (let i = 1; i < warmup; i++) await c.run();
  }
  const times = contestants.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (const [k, c] of contestants.entries()) {
      const t0 = performance.now();
      for (let i = 0; i < perRound; i++) await c.run();
      times[k]!.push((performance.now() - t0) / perRound);
    }
  }
  return contestants.map((c, k) => ({
    name: c.name,
    note: c.note,
    medianMs: median(times[k]!),
    roundsMs: times[k]!,
    maxDiff: maxAbsDiff(first[k]!, first[0]!),
    spread: first[k]!.reduce((a, v) => Math.max(a, v), -Infinity) - first[k]!.reduce((a, v) => Math.min(a, v), Infinity),
  }));
}

/** Rows "name | note | median ms | time ÷ the first contestant's (median of rounds) | max |Δ|". */
export function timingTable(results: readonly Timed[], extra: readonly { name: string; note: string; ms: number }[] = []): string {
  const base = results[0]!;
  const lines = ['| contestant | how | median ms | time ÷ first (median of rounds) | max abs diff of outputs |', '|---|---|---|---|---|'];
  for (const r of results) {
    const ratio = median(r.roundsMs.map((t, i) => t / base.roundsMs[i]!));
    lines.push(`| ${r.name} | ${r.note} | ${r.medianMs.toFixed(1)} | ${ratio.toFixed(2)} | ${r.maxDiff.toExponential(1)} |`);
  }
  for (const e of extra) lines.push(`| ${e.name} | ${e.note} | ${e.ms.toFixed(1)} | ${(e.ms / base.medianMs).toFixed(2)} | — |`);
  return lines.join('\n');
}

/** Deterministic pixels in [-1, 1] (NHWC), and the same values in NCHW for ONNX Runtime. */
export function benchInput(size: number): { nhwc: Float32Array; nchw: Float32Array } {
  const nhwc = Float32Array.from({ length: size * size * 3 }, (_, i) => Math.sin(i * 0.37));
  const nchw = new Float32Array(nhwc.length);
  for (let p = 0; p < size * size; p++) for (let c = 0; c < 3; c++) nchw[c * size * size + p] = nhwc[p * 3 + c]!;
  return { nhwc, nchw };
}

/** onnxruntime-web on the project's ONNX export (input `input`, NCHW), wasm with SIMD and `threads` threads. */
export async function ortContestant(ort: Ort, onnx: Uint8Array, nchw: Float32Array, size: number, threads: number): Promise<Contestant> {
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  const session = await ort.InferenceSession.create(onnx, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', nchw, [1, 3, size, size]) };
  const output = session.outputNames[0]!;
  return {
    name: 'onnxruntime-web 1.30',
    note: `wasm SIMD, ${threads} threads, the project's ONNX export`,
    run: async () => {
      const out = await session.run(feeds);
      const data = (out[output]!.data as Float32Array).slice();
      out[output]!.dispose();
      return data;
    },
  };
}

/** A TensorFlow.js layers model and its forward pass on the backend already set (wasm). */
export function tfjsContestant(tf: Tf, model: TfLayers.LayersModel, nhwc: Float32Array, size: number, note: string): Contestant {
  const x = tf.tensor4d(nhwc, [1, size, size, 3]);
  return {
    name: 'tfjs-backend-wasm 4.22',
    note,
    run: async () => {
      const y = model.predict(x) as TfCore.Tensor;
      const data = (await y.data()) as Float32Array;
      y.dispose();
      return data;
    },
  };
}

/** Our weights by Keras name (`block1_conv1/kernel`, …). */
export type WeightsByName = ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>;

/**
 * Keras's Xception (299-style stem, 8 middle blocks, 1000-class softmax head) written with
 * TensorFlow.js layers, with our weights set by layer name. A bench-only definition: tfjs-layers
 * has no Xception of its own, and this one exists only so tfjs-backend-wasm can run the same
 * network on the same weights; the library's model is src/models/xception/xception.ts.
 */
export function tfjsXception(tf: Tf, size: number, classes: number, weights: WeightsByName): TfLayers.LayersModel {
  const L = tf.layers;
  let auto = 0;
  const names: Record<string, string[]> = {};
  const track = (name: string, kind: string[]) => {
    names[name] = kind;
    return name;
  };
  const conv = (filters: number, k: number, s: number, padding: 'same' | 'valid', name: string) =>
    L.conv2d({ filters, kernelSize: k, strides: s, padding, useBias: false, name: track(name, ['kernel']) });
  const sep = (filters: number, name: string) =>
    L.separableConv2d({
      filters,
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      name: track(name, ['depthwise_kernel', 'pointwise_kernel']),
    });
  const bn = (name: string) =>
    L.batchNormalization({
      axis: -1,
      epsilon: 1e-3,
      momentum: 0.99,
      name: track(name, ['gamma', 'beta', 'moving_mean', 'moving_variance']),
    });
  const relu = (name: string) => L.activation({ activation: 'relu', name });
  const input = tf.input({ shape: [size, size, 3] });
  let x = conv(32, 3, 2, 'valid', 'block1_conv1').apply(input) as TfLayers.SymbolicTensor;
  const chain = (...layers: TfLayers.layers.Layer[]) => {
    for (const l of layers) x = l.apply(x) as TfLayers.SymbolicTensor;
  };
  chain(
    bn('block1_conv1_bn'),
    relu('block1_conv1_act'),
    conv(64, 3, 1, 'valid', 'block1_conv2'),
    bn('block1_conv2_bn'),
    relu('block1_conv2_act'),
  );
  const down = (block: number, f: [number, number], reluFirst: boolean) => {
    auto++;
    const residual = bn(`batch_normalization_${auto}`).apply(
      conv(f[1], 1, 2, 'same', `conv2d_${auto}`).apply(x),
    ) as TfLayers.SymbolicTensor;
    if (reluFirst) chain(relu(`block${block}_sepconv1_act`));
    chain(sep(f[0], `block${block}_sepconv1`), bn(`block${block}_sepconv1_bn`), relu(`block${block}_sepconv2_act`));
    chain(sep(f[1], `block${block}_sepconv2`), bn(`block${block}_sepconv2_bn`));
    chain(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: `block${block}_pool` }));
    x = L.add({ name: `add_${auto}` }).apply([x, residual]) as TfLayers.SymbolicTensor;
  };
  down(2, [128, 128], false);
  down(3, [256, 256], true);
  down(4, [728, 728], true);
  for (let b = 5; b <= 12; b++) {
    const residual = x;
    for (let j = 1; j <= 3; j++)
      chain(relu(`block${b}_sepconv${j}_act`), sep(728, `block${b}_sepconv${j}`), bn(`block${b}_sepconv${j}_bn`));
    x = L.add({ name: `add_mid_${b}` }).apply([x, residual]) as TfLayers.SymbolicTensor;
  }
  down(13, [728, 1024], true);
  chain(sep(1536, 'block14_sepconv1'), bn('block14_sepconv1_bn'), relu('block14_sepconv1_act'));
  chain(sep(2048, 'block14_sepconv2'), bn('block14_sepconv2_bn'), relu('block14_sepconv2_act'));
  chain(L.globalAveragePooling2d({ name: 'avg_pool' }));
  chain(L.dense({ units: classes, activation: 'softmax', name: track('predictions', ['kernel', 'bias']) }));
  const model = tf.model({ inputs: input, outputs: x });
  for (const [layer, kinds] of Object.entries(names)) {
    const values = kinds.map((k) => {
      const w = weights.get(`${layer}/${k}`);
      if (!w) throw new Error(`tfjs Xception: no weight ${layer}/${k} among ours`);
      return tf.tensor(w.data, [...w.shape]);
    });
    model.getLayer(layer).setWeights(values);
    for (const v of values) v.dispose();
  }
  return model;
}
