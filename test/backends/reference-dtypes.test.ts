/**
 * Contract details of the reference backend beyond the arithmetic: float32 in gives float32 out
 * and float64 in gives float64 out (with float32 results matching float64 to float32 precision),
 * inputs are never modified, download converts, and contract violations raise BackendError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, NumArray } from '../../src/core/backend.js';
import { BackendError } from '../../src/core/errors.js';
import { Random } from '../../src/core/random.js';
import { referenceBackend as B } from '../../src/backends/reference/index.js';
import { assertAllClose, distinctArray, randomArray } from '../helpers/arrays.js';
import { convParams, poolParams } from '../helpers/params.js';

type Maker = (values: ArrayLike<number>) => NumArray;
const makers: Array<[string, Maker, typeof Float32Array | typeof Float64Array]> = [
  ['float32', (v) => Float32Array.from(v), Float32Array],
  ['float64', (v) => Float64Array.from(v), Float64Array],
];

/** Runs every kernel on inputs made by `make`; returns each named output. */
function runAllKernels(backend: Backend, make: Maker): Map<string, NumArray> {
  const rng = new Random(3);
  const out = new Map<string, NumArray>();
  const put = (name: string, h: object) => out.set(name, h as NumArray);
  const conv = convParams({
    batch: 2,
    height: 5,
    width: 5,
    inChannels: 6,
    outChannels: 4,
    kernel: [3, 3],
    stride: [2, 2],
    padding: 'same',
    groups: 2,
  });
  const x = make(randomArray(rng, 2 * 5 * 5 * 6)),
    w = make(randomArray(rng, 3 * 3 * 3 * 4)),
    dy = make(randomArray(rng, 2 * 3 * 3 * 4));
  const inputs = [x, w, dy];
  const snapshots = inputs.map((a) => Array.from(a));
  put('conv2d', backend.conv2d(x, w, conv));
  put('conv2dBackwardInput', backend.conv2dBackwardInput(dy, w, conv));
  put('conv2dBackwardFilter', backend.conv2dBackwardFilter(x, dy, conv));
  const bn = { rows: 50, channels: 6, epsilon: 1e-3 };
  const gamma = make(randomArray(rng, 6, 0.5, 1.5)),
    beta = make(randomArray(rng, 6));
  const t = backend.batchNormTrain(x, gamma, beta, bn);
  put('batchNormTrain.y', t.y);
  put('batchNormTrain.mean', t.mean);
  put('batchNormTrain.variance', t.variance);
  put('batchNormInference', backend.batchNormInference(x, gamma, beta, t.mean, t.variance, bn));
  const g = backend.batchNormBackward(x, x, gamma, t.mean, t.variance, bn);
  put('batchNormBackward.dx', g.dx);
  put('batchNormBackward.dgamma', g.dgamma);
  put('batchNormBackward.dbeta', g.dbeta);
  const pool = poolParams({ batch: 2, height: 5, width: 5, channels: 6, window: [3, 3], stride: [2, 2], padding: 'same' });
  const px = make(distinctArray(rng, 300)),
    pdy = make(randomArray(rng, 2 * 3 * 3 * 6));
  put('maxPool2d', backend.maxPool2d(px, pool));
  put('maxPool2dBackward', backend.maxPool2dBackward(pdy, px, pool));
  put('avgPool2d', backend.avgPool2d(px, pool));
  put('avgPool2dBackward', backend.avgPool2dBackward(pdy, pool));
  const gp = { batch: 2, spatial: 25, channels: 6 };
  const gdy = make(randomArray(rng, 12));
  put('globalAvgPool', backend.globalAvgPool(px, gp));
  put('globalAvgPoolBackward', backend.globalAvgPoolBackward(gdy, gp));
  put('globalMaxPool', backend.globalMaxPool(px, gp));
  put('globalMaxPoolBackward', backend.globalMaxPoolBackward(gdy, px, gp));
  const n = x.length;
  put('axpby', backend.axpby(x, x, 0.5, -2, n));
  put('mul', backend.mul(x, x, n));
  put('scale', backend.scale(x, 3, n));
  put('relu', backend.relu(x, n));
  put('reluBackward', backend.reluBackward(x, x, n));
  put('elu', backend.elu(x, 1.5, n));
  put('eluBackward', backend.eluBackward(x, x, 1.5, n));
  put('matmul', backend.matmul(x, w, { m: 25, k: 12, n: 9, transA: false, transB: false }));
  put('matmulTT', backend.matmul(x, dy, { m: 25, k: 12, n: 6, transA: true, transB: true }));
  put('biasAdd', backend.biasAdd(x, gamma, { rows: 50, channels: 6 }));
  put('sumRows', backend.sumRows(x, { rows: 50, channels: 6 }));
  put('concatChannels', backend.concatChannels([x, dy], 6, [50, 12]));
  put('sliceChannels', backend.sliceChannels(x, { rows: 50, channels: 6 }, 1, 4));
  put('softmax', backend.softmax(x, { rows: 30, channels: 10 }));
  const labels = Int32Array.from({ length: 30 }, (_, i) => i % 10);
  const ce = backend.softmaxCrossEntropy(x, labels, { rows: 30, channels: 10, labelSmoothing: 0.1 });
  assert.equal(typeof ce.loss, 'number');
  put('softmaxCrossEntropy.probs', ce.probs);
  put(
    'softmaxCrossEntropyBackward',
    backend.softmaxCrossEntropyBackward(ce.probs, labels, { rows: 30, channels: 10, labelSmoothing: 0.1 }, 2),
  );
  // Targets in [0, 1]: a fixed pattern of 0, 1 and a soft 0.5.
  const targets = make(Array.from({ length: 300 }, (_, i) => (i % 3) / 2));
  const targetsBefore = Array.from(targets);
  const bce = backend.sigmoidCrossEntropy(x, targets, { rows: 30, channels: 10 });
  assert.equal(typeof bce.loss, 'number');
  put('sigmoidCrossEntropy.probs', bce.probs);
  put('sigmoidCrossEntropyBackward', backend.sigmoidCrossEntropyBackward(bce.probs, targets, { rows: 30, channels: 10 }, 2));
  put('upload', backend.upload(x));
  assert.deepEqual(Array.from(targets), targetsBefore, 'kernel modified the targets');
  inputs.forEach((a, i) => assert.deepEqual(Array.from(a), snapshots[i], `kernel modified input ${i}`));
  return out;
}

