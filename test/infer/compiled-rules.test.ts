/**
 * Compiled inference: batch-norm folding on every kind of convolution, fusions that must not
 * happen, the weight-change rule, typed errors, native robustness and memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Activation,
  Add,
  BatchNormalization,
  CompileError,
  compileInference,
  Concatenate,
  Conv2D,
  Dense,
  DepthwiseConv2D,
  DisposedError,
  Flatten,
  GlobalAveragePooling2D,
  InputLayer,
  MaxPooling2D,
  Model,
  noGrad,
  OptionError,
  Optimizer,
  ops,
  Random,
  SeparableConv2D,
  ShapeError,
  tensor,
  tidy,
  xception,
  backward,
  AveragePooling2D,
} from '../../src/index.js';
import type { Layer, SymbolicTensor } from '../../src/nn/layer.js';
import { BackendError } from '../../src/core/errors.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { compileSpec } from '../../src/infer/compile.js';
import { errors, randomImages, randomizeStatistics } from './helpers.js';

const native = loadNativeBackend();
const skip = native ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;
const TOL = 1e-4;

/** A small functional model; `body` wires layers from the input. */
function model(
  shape: number[],
  body: (x: SymbolicTensor, apply: (l: Layer, x: SymbolicTensor | SymbolicTensor[]) => SymbolicTensor) => SymbolicTensor,
  seed = 1,
): Model {
  const ctx = { rng: new Random(seed), backend: native! };
  const apply = (l: Layer, x: SymbolicTensor | SymbolicTensor[]) => l.apply(x, ctx);
  const input = new InputLayer({ shape }).apply([], ctx);
  return new Model({ inputs: input, outputs: body(input, apply), seed });
}

function agree(m: Model, batch: number, what: string, opts: { logits?: boolean } = {}): ReturnType<typeof compileInference> {
  const x = randomImages(native!, batch, m.inputShape, 5);
  const expected = noGrad(() => m.forward(x, opts).data());
  const plan = compileInference(m, { batch, ...opts });
  const y = plan.run(x);
  const e = errors(y.data(), expected);
  y.dispose();
  x.dispose();
  assert.ok(e.rel <= TOL && e.abs <= TOL, `${what}: rel ${e.rel.toExponential(2)} abs ${e.abs.toExponential(2)}`);
  return plan;
}

test('BN folds into Conv2D (with bias), DepthwiseConv2D and SeparableConv2D, with and without scale/center', { skip }, () => {
  const m = model([12, 12, 6], (x, apply) => {
    x = apply(new Conv2D({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: true }), x);
    x = apply(new BatchNormalization({ epsilon: 1e-3 }), x);
    x = apply(new Activation('relu'), x);
    x = apply(new DepthwiseConv2D({ kernelSize: 3, padding: 'same', depthMultiplier: 2, useBias: false }), x);
    x = apply(new BatchNormalization({ scale: false }), x); // Inception's BN: no gamma
    x = apply(new SeparableConv2D({ filters: 12, kernelSize: 3, padding: 'valid', useBias: true }), x);
    x = apply(new BatchNormalization({ center: false, epsilon: 0.01 }), x);
    x = apply(new Activation('elu'), x);
    x = apply(new GlobalAveragePooling2D(), x);
    return apply(new Dense({ units: 3, activation: 'softmax' }), x);
  });
  randomizeStatistics(m, 21);
  for (const batch of [1, 5]) {
    const plan = agree(m, batch, `batch ${batch}`);
    assert.deepEqual(plan.info().fusions, { foldedBatchNorms: 3, sumPostOps: 0, eltwisePostOps: 2, standaloneBatchNorms: 0 });
    plan.dispose();
  }
  m.dispose();
});

test('two BNs in a row both fold; a BN after an activation or after a shared conv runs on its own', { skip }, () => {
  const m = model([10, 10, 4], (x, apply) => {
    const a = apply(new Conv2D({ filters: 6, kernelSize: 1, useBias: false }), x);
    const a1 = apply(new BatchNormalization(), a);
    const a2 = apply(new BatchNormalization(), a1); // folds too (conv → BN → BN)
    const b = apply(new Conv2D({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }), x);
    const b1 = apply(new BatchNormalization(), b); // after the conv's own ReLU: not foldable
    const c = apply(new Conv2D({ filters: 6, kernelSize: 1 }), x);
    const c1 = apply(new BatchNormalization(), c); // c is also read by the concat: not foldable
    return apply(new GlobalAveragePooling2D(), apply(new Concatenate(), [a2, b1, c1, c]));
  });
  randomizeStatistics(m, 5);
  const plan = agree(m, 3, 'mixed BNs');
  assert.deepEqual(plan.info().fusions, { foldedBatchNorms: 2, sumPostOps: 0, eltwisePostOps: 0, standaloneBatchNorms: 2 });
  plan.dispose();
  m.dispose();
});

