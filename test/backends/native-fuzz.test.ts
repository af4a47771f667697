/**
 * Seeded fuzzers of the addon's two untrusted entry points: kernel calls (op, input buffers,
 * numeric parameters) and compiled-plan specs. Every case must either run or throw the binding's
 * typed error (code ERR_*), and leave no buffer or plan behind. Under the sanitized build
 * (test/backends/native-sanitizers.test.ts) the same cases also check every memory access.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadAddon, type NativeBuffer } from '../../src/backends/onednn/binding.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { BackendError } from '../../src/core/errors.js';
import type { Random } from '../../src/core/random.js';
import { compileSpec } from '../../src/infer/compile.js';
import {
  Add,
  BatchNormalization,
  Conv2D,
  Dense,
  DepthwiseConv2D,
  GlobalAveragePooling2D,
  InputLayer,
  MaxPooling2D,
  Model,
} from '../../src/index.js';
import { Random as Rng } from '../../src/core/random.js';
import { fuzzCaseCount, fuzzTimeout, runFuzz } from '../helpers/fuzz.js';

const load = loadAddon();
const addon = load.addon;
const skip = addon ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;

// Every kernel of native/kernels_*.cc, plus names that must be refused.
const OPS = [
  'relu',
  'reluBackward',
  'axpby',
  'mul',
  'scale',
  'biasAdd',
  'sumRows',
  'concatChannels',
  'sliceChannels',
  'softmax',
  'softmaxCrossEntropy',
  'softmaxCrossEntropyBackward',
  'sigmoidCrossEntropy',
  'sigmoidCrossEntropyBackward',
  'globalAvgPool',
  'globalAvgPoolBackward',
  'globalMaxPool',
  'globalMaxPoolBackward',
  'applyUpdate',
  'sumSquares',
  'conv2d',
  'conv2dBackwardInput',
  'conv2dBackwardFilter',
  'batchNormTrain.dnnl',
  'batchNormInference.dnnl',
  'batchNormBackward.dnnl',
  'relu.dnnl',
  'reluBackward.dnnl',
  'elu',
  'eluBackward',
  'maxPool2d',
  'maxPool2dBackward',
  'avgPool2d',
  'avgPool2dBackward',
  'matmul',
  'noSuchKernel',
  '',
];
const ODD = [0, -1, 0.5, 2 ** 31, 2 ** 53, -(2 ** 31), Number.NaN, Number.POSITIVE_INFINITY, 1e300];

/** The binding's typed failures become BackendError; anything else stays what it is. */
function typed<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    if (e instanceof Error && typeof code === 'string' && code.startsWith('ERR_')) {
      throw new BackendError(e.message);
    }
    throw e;
  }
}

/** Mostly small dimensions (so sizes often match and kernels run), sometimes hostile values. */
function param(rng: Random): number {
  return rng.uniform() < 0.85 ? 1 + Math.floor(rng.uniform() * 4) : ODD[Math.floor(rng.uniform() * ODD.length)]!;
}

/** A buffer size that is often a product of some of the parameters (what kernels check against). */
function bufferSize(rng: Random, nums: number[]): number {
  const small = nums.filter((v) => Number.isInteger(v) && v > 0 && v <= 8);
  let size = 1;
  for (const v of small) if (rng.uniform() < 0.6) size *= v;
  return rng.uniform() < 0.8 ? size : Math.floor(rng.uniform() * 300);
}

function kernelCase(rng: Random): void {
  const op = OPS[Math.floor(rng.uniform() * OPS.length)]!;
  const nums = Array.from({ length: Math.floor(rng.uniform() * 24) }, () => param(rng));
  const owned: NativeBuffer[] = [];
  try {
    const inputs = Array.from({ length: Math.floor(rng.uniform() * 6) }, () => {
      const b = addon!.upload(Float32Array.from({ length: bufferSize(rng, nums) }, () => rng.uniform() * 4 - 2));
      owned.push(b);
      return b;
    });
    const ints =
      rng.uniform() < 0.3 ? Int32Array.from({ length: Math.floor(rng.uniform() * 8) }, () => Math.floor(rng.uniform() * 6) - 1) : undefined;
    const out = typed(() => addon!.run(op, inputs, nums, ints));
    for (const o of out) if (typeof o === 'object') owned.push(o);
  } finally {
    for (const b of owned) addon!.free(b);
  }
}

