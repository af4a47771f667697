/**
 * Compiled inference on the wasm backend (src/infer/wasm-plan.ts): the plan against op-by-op
 * forward on wasm and on the reference backend, arena reuse, the weight-change rule and errors.
 * fp32 tolerance as the native plan's: max relative and max absolute error ≤ 1e-4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Activation,
  Add,
  AveragePooling2D,
  BatchNormalization,
  compileInference,
  Concatenate,
  Conv2D,
  Dense,
  DisposedError,
  Flatten,
  inceptionV3,
  InputLayer,
  MaxPooling2D,
  Model,
  noGrad,
  OptionError,
  Random,
  releaseCompiledInference,
  SeparableConv2D,
  setInferencePrecision,
  tensor,
  xception,
} from '../../src/index.js';
import type { Backend } from '../../src/core/backend.js';
import type { Layer, SymbolicTensor } from '../../src/nn/layer.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadWasmBackend, wasmBackendStatus } from '../../src/backends/wasm/node.js';
import { cachedCompiledInference, compiledFallbackReason } from '../../src/infer/auto.js';
import { arenaLayout } from '../../src/infer/wasm-plan.js';
import { errors, randomImages, randomizeStatistics, researchVariantXception } from './helpers.js';

const wasm = loadWasmBackend();
const skip = wasm ? false : `wasm backend unavailable: ${wasmBackendStatus().reason}`;
const TOL = 1e-4;

/** A functional model with ELU, a residual add fused as a sum, a concat, both pools and a dense head. */
function mixedModel(backend: Backend): Model {
  const ctx = { rng: new Random(4), backend };
  const apply = (l: Layer, x: SymbolicTensor | SymbolicTensor[]) => l.apply(x, ctx);
  const input = new InputLayer({ shape: [12, 12, 5] }).apply([], ctx);
  const y = apply(new Conv2D({ filters: 8, kernelSize: 1 }), input);
  const h = apply(
    new Activation('elu'),
    apply(new BatchNormalization(), apply(new Conv2D({ filters: 8, kernelSize: 3, padding: 'same' }), y)),
  );
  const z = apply(new BatchNormalization(), apply(new SeparableConv2D({ filters: 8, kernelSize: 3, padding: 'same' }), h));
  const r = apply(new Activation('relu'), apply(new Add(), [z, y]));
  const c = apply(new Concatenate(), [
    apply(new MaxPooling2D({ poolSize: 3, strides: 2, padding: 'same' }), r),
    apply(new AveragePooling2D({ poolSize: 2 }), h),
  ]);
  const d = apply(new Dense({ units: 6, activation: 'elu' }), apply(new Flatten(), c));
  return new Model({ inputs: input, outputs: apply(new Dense({ units: 4, activation: 'softmax' }), d), seed: 4 });
}

const CASES: { name: string; build: (b: Backend) => Model; batch: number }[] = [
  {
    name: 'Xception, Keras layout at 71×71',
    build: (backend) => xception({ backend, inputShape: [71, 71, 3], classes: 7, seed: 5 }),
    batch: 2,
  },
  {
    name: 'Xception research variant: pointwise-first, ELU between, no residual',
    build: researchVariantXception,
    batch: 2,
  },
  {
    name: 'Inception V3 at 75×75 (width 0.25)',
    build: (backend) => inceptionV3({ backend, inputShape: [75, 75, 3], classes: 6, width: 0.25, seed: 1 }),
    batch: 1,
  },
  { name: 'ELU, residual sum, concat, pools, dense head', build: mixedModel, batch: 3 },
];

function within(actual: Float32Array, expected: Float32Array, what: string): void {
  const e = errors(actual, expected);
  assert.ok(e.rel <= TOL && e.abs <= TOL, `${what}: rel ${e.rel.toExponential(2)} abs ${e.abs.toExponential(2)}`);
}

for (const c of CASES) {
  test(`wasm compiled = wasm op by op = reference: ${c.name}`, { skip }, () => {
    const model = noGrad(() => c.build(wasm!));
    const ref = noGrad(() => c.build(referenceBackend));
    randomizeStatistics(model);
    randomizeStatistics(ref);
    const x = randomImages(wasm!, c.batch, model.inputShape, 7);
    try {
      for (const logits of [true, false]) {
        const plan = compileInference(model, { batch: c.batch, logits });
        const y = plan.run(x);
        assert.equal(y.backend, wasm);
        assert.deepEqual(y.shape, [c.batch, ...model.outputShape]);
        const compiled = y.data() as Float32Array;
        y.dispose();
        within(compiled, noGrad(() => model.forward(x, { logits }).data()) as Float32Array, `logits ${logits}, vs wasm op by op`);
        const xr = tensor(x.data(), x.shape, { backend: referenceBackend });
        within(compiled, noGrad(() => ref.forward(xr, { logits }).data()) as Float32Array, `logits ${logits}, vs reference`);
        xr.dispose();
        within(plan.runData(x.data() as Float32Array), compiled, 'runData vs run');
        plan.dispose();
      }
    } finally {
      x.dispose();
      model.dispose();
      ref.dispose();
    }
  });
}