test('a residual add fuses only when the other input is not read afterwards', { skip }, () => {
  // x1 is read again by the concat after the add: the add must stay a separate primitive.
  const unfusable = model([8, 8, 8], (x, apply) => {
    const x1 = apply(new Conv2D({ filters: 8, kernelSize: 1 }), x);
    const r = apply(new BatchNormalization(), apply(new Conv2D({ filters: 8, kernelSize: 3, padding: 'same' }), x1));
    const s = apply(new Add(), [r, x1]);
    return apply(new Concatenate(), [s, x1]);
  });
  randomizeStatistics(unfusable, 2);
  const p1 = agree(unfusable, 2, 'unfusable add');
  assert.equal(p1.info().fusions.sumPostOps, 0);
  p1.dispose();
  unfusable.dispose();
  // The model input cannot be overwritten; the conv's own input cannot be its sum target.
  const onInput = model([8, 8, 8], (x, apply) =>
    apply(new Add(), [apply(new Conv2D({ filters: 8, kernelSize: 3, padding: 'same' }), x), x]),
  );
  const p2 = agree(onInput, 2, 'add on the input');
  assert.equal(p2.info().fusions.sumPostOps, 0);
  p2.dispose();
  onInput.dispose();
  // ResNet-style: conv → BN → add → ReLU, all fused into one convolution.
  // (The shortcut y is not the fused conv's own input: a conv cannot add into what it reads.)
  const resnet = model([8, 8, 8], (x, apply) => {
    const y = apply(new Conv2D({ filters: 8, kernelSize: 1 }), x);
    const h = apply(new Activation('relu'), apply(new Conv2D({ filters: 8, kernelSize: 1 }), x));
    const z = apply(new BatchNormalization(), apply(new Conv2D({ filters: 8, kernelSize: 3, padding: 'same' }), h));
    return apply(new MaxPooling2D({ poolSize: 2 }), apply(new Activation('relu'), apply(new Add(), [z, y])));
  });
  randomizeStatistics(resnet, 3);
  const p3 = agree(resnet, 2, 'conv+BN+add+relu');
  assert.deepEqual(p3.info().fusions, { foldedBatchNorms: 1, sumPostOps: 1, eltwisePostOps: 2, standaloneBatchNorms: 0 });
  assert.ok(
    p3.info().steps.some((s) => s.includes('+bias +sum +relu')),
    p3.info().steps.join('\n'),
  );
  p3.dispose();
  resnet.dispose();
  // A conv whose own input is the add's other input: not fused, still right.
  const selfAdd = model([8, 8, 8], (x, apply) => {
    const y = apply(new Conv2D({ filters: 8, kernelSize: 1 }), x);
    return apply(new Add(), [apply(new Conv2D({ filters: 8, kernelSize: 3, padding: 'same' }), y), y]);
  });
  const p4 = agree(selfAdd, 2, 'conv adding its own input');
  assert.equal(p4.info().fusions.sumPostOps, 0);
  p4.dispose();
  selfAdd.dispose();
});

test('flatten → dense reads the image in Keras (h, w, c) order; average pooling excludes padding', { skip }, () => {
  const m = model([9, 7, 3], (x, apply) => {
    x = apply(new Conv2D({ filters: 5, kernelSize: 3, padding: 'same' }), x);
    x = apply(new AveragePooling2D({ poolSize: 3, strides: 2, padding: 'same' }), x);
    x = apply(new Flatten(), x);
    return apply(new Dense({ units: 4, activation: 'relu' }), x);
  });
  randomizeStatistics(m, 8);
  agree(m, 2, 'flatten-dense').dispose();
  m.dispose();
});

