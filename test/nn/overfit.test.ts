import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, ops, Random, tensor, tidy, xception } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { Optimizer } from '../../src/train/optimizers.js';

test('a tiny Xception over-fits a tiny batch: the loss falls 10× within a few dozen steps', () => {
  const backend = referenceBackend;
  const model = xception({ backend, stem: 'small', inputShape: [8, 8, 1], classes: 4, width: 1 / 16, middleBlocks: 1, seed: 1 });
  const rng = new Random(5);
  const n = 8;
  const x = tensor(
    Float32Array.from({ length: n * 64 }, () => rng.uniform(-1, 1)),
    [n, 8, 8, 1],
    { backend },
  );
  const labels = Array.from({ length: n }, (_, i) => i % 4);
  const opt = new Optimizer('adam', { lr: 0.01 });
  const losses: number[] = [];
  for (let step = 0; step < 40; step++) {
    const loss = tidy(() => {
      const l = ops.softmaxCrossEntropy(model.forward(x, { training: true, logits: true }), labels);
      backward(l);
      return l.item();
    });
    opt.apply(model.trainableWeights);
    losses.push(loss);
  }
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses.at(-1)! < losses[0]! / 10, `loss went from ${losses[0]} to ${losses.at(-1)}`);
  model.dispose();
});
