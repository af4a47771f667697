import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import h5wasm from 'h5wasm/node';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { tensor } from '../../src/core/creation.js';
import { noGrad } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import { readKerasH5 } from '../../src/io/keras-h5.js';
import { loadWeights, saveWeights } from '../../src/io/model-weights.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensors.js';
import { inceptionV3 } from '../../src/models/inception_v3/inception_v3.js';
import { xception } from '../../src/models/xception/xception.js';
import type { Model } from '../../src/nn/model.js';

const backend = referenceBackend;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-weights-'));

const smallXception = (seed: number) =>
  noGrad(() => xception({ inputShape: [71, 71, 3], width: 1 / 16, middleBlocks: 1, classes: 5, seed, backend }));

/** Values a test can recognize, positive where BN variances need it. */
function knownValues(name: string, n: number, seed: number): Float32Array {
  const r = new Random(seed);
  const out = new Float32Array(n);
  const positive = name.includes('moving_variance');
  for (let i = 0; i < n; i++) out[i] = positive ? 0.5 + r.uniform() : (r.uniform() - 0.5) * 0.6;
  return out;
}

const snapshot = (m: Model) => m.weights.map((v) => Float32Array.from(v.value.data()));
const assertWeightsEqual = (m: Model, snap: Float32Array[], msg: string) =>
  m.weights.forEach((v, i) => assert.deepEqual(v.value.data(), snap[i], `${msg}: ${v.name}`));

function forward(m: Model, x: Float32Array): Float32Array {
  return noGrad(() => m.forward(tensor(x, [1, ...m.inputShape], { backend })).data());
}

interface FileLayer {
  name: string;
  weights: { name: string; shape: number[]; data: Float32Array }[];
}

/**
 * Writes a Keras legacy H5 weight file with h5wasm's own high-level API (independent of the
 * project's writer): fixed-length byte-string attributes, an empty float64 array for layers
 * without weights, datasets at /<layer>/<weight name>.
 */
function writeKerasStyleH5(file: string, layers: FileLayer[]): void {
  const f = new h5wasm.File(file, 'w');
  const width = (xs: string[]) => `S${Math.max(1, ...xs.map((s) => s.length))}`;
  const names = layers.map((l) => l.name);
  f.create_attribute('layer_names', names, null, width(names));
  f.create_attribute('backend', 'tensorflow');
  f.create_attribute('keras_version', '2.15.0');
  for (const l of layers) {
    const g = f.create_group(l.name);
    const wn = l.weights.map((w) => w.name);
    if (wn.length === 0) g.create_attribute('weight_names', new Float64Array(0), [0], '<f8');
    else g.create_attribute('weight_names', wn, null, width(wn));
    const made = new Set<string>();
    for (const w of l.weights) {
      const parts = w.name.split('/');
      let prefix = l.name;
      for (const p of parts.slice(0, -1)) {
        prefix = `${prefix}/${p}`;
        if (!made.has(prefix)) f.create_group(prefix);
        made.add(prefix);
      }
      f.create_dataset({ name: `${l.name}/${w.name}`, data: w.data, shape: w.shape, dtype: '<f4' });
    }
  }
  f.close();
}

/**
 * A Keras-layout file for `model`: layers in Keras order with known values; the residual layers
 * named as a Keras session that had already built other models would name them
 * (`conv2d_17`, `batch_normalization_23`, …), so only layer order can place them.
 */
function kerasFileFor(model: Model, seed: number): FileLayer[] {
  let k = 0;
  return model.layers.map((l) => {
    const renamed = l.name.replace(/^(conv2d|batch_normalization)_(\d+)$/, (_, p: string, n: string) => `${p}_${Number(n) + 16}`);
    k++;
    return {
      name: renamed,
      weights: l.weights.map((v) => ({
        name: `${renamed}/${v.weightName}:0`,
        shape: [...v.shape],
        data: knownValues(v.weightName, v.size, seed * 1000 + k),
      })),
    };
  });
}

await h5wasm.ready;

