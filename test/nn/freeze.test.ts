import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, ops, Random, tensor, tidy, xception } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';

test('freezing part of a model: frozen layers get no gradient and their BatchNorm keeps its statistics', () => {
  const backend = referenceBackend;
  const m = xception({ backend, stem: 'small', inputShape: [8, 8, 1], classes: 3, width: 1 / 16, middleBlocks: 1 });
  const allTrainable = m.trainableWeights.length;
  m.freeze('block4_pool');
  const frozen = m.layers.slice(0, m.layers.findIndex((l) => l.name === 'block4_pool') + 1);
  assert.ok(frozen.every((l) => !l.trainable));
  assert.ok(m.trainableWeights.length < allTrainable);
  const bn = m.getLayer('block1_conv1_bn');
  const meanBefore = bn.getWeight('moving_mean').value.data();
  const rng = new Random(1);
  const x = tensor(
    Float32Array.from({ length: 4 * 64 }, () => rng.normal()),
    [4, 8, 8, 1],
    { backend },
  );
  tidy(() => backward(ops.softmaxCrossEntropy(m.forward(x, { training: true, logits: true }), [0, 1, 2, 0])));
  for (const l of frozen) for (const w of l.weights) assert.equal(w.value.grad, null, `${w.name} is frozen but got a gradient`);
  assert.ok(m.getLayer('predictions').weights[0]!.value.grad, 'the unfrozen head trains');
  assert.deepEqual(bn.getWeight('moving_mean').value.data(), meanBefore, 'a frozen BatchNorm runs in inference mode');
  const unfrozenBn = m.getLayer('block7_sepconv1_bn');
  assert.notDeepEqual(unfrozenBn.getWeight('moving_mean').value.data(), new Float32Array(unfrozenBn.getWeight('moving_mean').size));
  m.unfreeze();
  assert.equal(m.trainableWeights.length, allTrainable);
  m.dispose();
});
