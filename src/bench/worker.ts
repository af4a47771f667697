/**
 * One benchmark case in its own process, so that its peak resident memory is its own:
 * `node worker.js '<WorkerSpec JSON>'` prints one WorkerResult as a JSON line on stdout.
 * engine 'xception' runs the project's network on a backend; 'onnxruntime' runs the same network
 * with the same weights, exported by the xception worker with exportOnnx, in onnxruntime-node
 * (inference only). For int8 the export is the QDQ model with the int8 plan's own calibration.
 */
import { writeFileSync } from 'node:fs';
import '../backends/index.js';
import { backward } from '../core/autograd.js';
import { tensor } from '../core/creation.js';
import { getBackend, keep, noGrad, setBackend, tidy } from '../core/engine.js';
import { BackendError } from '../core/errors.js';
import type { Int8Calibration } from '../infer/quant-types.js';
import { softmaxCrossEntropy } from '../core/ops/loss.js';
import { Random } from '../core/random.js';
import { compileInference, type CompiledInference } from '../infer/compiled.js';
import { compiledInferenceEnabled } from '../infer/auto.js';
import type { Precision } from '../infer/compile.js';
import { exportOnnx } from '../io/onnx-model.js';
import { xception } from '../models/xception/xception.js';
import type { Model } from '../nn/model.js';
import { Optimizer } from '../train/optimizers.js';
import { DataParallel } from '../train/parallel/data-parallel.js';
import { bf16HardwareOf, useTrainPrecision } from '../train/precision.js';
import type { BenchCase, ModelScale } from './cases.js';
import { caseModelOptions } from './cases.js';
import { forwardFlops } from './flops.js';
import { timingCalibration } from './int8.js';
import { timeSteps, type Timing, type TimingOptions } from './timing.js';

export interface WorkerSpec {
  engine: 'xception' | 'onnxruntime';
  case: BenchCase;
  scale: ModelScale;
  timing: TimingOptions;
  /** 'native' | 'reference' for engine 'xception'; undefined = the default choice. */
  backend?: string;
  /** onnxruntime intra-op threads. */
  threads: number;
  /**
   * Inference cases on the native backend: 'compiled' (a compileInference plan, the default) or
   * 'op-by-op' (model.forward, kernel by kernel). XCEPTION_COMPILED=0 forces 'op-by-op'.
   */
  inference?: 'compiled' | 'op-by-op';
  /**
   * Precision of a compiled inference plan, or of a training step's convolutions (bf16 mixed
   * precision, src/train/precision.ts; int8 is inference only; default fp32).
   */
  precision?: Precision;
  /**
   * Training cases: split the batch between this many data-parallel replicas (worker threads with
   * their share of the cores; src/train/parallel). 1 (default) trains in this thread.
   */
  replicas?: number;
  /**
   * engine 'xception': after timing, write the benchmarked model as ONNX here (for the peer); an
   * int8 plan's model as QDQ ONNX with the plan's calibration (a failed export only writes no file).
   * engine 'onnxruntime': the ONNX file to run.
   */
  onnxPath?: string;
}

export interface WorkerResult {
  /** The backend as --backend names it ('native', 'reference'), or 'onnxruntime <version>'. */
  engine: string;
  /** Counted by the xception engine (0 from onnxruntime, which runs the same network). */
  forwardFlopsPerImage: number;
  secondsPerStep: number;
  repeatSeconds: number[];
  stepsPerRepeat: number;
  /** Peak resident memory (maxRSS) of this process while measuring, in MB (10^6 bytes). */
  peakRssMB: number;
  /** How inference ran: a compiled plan or op by op (training is always op by op). */
  path: 'compiled' | 'op-by-op';
  precision: Precision;
  /** bf16 runs: whether the CPU does bf16 natively or oneDNN emulates it. */
  bf16Hardware?: 'native' | 'emulated';
}