test('weights that change after compiling are re-read: setData (a new tensor) and in-place optimizer steps (a new version)', {
  skip,
}, () => {
  const m = noGrad(() =>
    xception({ backend: native!, stem: 'small', inputShape: [16, 16, 3], classes: 4, width: 0.25, middleBlocks: 1, seed: 9 }),
  );
  randomizeStatistics(m);
  const x = randomImages(native!, 2, m.inputShape, 4);
  const plan = compileInference(m, { batch: 2, logits: true });
  const check = (what: string) => {
    const expected = noGrad(() => m.forward(x, { logits: true }).data());
    const y = plan.run(x);
    const e = errors(y.data(), expected);
    y.dispose();
    assert.ok(e.rel <= TOL, `${what}: rel ${e.rel.toExponential(2)}`);
    return expected;
  };
  const before = check('as compiled');
  assert.equal(plan.info().weightRefreshes, 0);
  check('unchanged');
  assert.equal(plan.info().weightRefreshes, 0, 'no refresh while nothing changed');
  // setData (what loadWeights does) replaces a weight's tensor.
  const bn = m.getLayer('block1_conv1_bn') as BatchNormalization;
  bn.movingMean.setData(Float32Array.from({ length: bn.movingMean.size }, (_, i) => 0.3 * Math.sin(i)));
  const bias = m.getLayer('predictions').getWeight('bias');
  bias.setData(Float32Array.from({ length: bias.size }, (_, i) => i));
  const after = check('after setData');
  assert.ok(errors(after, before).abs > 1e-3, 'the change is visible in the output');
  assert.equal(plan.info().weightRefreshes, 1);
  // An optimizer updates weights in place (same tensor): Tensor.version tells.
  const opt = new Optimizer('sgd', { lr: 0.05, momentum: 0.9 });
  tidy(() => {
    const loss = ops.softmaxCrossEntropy(m.forward(x, { training: true, logits: true }), [0, 3]);
    backward(loss);
  });
  opt.apply(m.weights);
  check('after an optimizer step');
  assert.equal(plan.info().weightRefreshes, 2);
  // Disposing the model makes the plan refuse to run, with a typed error.
  m.dispose();
  assert.throws(() => plan.run(x), DisposedError);
  plan.dispose();
  x.dispose();
});

test('typed errors: options, shapes, batch, disposed plan, uncompilable layers', { skip }, () => {
  const m = model([8, 8, 3], (x, apply) =>
    apply(new Dense({ units: 2 }), apply(new GlobalAveragePooling2D(), apply(new Conv2D({ filters: 4, kernelSize: 3 }), x))),
  );
  assert.throws(() => compileInference(m, { batch: 0 }), OptionError);
  assert.throws(() => compileInference(m, { batch: 1.5 }), OptionError);
  assert.throws(() => compileInference(m, { batch: 1, precision: 'fp16' as never }), OptionError);
  assert.throws(() => compileInference(m, { batch: 1, layout: 'nchw' as never }), /layout must be 'auto', 'channels-last' or 'blocked'/);
  assert.throws(() => compileInference(m, { batch: 1, bogus: 1 } as never), OptionError);
  assert.throws(() => compileInference(m, { batch: 1, inputShape: [8, 8, 4] }), ShapeError);
  assert.throws(() => compileInference(m, { batch: 1, inputShape: [2, 2, 3] }), ShapeError); // smaller than the 3×3 window
  const plan = compileInference(m, { batch: 2 });
  assert.throws(
    () => plan.run(randomImages(native!, 3, [8, 8, 3])),
    (e: unknown) => e instanceof ShapeError && /batch 2/.test(e.message),
  );
  assert.throws(() => plan.run(randomImages(native!, 2, [8, 9, 3])), ShapeError);
  assert.throws(() => plan.run(tensor(new Float32Array(2 * 8 * 8 * 3), [2, 192], { backend: native! })), ShapeError);
  assert.throws(() => plan.runData(new Float32Array(5)), ShapeError);
  // Another image size for a fully convolutional model: allowed, and right.
  const bigger = compileInference(m, { batch: 1, inputShape: [12, 10, 3] });
  const xb = randomImages(native!, 1, [12, 10, 3]);
  assert.deepEqual(bigger.run(xb).shape, [1, 2]);
  bigger.dispose();
  plan.dispose();
  plan.dispose(); // twice is harmless
  assert.throws(() => plan.run(randomImages(native!, 2, [8, 8, 3])), DisposedError);
  assert.throws(() => plan.info(), DisposedError);
  // A softmax that is not after a Dense layer has no compiled form: CompileError (an OptionError).
  const odd = model([8, 8, 3], (x, apply) => apply(new Activation('softmax'), apply(new Conv2D({ filters: 4, kernelSize: 1 }), x)));
  assert.throws(() => compileInference(odd, { batch: 1 }), CompileError);
  m.dispose();
  odd.dispose();
});

