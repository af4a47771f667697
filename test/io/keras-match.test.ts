import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeightFileError } from '../../src/io/errors.js';
import type { KerasLayer } from '../../src/io/keras-h5.js';
import { matchKerasWeights, type ModelLayerWeights } from '../../src/io/keras-match.js';

const t = (name: string, shape: number[], fill = 0) => ({
  name,
  shape,
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill),
});
const bn = (layer: string, c: number, fill: number) =>
  ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((n) => t(`${layer}/${n}:0`, [c], fill));

// A file in Keras Xception order: the residual pair (auto-named) follows the block's sepconv2_bn.
const fileLayers: KerasLayer[] = [
  { name: 'input_1', weights: [] },
  { name: 'block2_sepconv2_bn', weights: bn('block2_sepconv2_bn', 8, 1) },
  { name: 'conv2d_1', weights: [t('conv2d_1/kernel:0', [1, 1, 4, 8], 2)] },
  { name: 'batch_normalization_1', weights: bn('batch_normalization_1', 8, 3) },
  { name: 'add', weights: [] },
  { name: 'predictions', weights: [t('predictions/kernel:0', [8, 5], 4), t('predictions/bias:0', [5], 5)] },
];

const spec = (name: string, weights: [string, number[]][]): ModelLayerWeights => ({
  name,
  weights: weights.map(([n, s]) => ({ name: n, shape: s })),
});
const bnSpec = (name: string, c: number) =>
  spec(
    name,
    ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((n) => [n, [c]]),
  );

// The model names its residual layers differently (as a second model in one Keras session would).
const model: ModelLayerWeights[] = [
  spec('input', []),
  bnSpec('block2_sepconv2_bn', 8),
  spec('conv2d_7', [['kernel', [1, 1, 4, 8]]]),
  bnSpec('batch_normalization_7', 8),
  spec('predictions', [
    ['kernel', [8, 5]],
    ['bias', [5]],
  ]),
];

test("'order' pairs the i-th layer with weights of the model and of the file, whatever their names", () => {
  const a = matchKerasWeights(model, fileLayers, 'order');
  assert.equal(a.length, 4 + 1 + 4 + 2);
  const conv = a.find((x) => x.modelLayer === 'conv2d_7')!;
  assert.equal(conv.fileLayer, 'conv2d_1');
  assert.equal(conv.fileWeight, 'conv2d_1/kernel:0');
  assert.equal(conv.data[0], 2);
  assert.deepEqual(
    a.filter((x) => x.modelLayer === 'predictions').map((x) => [x.modelWeight, x.fileWeight, x.data[0]]),
    [
      ['kernel', 'predictions/kernel:0', 4],
      ['bias', 'predictions/bias:0', 5],
    ],
  );
});

function throwsWith(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WeightFileError);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test("'order' reports count, weight-count and shape mismatches naming layers and both shapes", () => {
  throwsWith(
    () => matchKerasWeights(model.slice(0, 4), fileLayers, 'order', 'w.h5'),
    /^w\.h5: /,
    /model has 3 layers with weights but the file has 4/,
    /"predictions"/,
  );
  const wrongShape = model.map((l) => (l.name === 'conv2d_7' ? spec('conv2d_7', [['kernel', [3, 3, 4, 8]]]) : l));
  throwsWith(
    () => matchKerasWeights(wrongShape, fileLayers, 'order'),
    /model layer "conv2d_7" weight "kernel" has shape \[3, 3, 4, 8\] but file layer "conv2d_1" weight "conv2d_1\/kernel:0" has shape \[1, 1, 4, 8\]/,
  );
  const withBias = model.map((l) =>
    l.name === 'conv2d_7'
      ? spec('conv2d_7', [
          ['kernel', [1, 1, 4, 8]],
          ['bias', [8]],
        ])
      : l,
  );
  throwsWith(
    () => matchKerasWeights(withBias, fileLayers, 'order'),
    /model layer "conv2d_7" has 2 weights .* but file layer "conv2d_1" has 1/,
  );
});

test("'name' pairs by layer name and rejects missing and extra layers", () => {
  const byName = model.map((l) =>
    l.name === 'conv2d_7' ? { ...l, name: 'conv2d_1' } : l.name === 'batch_normalization_7' ? { ...l, name: 'batch_normalization_1' } : l,
  );
  const a = matchKerasWeights([...byName].reverse(), fileLayers, 'name');
  assert.equal(a.length, 11);
  assert.equal(a.find((x) => x.modelLayer === 'batch_normalization_1' && x.modelWeight === 'gamma')!.data[0], 3);
  throwsWith(
    () => matchKerasWeights(model, fileLayers, 'name'),
    /model layer "conv2d_7" \(1 weights\) is missing from the file/,
    /file layer "conv2d_1" \(1 weights\) has no layer of that name in the model/,
  );
  const dropped = byName.filter((l) => l.name !== 'predictions');
  throwsWith(() => matchKerasWeights(dropped, fileLayers, 'name'), /file layer "predictions" \(2 weights\) has no layer/);
});

test('nothing is returned when any layer fails', () => {
  const bad = model.map((l) =>
    l.name === 'predictions'
      ? spec('predictions', [
          ['kernel', [8, 6]],
          ['bias', [6]],
        ])
      : l,
  );
  throwsWith(() => matchKerasWeights(bad, fileLayers, 'order'), /\[8, 6\].*\[8, 5\]/, /\[6\].*\[5\]/);
  assert.throws(() => matchKerasWeights(model, fileLayers, 'fuzzy' as 'order'), /unknown match mode/);
});
