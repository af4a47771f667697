/**
 * Batch norm in inference mode while it trains (the fine-tuning half of the Keras transfer
 * recipe): the moving statistics normalize and stay untouched, gamma and beta still learn, and
 * the gradients are those of the inference formula — checked by finite differences, on the
 * fused BN→ReLU path too, and against the native backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, compileInference, noGrad, ops, Optimizer, Random, tensor, tidy, xception } from '../../src/index.js';
import type { Backend } from '../../src/core/backend.js';
import type { Tensor } from '../../src/core/tensor.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadNativeBackend } from '../../src/backends/onednn/index.js';
import { BatchNormalization } from '../../src/nn/layers/normalization.js';
import type { Model } from '../../src/nn/model.js';
import { assertGradient, dot } from '../helpers/gradcheck.js';
import { errors, randomizeStatistics } from '../infer/helpers.js';

const native = loadNativeBackend();

function randomArray(n: number, rng: Random, lo = -1, hi = 1): Float64Array {
  return Float64Array.from({ length: n }, () => rng.uniform(lo, hi));
}

for (const relu of [false, true]) {
  test(`an unfrozen batch norm in inference mode has the inference formula's gradients${relu ? ' (fused ReLU)' : ''}`, () => {
    const b = referenceBackend;
    const channels = 3;
    const shape = [2, 2, 3, channels];
    const rng = new Random(relu ? 5 : 4);
    const bn = new BatchNormalization({ name: 'bn' });
    bn.ensureBuilt([shape.slice(1)], { backend: b });
    const params = { gamma: randomArray(channels, rng, 0.5, 1.5), beta: randomArray(channels, rng, -0.5, 0.5) };
    const mean = randomArray(channels, rng, -0.3, 0.3);
    const variance = randomArray(channels, rng, 0.5, 2);
    // Statistics far from the batch's: a layer that normalized with batch statistics would be far off.
    bn.movingMean.assign(tensor(mean, [channels], { backend: b }));
    bn.movingVariance.assign(tensor(variance, [channels], { backend: b }));
    bn.inferenceMode = true;
    const x = randomArray(
      shape.reduce((a, c) => a * c, 1),
      rng,
      -2,
      2,
    );
    const r = randomArray(x.length, rng);
    const ctx = { training: true, rng };
    const run = (xv: Float64Array, gv: Float64Array, bv: Float64Array): { y: Tensor; xt: Tensor } => {
      bn.gamma!.assign(tensor(gv, [channels], { backend: b }));
      bn.beta!.assign(tensor(bv, [channels], { backend: b }));
      const xt = tensor(xv, shape, { backend: b });
      xt.requiresGrad = true;
      const inputs = [xt];
      return { y: relu ? bn.callWithRelu(inputs, ctx) : bn.call(inputs, ctx), xt };
    };
    const loss = (xv: Float64Array, gv: Float64Array, bv: Float64Array) => tidy(() => dot(run(xv, gv, bv).y.dataRaw(), r));
    let dx!: Float64Array, dgamma!: Float64Array, dbeta!: Float64Array;
    tidy(() => {
      const { y, xt } = run(x, params.gamma, params.beta);
      backward(y, { grad: tensor(r, shape, { backend: b }) });
      dx = xt.grad!.dataRaw() as Float64Array;
      dgamma = bn.gamma!.value.grad!.dataRaw() as Float64Array;
      dbeta = bn.beta!.value.grad!.dataRaw() as Float64Array;
    });
    assertGradient(dx, (v) => loss(v, params.gamma, params.beta), x, 'dx');
    assertGradient(dgamma, (v) => loss(x, v, params.beta), params.gamma, 'dgamma');
    assertGradient(dbeta, (v) => loss(x, params.gamma, v), params.beta, 'dbeta');
    assert.deepEqual(bn.movingMean.value.dataRaw(), mean, 'moving mean unchanged by a training call');
    assert.deepEqual(bn.movingVariance.value.dataRaw(), variance, 'moving variance unchanged by a training call');
    // The same layer out of inference mode normalizes with the batch and moves its statistics.
    bn.inferenceMode = false;
    tidy(() => run(x, params.gamma, params.beta));
    assert.notDeepEqual(bn.movingMean.value.dataRaw(), mean);
  });
}

function tinyModel(backend: Backend): Model {
  const m = noGrad(() => xception({ backend, stem: 'small', inputShape: [8, 8, 2], classes: 3, width: 1 / 16, middleBlocks: 1, seed: 1 }));
  randomizeStatistics(m);
  return m;
}

function batch(backend: Backend): Tensor {
  const rng = new Random(2);
  return tensor(
    Float32Array.from({ length: 4 * 8 * 8 * 2 }, () => rng.uniform(-1, 1)),
    [4, 8, 8, 2],
    { backend },
  );
}

/** One training step; returns every weight's value after it, by name. */
function trainStep(m: Model, x: Tensor, fuse = true): { logits: Float32Array; grads: Map<string, Float32Array> } {
  const grads = new Map<string, Float32Array>();
  const logits = tidy(() => {
    const out = m.forward(x, { training: true, logits: true, fuse });
    backward(ops.softmaxCrossEntropy(out, [0, 1, 2, 1]));
    return out.data() as Float32Array;
  });
  for (const v of m.trainableWeights) if (v.value.grad) grads.set(v.name, v.value.grad.data() as Float32Array);
  return { logits, grads };
}

