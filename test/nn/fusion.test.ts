/**
 * Model.forward runs each batch norm whose only consumer is a ReLU as one fused kernel. The
 * fused and the as-written paths compute the same numbers in the same order, so they must agree
 * to rounding (measured: bit for bit) in training and inference, forward and backward, on both
 * backends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, ops, Random, tensor, tidy, xception, inceptionV3 } from '../../src/index.js';
import type { Backend } from '../../src/core/backend.js';
import type { Model } from '../../src/nn/model.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadNativeBackend } from '../../src/backends/onednn/index.js';

function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0,
    scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return scale === 0 ? err : err / scale;
}

/** Logits, weight gradients and moving statistics after one training step, and inference logits. */
function step(build: () => Model, backend: Backend, fuse: boolean) {
  const model = build();
  const rng = new Random(9);
  const [h, w, c] = model.inputShape as number[];
  const x = tensor(
    Float32Array.from({ length: 4 * h! * w! * c! }, () => rng.uniform(-1, 1)),
    [4, h!, w!, c!],
    { backend },
  );
  const labels = [0, 1, 2, 1];
  const out = tidy(() => {
    const logits = model.forward(x, { training: true, logits: true, fuse });
    backward(ops.softmaxCrossEntropy(logits, labels));
    return logits.data();
  });
  const grads = model.trainableWeights.map((v) => v.value.grad!.data());
  const stats = model.weights.filter((v) => !v.trainable).map((v) => v.value.data());
  const inference = tidy(() => model.forward(x, { fuse }).data());
  model.dispose();
  x.dispose();
  return { out, grads, stats, inference };
}

const native = loadNativeBackend();
const backends: Array<[string, Backend | null]> = [
  ['reference', referenceBackend],
  ['native', native],
];

for (const [name, backend] of backends) {
  test(`fused batch norm → ReLU equals the layers as written (${name} backend)`, {
    skip: backend ? false : 'native backend not built',
  }, () => {
    const models: Array<[string, () => Model]> = [
      [
        'xception',
        () => xception({ backend: backend!, stem: 'small', inputShape: [28, 28, 1], classes: 3, width: 1 / 16, middleBlocks: 1, seed: 2 }),
      ],
      [
        'inception_v3',
        () => inceptionV3({ backend: backend!, stem: 'small', inputShape: [32, 32, 1], classes: 3, width: 1 / 16, seed: 2 }),
      ],
    ];
    for (const [label, build] of models) {
      const fused = step(build, backend!, true),
        plain = step(build, backend!, false);
      assert.ok(maxRelError(fused.out, plain.out) <= 1e-6, `${label} logits`);
      assert.ok(maxRelError(fused.inference, plain.inference) <= 1e-6, `${label} inference`);
      assert.equal(fused.grads.length, plain.grads.length);
      fused.grads.forEach((g, i) => assert.ok(maxRelError(g, plain.grads[i]!) <= 1e-5, `${label} gradient ${i}`));
      fused.stats.forEach((s, i) => assert.ok(maxRelError(s, plain.stats[i]!) <= 1e-6, `${label} moving statistic ${i}`));
    }
  });
}

test('the fused path really fuses: fewer ReLU kernels, and batch norms that feed an add stay unfused', () => {
  const calls = { relu: 0, fusedTrain: 0 };
  const counting: Backend = {
    ...referenceBackend,
    relu: (...a) => (calls.relu++, referenceBackend.relu(...a)),
    batchNormTrain: (...a) => {
      if (a[3].relu) calls.fusedTrain++;
      return referenceBackend.batchNormTrain(...a);
    },
  };
  const count = (fuse: boolean) => {
    calls.relu = calls.fusedTrain = 0;
    const model = xception({ backend: counting, stem: 'small', inputShape: [28, 28, 1], classes: 3, width: 1 / 16, middleBlocks: 1 });
    const x = tensor(
      new Float32Array(2 * 784).map((_, i) => Math.cos(i)),
      [2, 28, 28, 1],
      { backend: counting },
    );
    tidy(() => model.forward(x, { training: true, fuse }));
    model.dispose();
    x.dispose();
    return { ...calls };
  };
  const plain = count(false),
    fused = count(true);
  assert.equal(plain.fusedTrain, 0);
  // block1 (2), block2–4 sepconv1_bn (3), middle block sepconv1/2_bn (2), block5 sepconv1_bn (1), block6 (2).
  assert.equal(fused.fusedTrain, 10);
  assert.equal(fused.relu, plain.relu - 10);
});