test('the addon refuses corrupted specs with a BackendError, never a crash or an out-of-bounds access', { skip }, () => {
  const m = model([6, 6, 3], (x, apply) => {
    const y = apply(new Conv2D({ filters: 4, kernelSize: 3, padding: 'same' }), x);
    const z = apply(new BatchNormalization(), apply(new Conv2D({ filters: 4, kernelSize: 1 }), y));
    const s = apply(new Activation('relu'), apply(new Add(), [z, y]));
    return apply(new Dense({ units: 3 }), apply(new GlobalAveragePooling2D(), apply(new MaxPooling2D({ poolSize: 2 }), s)));
  });
  const good = compileSpec(m, { batch: 2, inputShape: [6, 6, 3], logits: false, precision: 'fp32' });
  const weights = good.recipes.map((r) => r());
  const before = native!.stats();
  const x = randomImages(native!, 2, [6, 6, 3]);
  let refused = 0,
    built = 0;
  for (let i = 0; i < good.spec.length; i++) {
    for (const bad of [-7, -1, 0, 1, 2, 3, 0.5, 1e6, 2 ** 31, NaN, Infinity]) {
      const spec = Float64Array.from(good.spec);
      spec[i] = bad;
      let plan: ReturnType<NonNullable<typeof native>['createPlan']>;
      try {
        plan = native!.createPlan(spec, weights);
      } catch (e) {
        assert.ok(e instanceof BackendError, `position ${i} = ${bad}: ${String(e)}`);
        refused++;
        continue;
      }
      // Some changes still describe a valid (other) network: it must run within its own sizes.
      built++;
      const info = native!.planInfo(plan);
      if (info.inputSize === x.size) {
        const out = native!.runPlan(plan, x.handle, x.size, info.outputSize);
        native!.dispose(out);
      } else {
        assert.throws(() => native!.runPlan(plan, x.handle, x.size, info.outputSize), BackendError);
      }
      native!.freePlan(plan);
    }
  }
  assert.ok(refused > built, `refused ${refused}, built ${built}`);
  // Wrong weights: too few arrays, a wrong length.
  assert.throws(() => native!.createPlan(good.spec, weights.slice(1)), BackendError);
  assert.throws(() => native!.createPlan(good.spec, [new Float32Array(3), ...weights.slice(1)]), BackendError);
  // A freed plan handle is refused too.
  const plan = native!.createPlan(good.spec, weights);
  native!.freePlan(plan);
  assert.throws(() => native!.runPlan(plan, x.handle, x.size, 6), BackendError);
  assert.throws(() => native!.freePlan(plan), BackendError);
  x.dispose();
  const after = native!.stats();
  assert.equal(after.plans, before.plans);
  assert.equal(after.bytes, before.bytes);
  m.dispose();
});

test('many plan create/dispose cycles do not grow native memory', { skip }, () => {
  const m = noGrad(() =>
    xception({ backend: native!, stem: 'small', inputShape: [16, 16, 3], classes: 4, width: 0.25, middleBlocks: 1, seed: 9 }),
  );
  const x = randomImages(native!, 2, m.inputShape);
  const warm = compileInference(m, { batch: 2 });
  warm.run(x).dispose();
  warm.dispose();
  const base = native!.stats();
  let live = 0;
  for (let i = 0; i < 40; i++) {
    const plan = compileInference(m, { batch: 1 + (i % 3), logits: i % 2 === 0 });
    if (i === 0) live = native!.stats().bytes - base.bytes;
    if (plan.batch === 2) plan.run(x).dispose();
    plan.dispose();
  }
  const end = native!.stats();
  assert.ok(live > 0, 'a live plan shows in stats().bytes');
  assert.equal(end.plans, base.plans);
  assert.equal(end.buffers, base.buffers);
  assert.equal(end.bytes, base.bytes);
  x.dispose();
  m.dispose();
});