test('a Keras-layout H5 file (auto-named residual layers renamed) loads in Keras order and gives the outputs of setting the weights directly', async () => {
  const expected = smallXception(1);
  const fileLayers = kerasFileFor(expected, 7);
  // The file's residual layers really are named differently from the model's.
  assert.ok(fileLayers.some((l) => l.name === 'conv2d_17') && !expected.layers.some((l) => l.name === 'conv2d_17'));
  // "Setting the weights directly": the i-th layer with weights takes the file's i-th.
  const withWeights = fileLayers.filter((l) => l.weights.length > 0);
  expected.layersWithWeights.forEach((l, i) => l.weights.forEach((v, j) => v.setData(withWeights[i]!.weights[j]!.data)));
  const file = path.join(tmp, 'keras_order.h5');
  writeKerasStyleH5(file, fileLayers);

  const model = smallXception(2);
  const report = await loadWeights(model, file);
  assert.equal(report.mode, 'order', 'names differ, so auto falls back to Keras order');
  assert.equal(report.weights, model.weights.length);
  model.weights.forEach((v, i) => assert.deepEqual(v.value.data(), expected.weights[i]!.value.data(), v.name));
  // The residual branch of block2 got the file's conv2d_17 (it comes after block2_sepconv2_bn).
  assert.deepEqual(model.getLayer('conv2d_1').weights[0]!.value.data(), fileLayers.find((l) => l.name === 'conv2d_17')!.weights[0]!.data);

  const x = knownValues('input', 71 * 71 * 3, 99).map((v) => v * 3);
  const got = forward(model, x);
  const want = forward(expected, x);
  assert.deepEqual(got, want);
  assert.equal(got.length, 5);

  // By name, the renamed residual layers cannot be found: a clear error, nothing changed.
  const before = snapshot(model);
  const fresh = smallXception(3);
  const freshBefore = snapshot(fresh);
  await assert.rejects(loadWeights(fresh, file, { mode: 'name' }), (e: unknown) => {
    assert.ok(e instanceof WeightFileError);
    assert.match(e.message, /model layer "conv2d_1" \(1 weights\) is missing from the file/);
    assert.match(e.message, /model layer "batch_normalization_1" \(4 weights\) is missing from the file/);
    return true;
  });
  assertWeightsEqual(fresh, freshBefore, 'after a failed by-name load');
  assertWeightsEqual(model, before, 'untouched model');
  expected.dispose();
  model.dispose();
  fresh.dispose();
});

test('auto mode loads by name when the names match (a file whose layers are listed out of order)', async () => {
  const source = smallXception(4);
  const layers = source.layers.map((l) => ({
    name: l.name,
    weights: l.weights.map((v) => ({ name: `${v.name}:0`, shape: [...v.shape], data: knownValues(v.weightName, v.size, v.size) })),
  }));
  // Swap two layers in the file: order loading would mismatch shapes; names place them right.
  const a = layers.findIndex((l) => l.name === 'block1_conv1');
  const b = layers.findIndex((l) => l.name === 'predictions');
  [layers[a], layers[b]] = [layers[b]!, layers[a]!];
  const file = path.join(tmp, 'by_name.h5');
  writeKerasStyleH5(file, layers);
  const model = smallXception(5);
  const before = snapshot(model);
  await assert.rejects(
    loadWeights(model, file, { mode: 'order' }),
    /mode 'order'.*model layer "block1_conv1" has 1 weights \(kernel \[3, 3, 3, 2\]\) but file layer "predictions" has 2 \(predictions\/kernel:0 \[128, 5\], predictions\/bias:0 \[5\]\)/,
  );
  assertWeightsEqual(model, before, 'after the failed in-order load');
  const r = await loadWeights(model, file);
  assert.equal(r.mode, 'name');
  for (const l of layers) {
    for (const w of l.weights)
      assert.deepEqual(
        model
          .getLayer(l.name)
          .getWeight(w.name.slice(l.name.length + 1, -2))
          .value.data(),
        w.data,
      );
  }
  source.dispose();
  model.dispose();
});

