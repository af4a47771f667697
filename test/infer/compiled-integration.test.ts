/**
 * Where the library infers by itself — classify/predictImages and evaluate — the compiled plan is
 * used on the native backend and must be a drop-in: the same numbers as op by op
 * (XCEPTION_COMPILED=0), and op by op where it cannot compile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Activation, classify, Conv2D, evaluate, InputLayer, Model, noGrad, Random, xception } from '../../src/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { cachedCompiledInference, compiledFallbackReason, releaseCompiledInference } from '../../src/infer/auto.js';
import type { Batch } from '../../src/data/loader.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { errors, randomizeStatistics } from './helpers.js';

const native = loadNativeBackend();
const skip = native ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;

function withCompiled<T>(on: boolean, f: () => T): T {
  const before = process.env['XCEPTION_COMPILED'];
  process.env['XCEPTION_COMPILED'] = on ? '1' : '0';
  try {
    return f();
  } finally {
    if (before === undefined) delete process.env['XCEPTION_COMPILED'];
    else process.env['XCEPTION_COMPILED'] = before;
  }
}

const small = () =>
  noGrad(() => xception({ backend: native!, stem: 'small', inputShape: [20, 20, 3], classes: 6, width: 0.25, middleBlocks: 1, seed: 3 }));

function images(n: number, seed: number): Float32Array {
  const rng = new Random(seed);
  return Float32Array.from({ length: n * 20 * 20 * 3 }, () => rng.uniform(-1, 1));
}

test('classify runs the compiled plan on the native backend and gives the op-by-op probabilities', { skip }, () => {
  const m = small();
  randomizeStatistics(m);
  const x = images(3, 1);
  const opByOp = withCompiled(false, () => classify(m, x, 3));
  assert.equal(cachedCompiledInference(m, 3, false) !== null, true, 'the model compiles');
  const compiled = withCompiled(true, () => classify(m, x, 3));
  const e = errors(compiled, opByOp);
  assert.ok(e.abs <= 1e-5, `probabilities differ by ${e.abs.toExponential(2)}`);
  // A last, smaller batch gets its own plan.
  const one = withCompiled(true, () => classify(m, x.subarray(0, 20 * 20 * 3), 1));
  assert.ok(errors(one, opByOp.subarray(0, 6)).abs <= 1e-5);
  // Disposing the model frees its cached plans at once.
  const plansBefore = native!.stats().plans;
  assert.ok(plansBefore >= 2);
  m.dispose();
  assert.equal(native!.stats().plans, plansBefore - 2);
});

test('evaluate gives the same loss and accuracy compiled as op by op (also after training changed the weights)', { skip }, async () => {
  const m = small();
  randomizeStatistics(m);
  const rng = new Random(4);
  const batches: Batch[] = [5, 5, 2].map(
    (size, i): Batch => ({
      x: images(size, 10 + i),
      y: Int32Array.from({ length: size }, () => rng.int(6)),
      size,
      shape: [size, 20, 20, 3],
    }),
  );
  const run = async (on: boolean) => {
    process.env['XCEPTION_COMPILED'] = on ? '1' : '0';
    try {
      return await evaluate(m, batches, 6);
    } finally {
      delete process.env['XCEPTION_COMPILED'];
    }
  };
  const a = await run(false);
  const b = await run(true);
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * Math.max(1, Math.abs(a.loss)), `loss ${a.loss} vs ${b.loss}`);
  assert.equal(a.top1, b.top1);
  assert.equal(a.top5, b.top5);
  assert.equal(a.count, b.count);
  // Weights change (as between two epochs): the cached plan re-reads them.
  for (const w of m.layersWithWeights.find((l) => l.name === 'predictions')!.weights) {
    w.setData(Float32Array.from(w.value.data(), (v, i) => v + 0.05 * Math.cos(i)));
  }
  const c = await run(false);
  const d = await run(true);
  assert.ok(Math.abs(c.loss - d.loss) <= 1e-5 * Math.max(1, Math.abs(c.loss)), `after the change: loss ${c.loss} vs ${d.loss}`);
  assert.notEqual(a.loss, c.loss);
  releaseCompiledInference(m);
  m.dispose();
});

test('no compiled path on the reference backend or for a model that does not compile: op by op, with the reason kept', { skip }, () => {
  const r = noGrad(() =>
    xception({ backend: referenceBackend, stem: 'small', inputShape: [20, 20, 3], classes: 6, width: 0.25, middleBlocks: 1, seed: 3 }),
  );
  assert.equal(cachedCompiledInference(r, 1, false), null);
  r.dispose();
  const ctx = { rng: new Random(1), backend: native! };
  const input = new InputLayer({ shape: [4, 4, 2] }).apply([], ctx);
  const odd = new Model({
    inputs: input,
    outputs: new Activation('softmax').apply(new Conv2D({ filters: 3, kernelSize: 1 }).apply(input, ctx), ctx),
  });
  assert.equal(cachedCompiledInference(odd, 2, false), null);
  assert.match(compiledFallbackReason(odd) ?? '', /softmax/);
  odd.dispose();
});