const statNames = (m: Model) => m.weights.filter((v) => v.weightName.startsWith('moving_')).map((v) => v.name);
const snapshot = (m: Model) => new Map(m.weights.map((v) => [v.name, v.value.data() as Float32Array]));

test('Model.setBatchNormInference: training keeps every moving statistic while gamma, beta and kernels learn', () => {
  const m = tinyModel(referenceBackend);
  const x = batch(referenceBackend);
  m.setBatchNormInference(true);
  const before = snapshot(m);
  const inference = tidy(() => m.forward(x, { logits: true }).data());
  const { logits, grads } = trainStep(m, x);
  assert.deepEqual(logits, inference, 'a training forward equals the inference forward');
  assert.ok(grads.has('block1_conv1_bn/gamma') && grads.has('block1_conv1_bn/beta'), 'gamma and beta get gradients');
  new Optimizer('sgd', { lr: 0.1 }).apply(m.weights);
  const after = snapshot(m);
  for (const name of statNames(m)) assert.deepEqual(after.get(name), before.get(name), `${name} changed`);
  for (const name of [
    'block1_conv1_bn/gamma',
    'block1_conv1_bn/beta',
    'block1_conv1/kernel',
    'block2_sepconv1/depthwise_kernel',
    'predictions/kernel',
  ]) {
    assert.notDeepEqual(after.get(name), before.get(name), `${name} did not train`);
  }
  // Back to the usual mode: a training step moves the statistics again.
  m.setBatchNormInference(false);
  trainStep(m, x);
  assert.notDeepEqual(snapshot(m).get('block1_conv1_bn/moving_mean'), after.get('block1_conv1_bn/moving_mean'));
  m.dispose();
  x.dispose();
});

test('inference-mode batch norm on the native backend: fused and unfused paths agree with the reference', {
  skip: native ? false : 'native backend not built',
}, () => {
  const results = (
    [
      [referenceBackend, true],
      [native!, true],
      [native!, false],
    ] as const
  ).map(([backend, fuse]) => {
    const m = tinyModel(backend);
    m.setBatchNormInference(true);
    const x = batch(backend);
    const stats = statNames(m);
    const before = snapshot(m);
    const r = trainStep(m, x, fuse);
    for (const name of stats) assert.deepEqual(snapshot(m).get(name), before.get(name), `${name} changed (${backend.name}, fuse ${fuse})`);
    m.dispose();
    x.dispose();
    return r;
  });
  const [ref, fused, plain] = results;
  for (const other of [fused!, plain!]) {
    assert.ok(errors(other.logits, ref!.logits).rel <= 1e-5, 'logits');
    assert.equal(other.grads.size, ref!.grads.size);
    for (const [name, g] of ref!.grads) assert.ok(errors(other.grads.get(name)!, g).rel <= 1e-4, `gradient of ${name}`);
  }
});

test('compiled inference ignores the inference-mode flag: the same plan output either way', {
  skip: native ? false : 'native backend not built',
}, () => {
  const m = tinyModel(native!);
  const x = batch(native!);
  const plain = noGrad(() => m.forward(x, { logits: true }).data());
  const run = () => {
    const plan = compileInference(m, { batch: 4, logits: true });
    try {
      return plan.runData(x.data() as Float32Array);
    } finally {
      plan.dispose();
    }
  };
  const off = run();
  m.setBatchNormInference(true);
  const on = run();
  assert.deepEqual(on, off);
  assert.ok(errors(on, plain).rel <= 1e-4, 'the plan computes the model');
  m.dispose();
  x.dispose();
});