test('mismatched H5 files are clear errors naming the layer and shapes, and leave the model unchanged', async () => {
  const model = smallXception(6);
  const before = snapshot(model);
  const base = () => kerasFileFor(model, 3);
  const cases: [string, (ls: FileLayer[]) => FileLayer[] | string, RegExp][] = [
    [
      'missing layer',
      (ls) => ls.filter((l) => l.name !== 'block3_sepconv1_bn'),
      /the model has \d+ layers with weights but the file has \d+ \(first model layer without a file layer: "predictions"\)/,
    ],
    [
      'wrong shape',
      (ls) =>
        ls.map((l) =>
          l.name !== 'block2_sepconv1'
            ? l
            : { ...l, weights: l.weights.map((w, i) => (i === 1 ? { ...w, shape: [1, 1, 4, 9], data: new Float32Array(36) } : w)) },
        ),
      /model layer "block2_sepconv1" weight "pointwise_kernel" has shape \[1, 1, 4, 8\] but file layer "block2_sepconv1" weight "block2_sepconv1\/pointwise_kernel:0" has shape \[1, 1, 4, 9\]/,
    ],
    [
      'extra weight',
      (ls) =>
        ls.map((l) =>
          l.name !== 'block1_conv2'
            ? l
            : { ...l, weights: [...l.weights, { name: 'block1_conv2/bias:0', shape: [4], data: new Float32Array(4) }] },
        ),
      /model layer "block1_conv2" has 1 weights \(kernel \[3, 3, 2, 4\]\) but file layer "block1_conv2" has 2 \(block1_conv2\/kernel:0 \[3, 3, 2, 4\], block1_conv2\/bias:0 \[4\]\)/,
    ],
    [
      'extra layer',
      (ls) => [...ls, { name: 'dense_9', weights: [{ name: 'dense_9/kernel:0', shape: [5, 2], data: new Float32Array(10) }] }],
      /first file layer without a model layer: "dense_9"/,
    ],
  ];
  for (const [what, edit, pattern] of cases) {
    const file = path.join(tmp, `bad_${what.replace(/ /g, '_')}.h5`);
    writeKerasStyleH5(file, edit(base()) as FileLayer[]);
    await assert.rejects(loadWeights(model, file), (e: unknown) => {
      assert.ok(e instanceof WeightFileError, what);
      assert.ok(e.message.startsWith(file), `${what}: names the file`);
      assert.match(e.message, pattern, what);
      return true;
    });
    assertWeightsEqual(model, before, what);
  }
  // Not HDF5 at all, and not there at all.
  const text = path.join(tmp, 'not_hdf5.h5');
  fs.writeFileSync(text, 'this is not an HDF5 file\n');
  await assert.rejects(loadWeights(model, text), /not_hdf5\.h5: not an HDF5 file \(no HDF5 signature; 25 bytes/);
  await assert.rejects(loadWeights(model, path.join(tmp, 'nope.h5')), /nope\.h5: no such file/);
  await assert.rejects(loadWeights(model, tmp), /is a directory/);
  // A notop file into a model with the top.
  const notop = noGrad(() => xception({ inputShape: [71, 71, 3], width: 1 / 16, middleBlocks: 1, includeTop: false, backend }));
  const notopFile = path.join(tmp, 'notop.h5');
  await saveWeights(notop, notopFile, 'keras-h5');
  await assert.rejects(loadWeights(model, notopFile), /first model layer without a file layer: "predictions"/);
  assertWeightsEqual(model, before, 'after all failed loads');
  notop.dispose();
  model.dispose();
});

test('save → load round-trips bit for bit (Keras H5 and safetensors), with Keras names and order in the H5 file', async () => {
  const a = smallXception(8);
  // Values with full mantissas and awkward exponents, not just the initializer's.
  a.weights.forEach((v, i) => {
    const d = knownValues(v.weightName, v.size, 50 + i);
    d.forEach((x, j) => (d[j] = x * (j % 3 === 0 ? 1e-30 : j % 3 === 1 ? 3.1e7 : 1)));
    if (v.weightName === 'moving_variance') d.forEach((x, j) => (d[j] = Math.abs(x) + 1e-3));
    v.setData(d);
  });
  const h5 = path.join(tmp, 'roundtrip.h5');
  const st = path.join(tmp, 'roundtrip.safetensors');
  await saveWeights(a, h5, 'keras-h5');
  await saveWeights(a, st, 'safetensors');

  const layers = await readKerasH5(h5);
  assert.deepEqual(
    layers.map((l) => l.name),
    a.layers.map((l) => l.name),
    'every layer, in Keras order',
  );
  assert.equal(layers[0]!.name, 'input_1');
  assert.deepEqual(
    layers.find((l) => l.name === 'block2_sepconv1')!.weights.map((w) => w.name),
    ['block2_sepconv1/depthwise_kernel:0', 'block2_sepconv1/pointwise_kernel:0'],
  );
  assert.deepEqual(
    layers.find((l) => l.name === 'block1_conv1_bn')!.weights.map((w) => w.name),
    ['block1_conv1_bn/gamma:0', 'block1_conv1_bn/beta:0', 'block1_conv1_bn/moving_mean:0', 'block1_conv1_bn/moving_variance:0'],
  );
  const names = layers.map((l) => l.name);
  assert.ok(
    names.indexOf('conv2d_1') > names.indexOf('block2_sepconv2_bn'),
    "residual conv after the block's sepconv2_bn, as Keras lists it",
  );

  for (const [file, mode] of [
    [h5, 'order'],
    [h5, 'name'],
    [st, 'auto'],
  ] as const) {
    const b = smallXception(9);
    await loadWeights(b, file, { mode });
    b.weights.forEach((v, i) => {
      const want = a.weights[i]!.value.data();
      const got = v.value.data();
      assert.deepEqual(
        new Uint32Array(got.buffer, got.byteOffset, got.length),
        new Uint32Array(want.buffer, want.byteOffset, want.length),
        `${file} ${mode}: ${v.name}`,
      );
    });
    b.dispose();
  }
  const meta = (await readSafetensorsFile(st)).metadata;
  assert.equal(meta['format'], 'xception-weights/1');
  assert.equal(JSON.parse(meta['model_config']!).model, 'xception');
  assert.equal(JSON.parse(meta['model_config']!).width, 1 / 16);
  a.dispose();
});

test('Inception V3 (BatchNormalization without gamma) saves [beta, moving_mean, moving_variance] and round-trips', async () => {
  const a = noGrad(() => inceptionV3({ inputShape: [75, 75, 3], width: 1 / 16, classes: 3, seed: 1, backend }));
  a.weights.forEach((v, i) => v.setData(knownValues(v.weightName, v.size, 300 + i)));
  const file = path.join(tmp, 'inception.h5');
  await saveWeights(a, file, 'keras-h5');
  const layers = await readKerasH5(file);
  assert.deepEqual(
    layers.find((l) => l.name === 'batch_normalization_1')!.weights.map((w) => w.name),
    ['batch_normalization_1/beta:0', 'batch_normalization_1/moving_mean:0', 'batch_normalization_1/moving_variance:0'],
  );
  const b = noGrad(() => inceptionV3({ inputShape: [75, 75, 3], width: 1 / 16, classes: 3, seed: 2, backend }));
  await loadWeights(b, file);
  b.weights.forEach((v, i) => assert.deepEqual(v.value.data(), a.weights[i]!.value.data(), v.name));
  // A file with gamma (an Xception-style BN) does not fit: the counts differ, named.
  const withGamma = layers.map((l) =>
    l.name !== 'batch_normalization_1'
      ? l
      : {
          ...l,
          weights: [
            { name: 'batch_normalization_1/gamma:0', shape: l.weights[0]!.shape, data: new Float32Array(l.weights[0]!.data.length) },
            ...l.weights,
          ],
        },
  );
  const bad = path.join(tmp, 'inception_gamma.h5');
  writeKerasStyleH5(bad, withGamma);
  const before = snapshot(b);
  await assert.rejects(
    loadWeights(b, bad),
    /model layer "batch_normalization_1" has 3 weights \(beta \[2\], moving_mean \[2\], moving_variance \[2\]\) but file layer "batch_normalization_1" has 4/,
  );
  assertWeightsEqual(b, before, 'inception after the failed load');
  a.dispose();
  b.dispose();
});

test('safetensors weights load by full name; missing, extra and misshapen weights are clear errors and change nothing', async () => {
  const model = smallXception(10);
  const before = snapshot(model);
  const all = model.weights.map((v) => ({ name: v.name, shape: [...v.shape], data: knownValues(v.name, v.size, 1) }));
  const cases: [string, typeof all, RegExp][] = [
    [
      'missing',
      all.filter((w) => w.name !== 'block4_sepconv2_bn/gamma'),
      /model weight "block4_sepconv2_bn\/gamma" \[46\] is missing from the file/,
    ],
    [
      'extra',
      [...all, { name: 'block4_sepconv2_bn/delta', shape: [2], data: new Float32Array(2) }],
      /file weight "block4_sepconv2_bn\/delta" \[2\] has no weight of that name in the model/,
    ],
    [
      'shape',
      all.map((w) => (w.name === 'predictions/kernel' ? { ...w, shape: [5, 128] } : w)),
      /model weight "predictions\/kernel" has shape \[128, 5\] but the file's has \[5, 128\]/,
    ],
  ];
  for (const [what, weights, pattern] of cases) {
    const file = path.join(tmp, `bad_${what}.safetensors`);
    await writeSafetensorsFile(file, weights);
    await assert.rejects(loadWeights(model, file), pattern, what);
    assertWeightsEqual(model, before, what);
  }
  // A checkpoint is pointed at its run folder.
  const ck = path.join(tmp, 'checkpoint.safetensors');
  await writeSafetensorsFile(ck, [], { format: 'xception-checkpoint/1' });
  await assert.rejects(loadWeights(model, ck), /training checkpoint.*run folder/);
  // Neither format.
  const junk = path.join(tmp, 'junk.bin');
  fs.writeFileSync(junk, Buffer.from([1, 2, 3]));
  await assert.rejects(
    loadWeights(model, junk),
    /junk\.bin: not a weight file: neither HDF5 \(Keras \.h5\) nor safetensors \(3 bytes, starting 01 02 03\)/,
  );
  const zip = path.join(tmp, 'model.keras');
  fs.writeFileSync(zip, Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]));
  await assert.rejects(loadWeights(model, zip), /model\.keras: a zip archive \(a Keras 3 \.keras model\?\): not supported/);
  model.dispose();
});