for (const [dtype, make, Type] of makers) {
  test(`${dtype} inputs give ${dtype} results from every kernel, and inputs stay unmodified`, () => {
    const outputs = runAllKernels(B, make);
    assert.equal(outputs.size, 37);
    for (const [name, value] of outputs) assert.ok(value instanceof Type, `${name} returned ${value.constructor.name}`);
  });
}

test('float32 results equal the float64 results rounded to float32 precision', () => {
  const r32 = runAllKernels(B, (v) => Float32Array.from(v));
  const r64 = runAllKernels(B, (v) => Float64Array.from(Float32Array.from(v))); // same input values
  for (const [name, a] of r32) {
    const b = r64.get(name)!;
    let scale = 0;
    for (const v of b) scale = Math.max(scale, Math.abs(v));
    // Intermediate handles (BN mean and variance, probs) are themselves rounded to float32, and
    // batchNormBackward's dx cancels terms ~R times larger than itself, hence atol on max(1, scale).
    assertAllClose(a, b, { rtol: 1e-6, atol: 2e-6 * Math.max(1, scale) }, name);
  }
});

test('upload copies, download copies and converts, zeros has the requested dtype', () => {
  const source = Float32Array.from([1.5, -2, 0.1]);
  const h = B.upload(source);
  source[0] = 99;
  const back = B.download(h, 3, 'float64');
  assert.ok(back instanceof Float64Array);
  assert.deepEqual(Array.from(back), [1.5, -2, Math.fround(0.1)]);
  const back32 = B.download(h, 3, 'float32');
  assert.ok(back32 instanceof Float32Array && back32 !== h);
  assert.ok(B.zeros(4, 'float32') instanceof Float32Array);
  assert.ok(B.zeros(4, 'float64') instanceof Float64Array);
  assert.deepEqual(Array.from(B.download(B.upload(Float64Array.from([1 / 3])), 1, 'float32')), [Math.fround(1 / 3)]);
  B.dispose(h);
  assert.equal(B.name, 'reference');
  assert.deepEqual([...B.dtypes], ['float32', 'float64']);
});

test('contract violations raise BackendError naming the problem', () => {
  const p = convParams({ height: 4, width: 4, inChannels: 2, outChannels: 2, kernel: [3, 3], padding: 'same' });
  const x = new Float32Array(32),
    w = new Float32Array(36);
  const expectError = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof BackendError && pattern.test(e.message));
  expectError(() => B.conv2d([1, 2] as unknown as object, w, p), /conv2d input is not a reference-backend handle/);
  expectError(() => B.conv2d(new Float32Array(31), w, p), /conv2d input has 31 elements, expected 32/);
  expectError(() => B.conv2d(x, w, { ...p, outHeight: 3 }), /output height 3 disagrees/);
  expectError(() => B.conv2d(x, w, { ...p, groups: 3 }), /not divisible by groups 3/);
  expectError(() => B.conv2d(x, w, { ...p, strideHeight: 0 }), /strideHeight must be a positive integer/);
  expectError(() => B.conv2d(x, w, { ...p, padTop: -1 }), /padTop must be a non-negative integer/);
  const pool = poolParams({ height: 4, width: 4, channels: 1, window: [2, 2], stride: [1, 1], padding: 'valid' });
  expectError(() => B.maxPool2d(new Float32Array(16), { ...pool, padTop: 2, outHeight: 5 }), /must be smaller than the window/);
  expectError(() => B.download(new Float32Array(3), 4, 'float32'), /has 3 elements, expected 4/);
  expectError(() => B.zeros(2, 'int8' as never), /unsupported dtype 'int8'/);
  expectError(
    () => B.matmul(new Float32Array(6), new Float32Array(6), { m: 2, k: 3, n: 3, transA: false, transB: false }),
    /matmul b has 6 elements, expected 9/,
  );
  expectError(() => B.concatChannels([new Float32Array(2)], 2, [1, 1]), /1 inputs but 2 channel counts/);
  expectError(() => B.sliceChannels(new Float32Array(6), { rows: 2, channels: 3 }, 2, 2), /exceed 3 channels/);
  const ce = { rows: 2, channels: 3, labelSmoothing: 0 };
  expectError(() => B.softmaxCrossEntropy(new Float32Array(6), Int32Array.from([0, 3]), ce), /label 3 in row 1 is outside 0…2/);
  expectError(() => B.softmaxCrossEntropy(new Float32Array(6), Int32Array.from([0]), ce), /1 labels for 2 rows/);
  expectError(
    () => B.softmaxCrossEntropy(new Float32Array(6), Int32Array.from([0, 1]), { ...ce, labelSmoothing: 1.5 }),
    /labelSmoothing must be in \[0, 1\]/,
  );
  expectError(
    () => B.batchNormTrain(x, new Float32Array(2), new Float32Array(3), { rows: 16, channels: 2, epsilon: 1e-3 }),
    /beta has 3 elements/,
  );
});