test('kernel calls with random ops, buffers and parameters run or fail typed, and leak nothing', {
  skip,
  timeout: fuzzTimeout(1000, 600_000),
}, async (t) => {
  const before = addon!.stats();
  const tally = await runFuzz(t, {
    name: 'native kernels',
    seedOffset: 71,
    cases: fuzzCaseCount(1000),
    typed: [BackendError],
    run: kernelCase,
  });
  assert.ok(tally.succeeded > 0, 'some cases must describe valid kernel calls');
  const after = addon!.stats();
  assert.equal(after.buffers, before.buffers);
  assert.equal(after.bytes, before.bytes);
});

/** A small network with every plan step kind the compiler emits for it (conv, depthwise, BN, pool, add, dense). */
function smallNetwork(): Model {
  const native = loadNativeBackend()!;
  const ctx = { rng: new Rng(5), backend: native };
  const x = new InputLayer({ shape: [6, 6, 3] }).apply([], ctx);
  const y = new Conv2D({ filters: 4, kernelSize: 3, padding: 'same' }).apply(x, ctx);
  const z = new BatchNormalization().apply(new DepthwiseConv2D({ kernelSize: 3, padding: 'same' }).apply(y, ctx), ctx);
  const s = new Add().apply([z, y], ctx);
  const p = new GlobalAveragePooling2D().apply(new MaxPooling2D({ poolSize: 2 }).apply(s, ctx), ctx);
  return new Model({ inputs: x, outputs: new Dense({ units: 3 }).apply(p, ctx), seed: 5 });
}

test('plan specs with several numbers changed at once are refused typed or run within their own sizes', {
  skip,
  timeout: fuzzTimeout(10_000, 900_000),
}, async (t) => {
  const native = loadNativeBackend()!;
  const m = smallNetwork();
  const good = compileSpec(m, { batch: 2, inputShape: [6, 6, 3], logits: false, precision: 'fp32' });
  const weights = good.recipes.map((r) => r());
  const x = native.upload(Float32Array.from({ length: 2 * 6 * 6 * 3 }, (_, i) => Math.sin(i)));
  const before = native.stats();
  const tally = await runFuzz(t, {
    name: 'native plan specs',
    seedOffset: 72,
    cases: fuzzCaseCount(10_000),
    typed: [BackendError],
    run: (rng) => {
      const spec = Float64Array.from(good.spec);
      const changes = 1 + Math.floor(rng.uniform() * 4);
      for (let c = 0; c < changes; c++) {
        const at = Math.floor(rng.uniform() * spec.length);
        const r = rng.uniform();
        spec[at] =
          r < 0.5
            ? spec[at]! + Math.floor(rng.uniform() * 5) - 2
            : r < 0.8
              ? Math.floor(rng.uniform() * 40)
              : ODD[Math.floor(rng.uniform() * ODD.length)]!;
      }
      const plan = native.createPlan(spec, weights);
      try {
        const info = native.planInfo(plan);
        if (info.inputSize !== 2 * 6 * 6 * 3) return;
        native.dispose(native.runPlan(plan, x, info.inputSize, info.outputSize));
      } finally {
        native.freePlan(plan);
      }
    },
  });
  assert.ok(tally.succeeded > 0 && tally.rejected.size > 0, 'both valid and refused specs must occur');
  const after = native.stats();
  assert.equal(after.plans, before.plans);
  assert.equal(after.bytes, before.bytes);
  native.dispose(x);
  m.dispose();
});