test('wasm plan: fusions as on native, and the arena reuses memory by liveness', { skip }, () => {
  const model = noGrad(() => xception({ backend: wasm!, inputShape: [71, 71, 3], classes: 7, seed: 5 }));
  const plan = compileInference(model, { batch: 1 });
  const info = plan.info();
  assert.deepEqual(info.fusions, { foldedBatchNorms: 40, sumPostOps: 12, eltwisePostOps: 24, standaloneBatchNorms: 0 });
  assert.equal(info.steps.filter((s) => s.includes('+sum')).length, 12);
  assert.equal(info.steps.filter((s) => s.startsWith('add')).length, 0);
  assert.equal(info.layout, 'channels-last');
  assert.ok(info.valueBytes !== undefined && info.arenaBytes > 0);
  // Measured: about a fifth of the sum of all values.
  assert.ok(info.arenaBytes < info.valueBytes / 3, `arena ${info.arenaBytes} vs all values ${info.valueBytes}`);
  assert.ok(info.weightBytes >= model.countParams() * 4 * 0.99);
  assert.equal(plan.profile(randomImages(wasm!, 1, [71, 71, 3])).length, info.steps.length);
  plan.dispose();
  assert.ok(plan.disposed);
  assert.throws(() => plan.run(randomImages(wasm!, 1, [71, 71, 3])), DisposedError);
  model.dispose();
});

test('arenaLayout: values alive at the same time never overlap; dead ones are reused', () => {
  // Value v is made by step v − 1 and read last by lastUse[v].
  const sizes = [100, 50, 100, 30, 100];
  const lastUse = [0, 2, 3, 3, 4];
  const { offsets, floats } = arenaLayout(sizes, lastUse);
  const aligned = sizes.map((n) => Math.ceil(n / 16) * 16);
  for (let a = 0; a < sizes.length; a++)
    for (let b = a + 1; b < sizes.length; b++) {
      const live = a - 1 <= lastUse[b]! && b - 1 <= lastUse[a]!;
      const overlap = offsets[a]! < offsets[b]! + aligned[b]! && offsets[b]! < offsets[a]! + aligned[a]!;
      assert.ok(!(live && overlap), `values ${a} and ${b} overlap while both alive`);
    }
  assert.ok(floats < aligned.reduce((x, y) => x + y, 0));
});

test('wasm plan re-reads changed weights (setData, a BN statistic), before the next run', { skip }, () => {
  const model = mixedModel(wasm!);
  randomizeStatistics(model, 9);
  const x = randomImages(wasm!, 2, model.inputShape, 2);
  const plan = compileInference(model, { batch: 2, logits: true });
  const before = plan.run(x).data() as Float32Array;
  const dense = model.layers.find((l) => l instanceof Dense)!;
  dense.weights[0]!.setData(Float32Array.from(dense.weights[0]!.value.data(), (v, i) => v + 0.1 * Math.cos(i)));
  const bn = model.layers.find((l) => l instanceof BatchNormalization) as BatchNormalization;
  bn.movingMean.setData(Float32Array.from(bn.movingMean.value.data(), (v) => v + 0.3));
  const after = plan.run(x).data() as Float32Array;
  within(after, noGrad(() => model.forward(x, { logits: true }).data()) as Float32Array, 'after the change');
  assert.ok(errors(after, before).abs > 1e-3, 'the change shows in the output');
  assert.equal(plan.info().weightRefreshes, 1);
  plan.dispose();
  x.dispose();
  model.dispose();
});

test('wasm plan: bf16 and int8 stay native (a clear OptionError)', { skip }, () => {
  const model = mixedModel(wasm!);
  assert.throws(
    () => compileInference(model, { batch: 1, precision: 'bf16' }),
    (e: unknown) => e instanceof OptionError && /native backend only/.test(e.message),
  );
  model.dispose();
});

test('predict and evaluate use the cached wasm plan; a lower precision on wasm is an OptionError', { skip }, () => {
  const model = mixedModel(wasm!);
  randomizeStatistics(model, 3);
  const plan = cachedCompiledInference(model, 2, true);
  assert.ok(plan, `no plan: ${compiledFallbackReason(model)}`);
  assert.equal(cachedCompiledInference(model, 2, true), plan, 'cached');
  const x = randomImages(wasm!, 2, model.inputShape, 4);
  within(plan.run(x).data() as Float32Array, noGrad(() => model.forward(x, { logits: true }).data()) as Float32Array, 'cached plan');
  setInferencePrecision(model, { precision: 'bf16' });
  assert.throws(() => cachedCompiledInference(model, 2, true), OptionError);
  setInferencePrecision(model, null);
  releaseCompiledInference(model);
  assert.ok(plan.disposed);
  x.dispose();
  model.dispose();
});
