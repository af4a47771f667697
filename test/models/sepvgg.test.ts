import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel, getModelEntry, OptionError, sepVgg, sepVggChannels, setBackend, ShapeError, tensor } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { Conv2D, SeparableConv2D } from '../../src/nn/layers/convolutional.js';
import { Add } from '../../src/nn/layers/merge.js';

const backend = referenceBackend;
setBackend(backend);

/** The layer names SepVGG should have: VGG16's blocks in Keras's style, Xception's shortcut names. */
function expectedNames(residual: boolean): string[] {
  const names = ['input_1'];
  const convs = [2, 2, 3, 3, 3];
  convs.forEach((n, i) => {
    const b = `block${i + 1}`;
    for (let j = 1; j <= n; j++) {
      const conv = i === 0 && j === 1 ? `${b}_conv1` : `${b}_sepconv${j}`;
      names.push(conv, `${conv}_bn`, `${conv}_act`);
    }
    if (residual && i > 0) names.splice(names.length - 3 * n, 0, `conv2d_${i}`, `batch_normalization_${i}`);
    if (i > 0) names.push(`${b}_pool`);
    if (residual && i > 0) names.push(`add_${i}`);
  });
  return [...names, 'avg_pool', 'predictions'];
}

test('sepvgg builds with and without residuals, with Keras-style names and VGG16 stages', () => {
  for (const residual of [true, false]) {
    const m = sepVgg({ stem: 'small', width: 0.125, residual, inputShape: [16, 16, 1], classes: 10, backend });
    try {
      assert.deepEqual([...m.layers.map((l) => l.name)].sort(), expectedNames(residual).sort(), `residual ${residual}: layer names`);
      assert.equal(m.layers.filter((l) => l instanceof Add).length, residual ? 4 : 0);
      const seps = m.layers.filter((l) => l instanceof SeparableConv2D);
      assert.equal(seps.length, 12); // 13 VGG16 convs, the first one regular
      assert.equal(m.layers.filter((l) => l instanceof Conv2D && !(l instanceof SeparableConv2D)).length, residual ? 5 : 1);
      // 'small' keeps block1's resolution: 16 → 16 → 8 → 4 → 2 → 1.
      const y = m.forward(tensor(new Float32Array(2 * 16 * 16), [2, 16, 16, 1]));
      assert.deepEqual(y.shape, [2, 10]);
      y.dispose();
    } finally {
      m.dispose();
    }
  }
  assert.deepEqual(sepVggChannels(0.5), [32, 64, 128, 256, 256]);
});

test('sepvgg: parameter counts (the residual-vgg recipe network), options checked, registered', () => {
  const count = (residual: boolean) => {
    const m = buildModel('sepvgg', { stem: 'small', width: 0.5, bnMomentum: 0.9, residual, inputShape: [28, 28, 1], classes: 10 });
    try {
      return m.summary().totalParams;
    } finally {
      m.dispose();
    }
  };
  const withRes = count(true),
    without = count(false);
  assert.equal(withRes, 547946);
  // The four shortcuts: 1×1 convs 32→64, 64→128, 128→256, 256→256 and their batch norms (4 values per channel).
  assert.equal(withRes - without, 32 * 64 + 64 * 128 + 128 * 256 + 256 * 256 + 4 * (64 + 128 + 256 + 256));
  const entry = getModelEntry('sepvgg');
  assert.ok(entry.paramsBound({ stem: 'small', width: 0.5, inputShape: [28, 28, 1], classes: 10 }) >= withRes);
  assert.throws(() => sepVgg({ segments: 4 } as never), OptionError);
  assert.throws(() => sepVgg({ inputShape: [28, 28, 1] }), ShapeError); // the imagenet stem needs 32
});
