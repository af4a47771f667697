import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import { encodeKerasH5, type KerasLayer, readKerasH5, writeKerasH5 } from '../../src/io/keras-h5.js';

// Fixtures live in the source tree (tsc does not copy them to dist/).
const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '../../../test/io/fixtures');

/** The generator's value rule (make_keras_fixtures.py), rounded like the stored dtype. */
function expectedValues(layerIndex: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = layerIndex + 0.001 * i;
  return out;
}

test('reads an h5py-written Keras-style file: layer order, weight names, shapes, values', async () => {
  const layers = await readKerasH5(path.join(fixtures, 'keras_style.h5'));
  assert.deepEqual(
    layers.map((l) => l.name),
    [
      'input_1',
      'block1_conv1',
      'block1_conv1_bn',
      'block1_conv1_act',
      'block2_sepconv1',
      'block2_sepconv2_bn',
      'conv2d_1',
      'batch_normalization_1',
      'add_1',
      'avg_pool',
      'predictions',
    ],
  );
  assert.deepEqual(layers[0]!.weights, []);
  const sep = layers[4]!;
  assert.deepEqual(
    sep.weights.map((w) => [w.name, w.shape]),
    [
      ['block2_sepconv1/depthwise_kernel:0', [3, 3, 4, 1]],
      ['block2_sepconv1/pointwise_kernel:0', [1, 1, 4, 8]],
    ],
  );
  assert.deepEqual(
    layers[2]!.weights.map((w) => w.name),
    ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((n) => `block1_conv1_bn/${n}:0`),
  );
  layers.forEach((layer, li) => {
    for (const w of layer.weights) assert.deepEqual(w.data, expectedValues(li, w.data.length), `${layer.name} ${w.name}`);
  });
});

test('reads /model_weights, split attributes, vlen strings, big-endian, float64 and gzip datasets', async () => {
  const bytes = fs.readFileSync(path.join(fixtures, 'variants.h5'));
  const layers = await readKerasH5(new Uint8Array(bytes), 'variants.h5');
  assert.deepEqual(
    layers.map((l) => [l.name, l.weights.map((w) => [w.name, w.shape])]),
    [
      [
        'dense_a',
        [
          ['dense_a/kernel:0', [3, 2]],
          ['dense_a/bias:0', [2]],
        ],
      ],
      ['dense_b', [['dense_b/kernel:0', [4, 4]]]],
      ['no_weights', []],
    ],
  );
  assert.deepEqual(layers[0]!.weights[0]!.data, expectedValues(0, 6));
  assert.deepEqual(layers[0]!.weights[1]!.data, expectedValues(0, 2));
  assert.deepEqual(layers[1]!.weights[0]!.data, expectedValues(1, 16));
});

function randomLayers(rng: Random): KerasLayer[] {
  const w = (name: string, shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.normal();
    return { name, shape, data };
  };
  return [
    { name: 'input_1', weights: [] },
    { name: 'block1_conv1', weights: [w('block1_conv1/kernel:0', [3, 3, 3, 32])] },
    {
      name: 'block2_sepconv1',
      weights: [w('block2_sepconv1/depthwise_kernel:0', [3, 3, 32, 1]), w('block2_sepconv1/pointwise_kernel:0', [1, 1, 32, 16])],
    },
    { name: 'odd', weights: [w('scalar:0', []), w('nested/deeper/empty:0', [0, 3]), w('nested/deeper/v:0', [2])] },
    { name: 'predictions', weights: [w('predictions/kernel:0', [16, 10]), w('predictions/bias:0', [10])] },
  ];
}

function assertSameLayers(actual: KerasLayer[], expected: KerasLayer[]): void {
  assert.deepEqual(
    actual.map((l) => [l.name, l.weights.map((w) => [w.name, w.shape])]),
    expected.map((l) => [l.name, l.weights.map((w) => [w.name, w.shape])]),
  );
  expected.forEach((l, i) =>
    l.weights.forEach((w, j) => {
      const got = actual[i]!.weights[j]!.data;
      assert.deepEqual(
        new Uint32Array(got.buffer, got.byteOffset, got.length),
        new Uint32Array(w.data.buffer, w.data.byteOffset, w.data.length),
        `${l.name} ${w.name}`,
      );
    }),
  );
}

