/**
 * Issue 17's figures, side by side in one run: Xception batch-1 inference on our wasm backend vs
 * onnxruntime-web 1.30 (wasm, SIMD, 2 threads, on our own ONNX export of the same weights) vs
 * tfjs-backend-wasm 4.22 (the same network written with tfjs layers, the same weights), with the
 * native compiled plan beside — in Node, then in headless Chromium (web/bench.html served by
 * `serve-web`'s server with COOP/COEP, peers' files from node_modules, nothing from the network).
 * Then training: a batch-8 step of the full Xception and the main job's step, wasm vs native.
 *
 * Run: `npm run bench:wasm` or `node dist/src/bench/scripts/wasm-peers.js [--size 299] [--rounds 5]
 * [--per-round 2] [--threads 2] [--train-rounds 2] [--train-size 299] [--main-batch 128]
 * [--browser auto|off] [--json FILE]`. Timings on a shared machine are noisy: compare the ratios.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Backend } from '../../core/backend.js';
import { WasmBackend } from '../../backends/wasm/backend.js';
import * as X from '../../index.js';
import { assignByName, namedWeightsOf } from '../../io/named-weights.js';
import type { Model } from '../../nn/model.js';
import { SMALL_IMAGE_XCEPTION_OPTIONS, trainingStep } from '../../train/step.js';
import {
  benchInput,
  type Contestant,
  median,
  ortContestant,
  type Tf,
  type Timed,
  tfjsContestant,
  tfjsXception,
  timeInterleaved,
  timingTable,
} from '../wasm-peers-core.js';
import { type BrowserResults, browserRun } from './wasm-peers-browser.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../../..');
const { values: flags } = parseArgs({
  options: {
    size: { type: 'string', default: '299' },
    rounds: { type: 'string', default: '5' },
    'per-round': { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    'train-rounds': { type: 'string', default: '2' },
    'train-size': { type: 'string', default: '299' },
    'main-batch': { type: 'string', default: '128' },
    browser: { type: 'string', default: 'auto' },
    json: { type: 'string' },
  },
});
const int = (name: keyof typeof flags, min: number): number => {
  const v = Number(flags[name]);
  if (!Number.isInteger(v) || v < min) throw new X.OptionError(`--${name} must be an integer ≥ ${min}, got ${String(flags[name])}`);
  return v;
};
const size = int('size', 71);
const rounds = int('rounds', 1);
const perRound = int('per-round', 1);
const threads = int('threads', 1);

const wasm = X.tryBackend('wasm');
if (!wasm) throw new X.BackendError('the wasm backend is not available (npm run build:wasm)');
const native = X.tryBackend('native') ?? null;

/** Our model on `backend` with the weights of `source` (by name). */
function copyOn(source: Model, backend: Backend): Model {
  const m = X.xception({ inputShape: [size, size, 3], backend });
  assignByName(m, namedWeightsOf(source), 'bench');
  return m;
}

/** Ours: the compiled plan when compileInference takes a wasm model, else op by op (labelled). */
function oursContestant(model: Model, backend: Backend, name: string, nhwc: Float32Array): Contestant {
  const x = X.tensor(nhwc, [1, size, size, 3], { backend });
  let why = 'its plan runs on the native backend, not on wasm';
  try {
    const plan = X.compileInference(model, { batch: 1 });
    // A model on the native backend compiles a native plan: count it as ours-on-`backend` only
    // when the plan runs there.
    if (plan.info().backend === backend.name) {
      const simd = backend instanceof WasmBackend ? `, ${backend.simd()} SIMD` : '';
      return { name, note: `compiled plan (${plan.layout}${simd})`, run: async () => plan.run(x).data() };
    }
    plan.dispose();
  } catch (e) {
    if (backend.name !== 'wasm') throw e;
    why = e instanceof Error ? e.message.split('\n')[0]!.slice(0, 60) : String(e);
  }
  const run = async () => X.noGrad(() => X.tidy(() => model.forward(x).data()));
  return { name, note: `op by op (not compiled: ${why})`, run };
}

async function tfjsPeer(model: Model, nhwc: Float32Array): Promise<Contestant> {
  const tfc = await import('@tensorflow/tfjs-core');
  const tfl = await import('@tensorflow/tfjs-layers');
  const tfw = await import('@tensorflow/tfjs-backend-wasm');
  tfw.setThreadsCount(threads);
  if (!(await tfc.setBackend('wasm'))) throw new X.BackendError('tfjs-backend-wasm did not initialize');
  const tf = { ...tfc, ...tfl } as unknown as Tf;
  const weights = new Map(namedWeightsOf(model).map((w) => [w.name, w]));
  const tm = tfjsXception(tf, size, 1000, weights);
  return tfjsContestant(tf, tm, nhwc, size, `wasm SIMD, ${tfw.getThreadsCount()} threads, bench-only tfjs-layers Xception`);
}