function randomImages(n: number, seed: number): Float32Array {
  const rng = new Random(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(-1, 1); // Xception's input range [-1, 1]
  return a;
}

interface Measured {
  path: 'compiled' | 'op-by-op';
  precision: Precision;
  engine: string;
  flops: number;
  timing: Timing;
  peakRssMB: number;
  bf16Hardware?: 'native' | 'emulated';
}

/** Peak resident memory of this process so far, MB (maxRSS is in KiB). */
const peakRssMB = (): number => (process.resourceUsage().maxRSS * 1024) / 1e6;

async function runXception(spec: WorkerSpec): Promise<Measured> {
  if (spec.backend) setBackend(spec.backend);
  const backend = getBackend();
  const c = spec.case;
  const model = noGrad(() => xception({ ...caseModelOptions(c, spec.scale), backend }));
  const [h, w, ch] = model.inputShape as number[];
  const x = keep(tensor(randomImages(c.batch * h! * w! * ch!, 1), [c.batch, h!, w!, ch!], { backend }));
  const flops = forwardFlops(model);
  let step: () => unknown;
  let closeReplicas: (() => Promise<void>) | null = null;
  let path: Measured['path'] = 'op-by-op';
  let precision: Measured['precision'] = 'fp32';
  let plan: CompiledInference | null = null;
  let int8: Int8Calibration | undefined;
  if (c.kind === 'infer' && backend.name === 'native' && (spec.inference ?? 'compiled') === 'compiled' && compiledInferenceEnabled()) {
    try {
      const want = spec.precision ?? 'fp32';
      if (want === 'int8') int8 = timingCalibration(model, c.batch);
      plan = compileInference(model, { batch: c.batch, precision: want, ...(int8 ? { calibration: int8 } : {}) });
      path = 'compiled';
      precision = plan.precision;
    } catch (e) {
      // int8 has no op-by-op path: its row must not silently time fp32.
      if (spec.precision === 'int8') throw e;
      process.stderr.write(`compiled inference unavailable, running op by op: ${(e as Error).message}\n`);
    }
  }
  if (spec.precision === 'int8' && c.kind === 'infer' && !plan)
    throw new BackendError('int8 inference needs a compiled plan on the native backend (XCEPTION_COMPILED=0 or another backend?)');
  if (c.kind === 'train' && spec.precision === 'bf16') {
    useTrainPrecision(backend, 'bf16'); // this process measures only this
    precision = 'bf16';
  }
  if (plan) {
    const compiled = plan;
    step = () => {
      const y = compiled.run(x);
      y.data();
      y.dispose();
    };
  } else if (c.kind === 'infer') {
    step = () => noGrad(() => tidy(() => model.forward(x).data()));
  } else if ((spec.replicas ?? 1) > 1) {
    // The same step split between replicas: each trains on its shard, the gradients are combined.
    const rng = new Random(2);
    const y = Int32Array.from({ length: c.batch }, () => rng.int(1000));
    const sgd = { lr: 0.01, momentum: 0.9 };
    const dp = await DataParallel.start(
      {
        replicas: spec.replicas!,
        model: 'xception',
        modelOptions: { ...caseModelOptions(c, spec.scale) },
        optimizer: { name: 'sgd', options: sgd },
        labelSmoothing: 0,
        ema: 0,
        precision: precision === 'bf16' ? 'bf16' : 'fp32',
      },
      { model, optimizer: new Optimizer('sgd', sgd), ema: null },
    );
    closeReplicas = () => dp.close();
    const batch = { x: x.data(), y, size: c.batch, shape: [c.batch, h!, w!, ch!] as [number, number, number, number] };
    let seed = 0;
    step = async () => {
      const r = await dp.step(batch, sgd.lr, seed++);
      if (!r.applied) throw new BackendError('the benchmark step diverged');
    };
  } else {
    const rng = new Random(2);
    const labels = Array.from({ length: c.batch }, () => rng.int(1000));
    const optimizer = new Optimizer('sgd', { lr: 0.01, momentum: 0.9 });
    step = () => {
      // The trainer's step: training-mode logits → cross-entropy → backward → SGD with momentum.
      tidy(() => {
        const logits = model.forward(x, { training: true, logits: true });
        const loss = softmaxCrossEntropy(logits, labels);
        const value = loss.item();
        backward(loss, { release: true });
        return value;
      });
      optimizer.apply(model.weights);
    };
  }
  const timing = await timeSteps(step, spec.timing);
  const peak = peakRssMB();
  plan?.dispose();
  await closeReplicas?.();
  if (spec.onnxPath) writePeerModel(model, spec.onnxPath, int8);
  // Named as the --backend flag names it.
  const hw = precision === 'bf16' ? bf16HardwareOf(backend) : null;
  const bf16Hardware = hw === 'native' || hw === 'emulated' ? { bf16Hardware: hw } : {};
  return { engine: backend.name, flops, timing, peakRssMB: peak, path, precision, ...bf16Hardware };
}

/**
 * The peer runs the very weights just measured (inference mode: BN folded into the convs); an int8
 * plan's peer runs them quantized with the same calibration. A failed QDQ export costs only the peer.
 */
function writePeerModel(model: Model, path: string, int8: Int8Calibration | undefined): void {
  if (!int8) {
    writeFileSync(path, exportOnnx(model, { inputLayout: 'nchw' }));
    return;
  }
  try {
    writeFileSync(path, exportOnnx(model, { inputLayout: 'nchw', int8 }));
  } catch (e) {
    process.stderr.write(`no QDQ export for ONNX Runtime: ${(e as Error).message}\n`);
  }
}

async function runOnnxRuntime(spec: WorkerSpec): Promise<Measured> {
  const c = spec.case;
  if (c.kind !== 'infer') throw new BackendError(`onnxruntime runs inference only, not case '${c.name}'`);
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    throw new BackendError(
      `onnxruntime-node is not installed (a dev dependency: ONNXRUNTIME_NODE_INSTALL=skip npm install): ${(e as Error).message}`,
    );
  }
  if (!spec.onnxPath) throw new BackendError('onnxruntime worker: no ONNX file given');
  const [h, w, ch] = caseModelOptions(c, spec.scale).inputShape!;
  const session = await ort.InferenceSession.create(spec.onnxPath, {
    executionProviders: ['cpu'],
    intraOpNumThreads: spec.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const input = new ort.Tensor('float32', randomImages(c.batch * h! * w! * ch!, 1), [c.batch, ch!, h!, w!]);
  const timing = await timeSteps(async () => {
    const out = await session.run({ input });
    for (const t of Object.values(out)) t.dispose?.();
  }, spec.timing);
  await session.release();
  return {
    engine: `onnxruntime ${ort.env.versions.node ?? ort.env.versions.common}`,
    flops: 0,
    timing,
    peakRssMB: peakRssMB(),
    path: 'compiled',
    // A QDQ model (the int8 rows' peer) runs in ONNX Runtime's int8 kernels.
    precision: spec.precision === 'int8' ? 'int8' : 'fp32',
  };
}

async function workerMain(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as WorkerSpec;
  const r = spec.engine === 'onnxruntime' ? await runOnnxRuntime(spec) : await runXception(spec);
  const result: WorkerResult = {
    engine: r.engine,
    forwardFlopsPerImage: r.flops,
    secondsPerStep: r.timing.secondsPerStep,
    repeatSeconds: r.timing.repeatSeconds,
    stepsPerRepeat: r.timing.stepsPerRepeat,
    peakRssMB: r.peakRssMB,
    path: r.path,
    precision: r.precision,
    ...(r.bf16Hardware ? { bf16Hardware: r.bf16Hardware } : {}),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

workerMain().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}\n`);
  process.exitCode = 1;
});