test('Keras H5 write then read is bit for bit (NaN, -0, subnormals, scalars, empty tensors)', async () => {
  const layers = randomLayers(new Random(5));
  const k = layers[1]!.weights[0]!.data;
  k[0] = NaN;
  k[1] = -0;
  k[2] = -Infinity;
  k[3] = 1.4e-45;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-h5-'));
  try {
    const file = path.join(dir, 'w.h5');
    await writeKerasH5(layers, file, { kerasVersion: '2.15.0' });
    assert.deepEqual(fs.readdirSync(dir), ['w.h5']);
    assertSameLayers(await readKerasH5(file), layers);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('long layer lists are split into layer_names0, layer_names1, … like Keras and read back', async () => {
  const layers: KerasLayer[] = [];
  for (let i = 0; i < 2500; i++) layers.push({ name: `a_rather_long_layer_name_number_${String(i).padStart(5, '0')}`, weights: [] });
  layers.push({ name: 'last', weights: [{ name: 'last/bias:0', shape: [1], data: new Float32Array([3]) }] });
  const back = await readKerasH5(await encodeKerasH5(layers));
  assert.deepEqual(
    back.map((l) => l.name),
    layers.map((l) => l.name),
  );
  assert.equal(back.at(-1)!.weights[0]!.data[0], 3);
});

function h5pyAvailable(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import h5py'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('files we write load the way Keras loads them (h5py, Keras legacy loader logic)', {
  skip: h5pyAvailable() ? false : 'needs /usr/bin/python3 with h5py (Debian python3-h5py)',
}, async () => {
  const layers = randomLayers(new Random(9));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-h5py-'));
  try {
    const file = path.join(dir, 'w.h5');
    await writeKerasH5(layers, file);
    // Keras's load_weights_from_hdf5_group, reduced to its reading logic.
    const script = `
import sys, json, h5py, numpy as np
def attr_list(g, name):
    if name in g.attrs: data = [n.decode('utf8') if hasattr(n, 'decode') else n for n in g.attrs[name]]
    else:
        data, i = [], 0
        while f'{name}{i}' in g.attrs:
            data += [n.decode('utf8') if hasattr(n, 'decode') else n for n in g.attrs[f'{name}{i}']]; i += 1
    return data
f = h5py.File(sys.argv[1], 'r')
out = {'backend': f.attrs['backend'].decode(), 'layers': []}
for name in attr_list(f, 'layer_names'):
    g = f[name]
    ws = [np.asarray(g[w]) for w in attr_list(g, 'weight_names')]
    out['layers'].append([name, attr_list(g, 'weight_names'), [list(w.shape) for w in ws], [str(w.dtype) for w in ws], [w.astype(np.float32).tobytes().hex() for w in ws]])
print(json.dumps(out))
`;
    const result = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, file]).toString()) as {
      backend: string;
      layers: [string, string[], number[][], string[], string[]][];
    };
    assert.equal(result.backend, 'tensorflow');
    assert.deepEqual(
      result.layers.map((l) => [l[0], l[1], l[2]]),
      layers.map((l) => [l.name, l.weights.map((w) => w.name), l.weights.map((w) => w.shape)]),
    );
    result.layers.forEach((l, i) => {
      assert.ok(l[3].every((d) => d === 'float32'));
      layers[i]!.weights.forEach((w, j) =>
        assert.equal(l[4][j], Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength).toString('hex')),
      );
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

async function rejectsTyped(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof WeightFileError, `expected WeightFileError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('non-HDF5, truncated and non-Keras files give a typed error naming the file', async () => {
  await rejectsTyped(readKerasH5(new TextEncoder().encode('{"not": "hdf5"}'), 'x.json'), /^x\.json: not an HDF5 file/);
  await rejectsTyped(readKerasH5('/nonexistent/weights.h5'), /weights\.h5: cannot read file/);
  const good = new Uint8Array(fs.readFileSync(path.join(fixtures, 'keras_style.h5')));
  await rejectsTyped(readKerasH5(good.subarray(0, 3000), 'cut.h5'), /^cut\.h5: HDF5 error: .*truncated file/);
  const plain = await encodeKerasH5([]);
  assert.deepEqual(await readKerasH5(plain), []);
  // A valid HDF5 file that is not a Keras weight file.
  const notKeras = fs.readFileSync(path.join(fixtures, 'variants.h5'));
  // still reads: /model_weights is recognised; break it by renaming the attribute bytes
  const renamed = Buffer.from(notKeras);
  let at = renamed.indexOf('layer_names0');
  while (at >= 0) {
    renamed.write('LAYER_NAMES0', at);
    at = renamed.indexOf('layer_names0', at + 1);
  }
  await rejectsTyped(readKerasH5(new Uint8Array(renamed), 'other.h5'), /no "layer_names" attribute/);
  // After all those failures the HDF5 instance still works.
  assert.equal((await readKerasH5(good)).length, 11);
});

test('writer refuses names HDF5 cannot hold and inconsistent data', async () => {
  const w = { name: 'k:0', shape: [2], data: new Float32Array(2) };
  await rejectsTyped(encodeKerasH5([{ name: 'a/b', weights: [] }]), /cannot be an HDF5 group name/);
  await rejectsTyped(
    encodeKerasH5([
      { name: 'a', weights: [] },
      { name: 'a', weights: [] },
    ]),
    /duplicate layer name/,
  );
  await rejectsTyped(encodeKerasH5([{ name: 'a', weights: [{ ...w, shape: [3] }] }]), /holds 3 values but data has 2/);
  await rejectsTyped(encodeKerasH5([{ name: 'a', weights: [w, { ...w, name: 'k:0/x' }] }]), /both a group and a dataset/);
  await rejectsTyped(encodeKerasH5([{ name: 'a', weights: [{ ...w, name: '/abs' }] }]), /not a valid relative HDF5 path/);
});

test('an isolated read that runs out of time is stopped with a typed error, and the next read works', async () => {
  const bytes = new Uint8Array(fs.readFileSync(path.join(fixtures, 'keras_style.h5')));
  // A 64 MiB file: copying it to the worker and parsing it takes far longer than 1 ms, so the
  // timer always wins (with the small fixture a warm worker sometimes answered first).
  const big = await encodeKerasH5([
    { name: 'big', weights: [{ name: 'big/kernel:0', shape: [4096, 4096], data: new Float32Array(4096 * 4096) }] },
  ]);
  await rejectsTyped(readKerasH5(big, { label: 'slow.h5', timeoutMs: 1 }), /^slow\.h5: reading took longer than 1 ms/);
  assert.equal((await readKerasH5(bytes, { label: 'again.h5' })).length, 11);
  assert.equal((await readKerasH5(bytes, { isolate: false })).length, 11);
  // Concurrent reads are queued on the one worker and all complete.
  const all = await Promise.all([1, 2, 3].map((i) => readKerasH5(bytes, `c${i}.h5`)));
  assert.deepEqual(
    all.map((l) => l.length),
    [11, 11, 11],
  );
});