async function nodeInference(model: Model, onnx: Uint8Array): Promise<{ results: Timed[]; native: number | null }> {
  const { nhwc, nchw } = benchInput(size);
  const ort = await import('onnxruntime-web');
  const contestants = [
    oursContestant(model, wasm!, 'ours, wasm', nhwc),
    await ortContestant(ort, onnx, nchw, size, threads),
    await tfjsPeer(model, nhwc),
  ];
  if (native) contestants.push(oursContestant(copyOn(model, native), native, 'ours, native (oneDNN)', nhwc));
  const results = await timeInterleaved(contestants, rounds, perRound);
  return { results, native: native ? results[results.length - 1]!.medianMs : null };
}

/** Images/s of `rounds` training steps (after one warm-up step) of a fresh model on `backend`. */
function trainSpeed(build: (b: Backend) => Model, backend: Backend, batch: number, steps: number): number {
  const model = build(backend);
  const [h, w, c] = model.inputShape as [number, number, number];
  const classes = model.outputShape[0]!;
  const parts = { model, optimizer: new X.Optimizer('sgd', { lr: 0.01, momentum: 0.9 }), ema: null, labelSmoothing: 0, classes, backend };
  const rng = new X.Random(1);
  const x = Float32Array.from({ length: batch * h * w * c }, () => rng.uniform(-1, 1));
  const y = Int32Array.from({ length: batch }, (_, i) => i % classes);
  const batchData = { x, y, size: batch, shape: [batch, h, w, c] };
  trainingStep(parts, batchData as unknown as Parameters<typeof trainingStep>[1]);
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    trainingStep(parts, batchData as unknown as Parameters<typeof trainingStep>[1]);
    times.push(performance.now() - t0);
  }
  model.dispose();
  return (batch * 1000) / median(times);
}

function training(): { what: string; wasm: number; native: number | null }[] {
  const steps = int('train-rounds', 1);
  const t = int('train-size', 71);
  const cases = [
    { what: `Xception ${t}×${t} batch 8`, batch: 8, build: (b: Backend) => X.xception({ inputShape: [t, t, 3], backend: b }) },
    {
      what: `the main job's step (small Xception, 28×28×1, batch ${flags['main-batch']})`,
      batch: int('main-batch', 1),
      build: (b: Backend) => X.xception({ ...SMALL_IMAGE_XCEPTION_OPTIONS, inputShape: [28, 28, 1], classes: 10, backend: b }),
    },
  ];
  return cases.map((k) => ({
    what: k.what,
    wasm: trainSpeed(k.build, wasm!, k.batch, steps),
    native: native ? trainSpeed(k.build, native, k.batch, steps) : null,
  }));
}

/**
 * Freshly built, batch norm is the identity (gamma 1, beta 0, mean 0, variance 1), so a peer that
 * mixed those up would still agree with us: give them spread values (the same for every contestant).
 */
function spreadBatchNorm(model: Model): void {
  const rng = new X.Random(5);
  const ranges: Record<string, [number, number]> = {
    gamma: [0.5, 1.5],
    beta: [-0.2, 0.2],
    moving_mean: [-0.2, 0.2],
    moving_variance: [0.5, 1.5],
  };
  for (const v of model.weights) {
    const range = ranges[v.name.split('/').pop() ?? ''];
    if (range) v.setData(Float32Array.from({ length: v.size }, () => rng.uniform(range[0], range[1])));
  }
}

async function main(): Promise<void> {
  console.log(
    `wasm peers: Xception ${size}×${size} batch 1, ${rounds} rounds × ${perRound}, ${threads} threads; ${cpus()[0]?.model ?? '?'}`,
  );
  const model = X.xception({ inputShape: [size, size, 3], backend: wasm! });
  spreadBatchNorm(model);
  const onnx = X.exportOnnx(model, { inputLayout: 'nchw' });
  const node = await nodeInference(model, onnx);
  console.log(`\nNode ${process.version}:\n${timingTable(node.results)}`);
  const dir = mkdtempSync(join(tmpdir(), 'xception-wasm-peers-'));
  let browser: BrowserResults | null = null;
  try {
    if (flags.browser !== 'off' && existsSync('/usr/bin/chromium')) {
      writeFileSync(join(dir, 'model.onnx'), onnx);
      await X.saveWeights(model, join(dir, 'model.safetensors'), 'safetensors');
      browser = await browserRun({ root: ROOT, dataDir: dir, size, rounds, perRound, threads });
      const extra = node.native === null ? [] : [{ name: 'ours, native (Node, above)', note: 'compiled plan', ms: node.native }];
      console.log(`\nheadless Chromium (${browser.userAgent}):\n${timingTable(browser.results, extra)}`);
    } else console.log('\nheadless Chromium: skipped (--browser off or /usr/bin/chromium missing)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const train = training();
  console.log('\nTraining, images/s (wasm op by op | native | wasm ÷ native):');
  for (const t of train) {
    const ratio = t.native ? (t.wasm / t.native).toFixed(3) : '—';
    console.log(`  ${t.what}: ${t.wasm.toFixed(2)} | ${t.native?.toFixed(2) ?? '—'} | ${ratio}`);
  }
  if (flags.json) writeFileSync(flags.json, JSON.stringify({ size, node: node.results, browser, train }, null, 1));
  model.dispose();
}

await main();
