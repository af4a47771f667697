/**
 * Forward semantics of the reference backend pinned by small cases worked out by hand (the
 * expected numbers are written down, not computed), plus cross-checks of convolution and pooling
 * against the definition-style implementations in test/helpers/naive.ts on random shapes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../../src/core/random.js';
import { referenceBackend as B } from '../../src/backends/reference/index.js';
import { assertAllClose, randomArray } from '../helpers/arrays.js';
import { naiveAvgPool, naiveConv2d, naiveMaxPool } from '../helpers/naive.js';
import { type ConvSpec, type PoolSpec, convFilterSize, convInputSize, convParams, poolInputSize, poolParams } from '../helpers/params.js';

const EXACT = { rtol: 1e-12, atol: 1e-12 };
const f64 = (values: number[]) => Float64Array.from(values);
const arr = (h: object) => Array.from(h as Float64Array);

// x[i][j] = 4i + j + 1: the numbers 1 … 16 row-major on a 4×4 single-channel image.
const ramp4x4 = f64(Array.from({ length: 16 }, (_, i) => i + 1));
// A 3×3 filter with four non-zero, asymmetric taps, so a flipped or shifted kernel shows:
// w[0][0] = 1, w[0][1] = 2, w[1][0] = 3, w[2][2] = −1.
const filter3x3 = f64([1, 2, 0, 3, 0, 0, 0, 0, -1]);

test('conv2d 3×3 valid on a 4×4 ramp, by hand', () => {
  // y[i][j] = x[i][j] + 2·x[i][j+1] + 3·x[i+1][j] − x[i+2][j+2]
  // y[0][0] = 1 + 4 + 15 − 11 = 9;  y[0][1] = 2 + 6 + 18 − 12 = 14
  // y[1][0] = 5 + 12 + 27 − 15 = 29; y[1][1] = 6 + 14 + 30 − 16 = 34
  const p = convParams({ height: 4, width: 4, inChannels: 1, outChannels: 1, kernel: [3, 3], padding: 'valid' });
  assert.deepEqual(arr(B.conv2d(ramp4x4, filter3x3, p)), [9, 14, 29, 34]);
});

test('conv2d 3×3 stride 2 TensorFlow same on 4×4 pads only the bottom row and right column, by hand', () => {
  const p = convParams({ height: 4, width: 4, inChannels: 1, outChannels: 1, kernel: [3, 3], stride: [2, 2], padding: 'same' });
  assert.deepEqual([p.padTop, p.padBottom, p.padLeft, p.padRight], [0, 1, 0, 1]);
  // y[0][0] reads rows 0–2, cols 0–2: 9 (as above). y[0][1] reads cols 2–4 (col 4 is padding):
  //   3 + 2·4 + 3·7 − 0 = 32.  y[1][0]: 9 + 2·10 + 3·13 − 0 = 68.  y[1][1]: 11 + 2·12 + 3·15 − 0 = 80.
  assert.deepEqual(arr(B.conv2d(ramp4x4, filter3x3, p)), [9, 32, 68, 80]);
  // PyTorch-style symmetric padding (1 before, 0 after) gives other numbers: the rule matters.
  // y[0][0] reads rows −1…1, cols −1…1: 0 + 0 + 0 − x[1][1] = −6.
  const torchLike = convParams({
    height: 4,
    width: 4,
    inChannels: 1,
    outChannels: 1,
    kernel: [3, 3],
    stride: [2, 2],
    padding: { height: [1, 0], width: [1, 0] },
  });
  assert.equal(arr(B.conv2d(ramp4x4, filter3x3, torchLike))[0], -6);
});

test('conv2d groups: each output channel reads only its group’s input channels, by hand', () => {
  // 1×1 conv, 4 → 2 channels, 2 groups: filter [1, 1, 2, 2] = [[1, 10], [2, 20]].
  // o0 = 1·x0 + 2·x1 = 5, o1 = 10·x2 + 20·x3 = 110.
  const p = convParams({ height: 1, width: 1, inChannels: 4, outChannels: 2, kernel: [1, 1], padding: 'valid', groups: 2 });
  assert.deepEqual(arr(B.conv2d(f64([1, 2, 3, 4]), f64([1, 10, 2, 20]), p)), [5, 110]);
});

test('conv2d depthwise with multiplier 2 uses the Keras [kh, kw, C, multiplier] memory order, by hand', () => {
  // 2×2 image, channels c0 = 1, 2, 3, 4 and c1 = 10, 20, 30, 40 (pixels in row-major order).
  const x = f64([1, 10, 2, 20, 3, 30, 4, 40]);
  // Per output channel, taps (0,0), (0,1), (1,0), (1,1): o0 = [1,0,0,0], o1 = [0,0,0,1] read c0;
  // o2 = [1,1,1,1], o3 = [0,1,−1,0] read c1. Stored tap-major, output channel fastest.
  const w = f64([1, 0, 1, 0, /* tap (0,1) */ 0, 0, 1, 1, /* tap (1,0) */ 0, 0, 1, -1, /* tap (1,1) */ 0, 1, 1, 0]);
  const p = convParams({ height: 2, width: 2, inChannels: 2, outChannels: 4, kernel: [2, 2], padding: 'valid', groups: 2 });
  // o0 = c0(0,0) = 1, o1 = c0(1,1) = 4, o2 = 10 + 20 + 30 + 40 = 100, o3 = 20 − 30 = −10.
  assert.deepEqual(arr(B.conv2d(x, w, p)), [1, 4, 100, -10]);
});

test('conv2d dilation spaces the taps, by hand', () => {
  // 1×5 image 1 … 5, 1×2 kernel [1, 10] with dilation 3: y[j] = x[j] + 10·x[j + 3].
  const p = convParams({ height: 1, width: 5, inChannels: 1, outChannels: 1, kernel: [1, 2], dilation: [1, 3], padding: 'valid' });
  assert.deepEqual(arr(B.conv2d(f64([1, 2, 3, 4, 5]), f64([1, 10]), p)), [41, 52]);
});

const convCrossChecks: ConvSpec[] = [
  { batch: 2, height: 6, width: 6, inChannels: 3, outChannels: 5, kernel: [3, 3], stride: [2, 2], padding: 'same' },
  { height: 7, width: 5, inChannels: 2, outChannels: 3, kernel: [3, 2], stride: [2, 1], dilation: [2, 2], padding: 'same' },
  { height: 5, width: 6, inChannels: 12, outChannels: 6, kernel: [3, 3], padding: { height: [2, 0], width: [0, 1] }, groups: 3 },
  { batch: 2, height: 8, width: 8, inChannels: 5, outChannels: 10, kernel: [3, 3], stride: [2, 2], padding: 'same', groups: 5 },
  { height: 9, width: 9, inChannels: 4, outChannels: 4, kernel: [3, 3], padding: 'same', groups: 4 },
  { height: 5, width: 5, inChannels: 11, outChannels: 9, kernel: [1, 1], stride: [2, 2], padding: 'same' },
  { batch: 3, height: 9, width: 7, inChannels: 3, outChannels: 8, kernel: [3, 3], stride: [2, 2], padding: 'valid' },
];

test('conv2d equals the definition on random shapes (stride, dilation, padding, groups, depthwise)', () => {
  const rng = new Random(2024);
  for (const spec of convCrossChecks) {
    const p = convParams(spec);
    const x = randomArray(rng, convInputSize(p)),
      w = randomArray(rng, convFilterSize(p));
    assertAllClose(B.conv2d(x, w, p) as Float64Array, naiveConv2d(x, w, p), EXACT, `conv2d ${JSON.stringify(spec)}`);
  }
});

// --- pooling ----------------------------------------------------------------------------------

// A 4×4 image with no ties:
//   1  9  2  4
//   3  5  7  8
//   6  0 11 10
//  12 14 13 15
const pool4x4 = f64([1, 9, 2, 4, 3, 5, 7, 8, 6, 0, 11, 10, 12, 14, 13, 15]);
const same3x3s2 = poolParams({ height: 4, width: 4, channels: 1, window: [3, 3], stride: [2, 2], padding: 'same' });

test('maxPool2d 3×3/2 same on 4×4 never lets padding win, by hand', () => {
  assert.deepEqual([same3x3s2.outHeight, same3x3s2.padTop, same3x3s2.padBottom], [2, 0, 1]);
  // All values negative (x − 20), so a zero from the padding would win if it were counted.
  // Windows: rows 0–2 × cols 0–2 → max 11; rows 0–2 × cols 2–3 → 11; rows 2–3 × cols 0–2 → 14;
  // rows 2–3 × cols 2–3 → 15.
  const negative = pool4x4.map((v) => v - 20);
  assert.deepEqual(arr(B.maxPool2d(negative, same3x3s2)), [-9, -9, -6, -5]);
});

test('maxPool2dBackward routes each window’s gradient to its maximum, by hand', () => {
  // Windows (0,0) and (0,1) both pick 11 at (2,2); (1,0) picks 14 at (3,1); (1,1) picks 15 at (3,3).
  const dx = arr(B.maxPool2dBackward(f64([1, 2, 3, 4]), pool4x4, same3x3s2));
  assert.deepEqual(dx, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 3, 0, 4]);
});

test('max pooling ties: the first maximum in row-major window order takes the gradient', () => {
  const p = poolParams({ height: 2, width: 2, channels: 1, window: [2, 2], stride: [2, 2], padding: 'valid' });
  assert.deepEqual(arr(B.maxPool2dBackward(f64([7]), f64([5, 5, 5, 5]), p)), [7, 0, 0, 0]);
  assert.deepEqual(arr(B.maxPool2dBackward(f64([7]), f64([1, 5, 2, 5]), p)), [0, 7, 0, 0]);
  const g = { batch: 1, spatial: 3, channels: 1 };
  assert.deepEqual(arr(B.globalMaxPoolBackward(f64([2]), f64([0, 3, 3]), g)), [0, 2, 0]);
});

test('avgPool2d 3×3/2 same on 4×4 divides by the number of real cells, by hand', () => {
  // (0,0): 44 / 9; (0,1): (2+4+7+8+11+10) / 6 = 7; (1,0): (6+0+11+12+14+13) / 6 = 56/6;
  // (1,1): (11+10+13+15) / 4 = 12.25.
  assertAllClose(B.avgPool2d(pool4x4, same3x3s2) as Float64Array, [44 / 9, 7, 56 / 6, 12.25], EXACT, 'avg pool');
});

test('avgPool2dBackward spreads dy / count over the real cells, by hand', () => {
  // dy = count of each window, so every window adds exactly 1 to each of its real cells and dx
  // counts the windows covering each cell.
  const dx = arr(B.avgPool2dBackward(f64([9, 6, 6, 4]), same3x3s2));
  assert.deepEqual(dx, [1, 1, 2, 1, 1, 1, 2, 1, 2, 2, 4, 2, 1, 1, 2, 1]);
});

const poolCrossChecks: PoolSpec[] = [
  { batch: 2, height: 7, width: 6, channels: 3, window: [3, 3], stride: [2, 2], padding: 'same' },
  { height: 5, width: 8, channels: 2, window: [2, 3], stride: [1, 2], padding: { height: [1, 1], width: [2, 0] } },
  { height: 9, width: 9, channels: 4, window: [3, 3], stride: [3, 3], padding: 'valid' },
];

test('maxPool2d and avgPool2d equal the definition on random shapes', () => {
  const rng = new Random(77);
  for (const spec of poolCrossChecks) {
    const p = poolParams(spec);
    const x = randomArray(rng, poolInputSize(p), -2, -1); // negative: padding must not count
    assertAllClose(B.maxPool2d(x, p) as Float64Array, naiveMaxPool(x, p), EXACT, `max ${JSON.stringify(spec)}`);
    assertAllClose(B.avgPool2d(x, p) as Float64Array, naiveAvgPool(x, p), EXACT, `avg ${JSON.stringify(spec)}`);
  }
});

test('global average and max pooling and their backward, by hand', () => {
  // Two images, 3 positions, 2 channels.
  const x = f64([1, -1, 4, -5, 2, -3, /* image 1 */ 0, 0, 0, 0, 6, 9]);
  const p = { batch: 2, spatial: 3, channels: 2 };
  assertAllClose(B.globalAvgPool(x, p) as Float64Array, [7 / 3, -3, 2, 3], EXACT, 'global avg');
  assert.deepEqual(arr(B.globalMaxPool(x, p)), [4, -1, 6, 9]);
  assert.deepEqual(arr(B.globalAvgPoolBackward(f64([3, 6, 9, 12]), p)), [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4]);
  assert.deepEqual(arr(B.globalMaxPoolBackward(f64([1, 2, 3, 4]), x, p)), [0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 3, 4]);
});

// --- batch normalization ----------------------------------------------------------------------

test('batchNormTrain uses the biased variance, by hand', () => {
  // Channel 0: 1, 2, 3, 4 → mean 2.5, biased variance 1.25; with eps 0.3125, 1/sqrt(1.5625) = 0.8.
  // y = 2·(x − 2.5)·0.8 + 1 = −1.4, 0.2, 1.8, 3.4. Channel 1 is constant 2: variance 0, y = beta = −3.
  const x = f64([1, 2, 2, 2, 3, 2, 4, 2]);
  const p = { rows: 4, channels: 2, epsilon: 0.3125 };
  const { y, mean, variance } = B.batchNormTrain(x, f64([2, 5]), f64([1, -3]), p);
  assert.deepEqual(arr(mean), [2.5, 2]);
  assert.deepEqual(arr(variance), [1.25, 0]);
  assertAllClose(y as Float64Array, [-1.4, -3, 0.2, -3, 1.8, -3, 3.4, -3], EXACT, 'BN train y');
});

test('batchNormInference uses the given statistics, by hand', () => {
  // x = [1, 5], mean [0, 1], variance [3, 15], eps 1 → 1/std = [0.5, 0.25];
  // y0 = 2·0.5·1 + 1 = 2, y1 = 4·0.25·(5 − 1) + 0 = 4.
  const y = B.batchNormInference(f64([1, 5]), f64([2, 4]), f64([1, 0]), f64([0, 1]), f64([3, 15]), { rows: 1, channels: 2, epsilon: 1 });
  assert.deepEqual(arr(y), [2, 4]);
});

test('batchNormBackward, by hand', () => {
  // Same x as above; x̂ of channel 0 = −1.2, −0.4, 0.4, 1.2 and of channel 1 = 0.
  // Channel 0, dy = 1, 0, 0, 0: dbeta = 1, dgamma = Σ dy·x̂ = −1.2,
  //   dx = gamma·(1/std)/R·(R·dy − dbeta − x̂·dgamma) = 0.4·(4·dy − 1 + 1.2·x̂)
  //      = 0.4·[1.56, −1.48, −0.52, 0.44] = [0.624, −0.592, −0.208, 0.176].
  // Channel 1, dy constant 1: dbeta = 4, dgamma = 0, and a constant dy moves only the mean: dx = 0.
  const x = f64([1, 2, 2, 2, 3, 2, 4, 2]);
  const p = { rows: 4, channels: 2, epsilon: 0.3125 };
  const gamma = f64([2, 5]);
  const { mean, variance } = B.batchNormTrain(x, gamma, f64([1, -3]), p);
  const g = B.batchNormBackward(f64([1, 1, 0, 1, 0, 1, 0, 1]), x, gamma, mean, variance, p);
  assertAllClose(g.dx as Float64Array, [0.624, 0, -0.592, 0, -0.208, 0, 0.176, 0], EXACT, 'BN dx');
  assertAllClose(g.dgamma as Float64Array, [-1.2, 0], EXACT, 'BN dgamma');
  assert.deepEqual(arr(g.dbeta), [1, 4]);
});

// --- elementwise ------------------------------------------------------------------------------

test('elementwise kernels, by hand', () => {
  assert.deepEqual(arr(B.axpby(f64([1, 2]), f64([10, 20]), 2, -1, 2)), [-8, -16]);
  assert.deepEqual(arr(B.mul(f64([1.5, -2]), f64([4, 3]), 2)), [6, -6]);
  assert.deepEqual(arr(B.scale(f64([1.5, -2]), -2, 2)), [-3, 4]);
  assert.deepEqual(arr(B.relu(f64([-1, 0, 2]), 3)), [0, 0, 2]);
  assert.deepEqual(arr(B.reluBackward(f64([5, 6, 7]), f64([0, 0, 2]), 3)), [0, 0, 7]);
  // ELU alpha 2: x = −ln 2 → 2·(1/2 − 1) = −1; x = 1 → 1.
  assertAllClose(B.elu(f64([-Math.LN2, 1]), 2, 2) as Float64Array, [-1, 1], EXACT, 'elu');
  // Backward from y: y = −1 → dy·(y + alpha) = 3·1 = 3; y = 1 → dy = 3; y = −1.5 → 2·0.5 = 1.
  assert.deepEqual(arr(B.eluBackward(f64([3, 3, 2]), f64([-1, 1, -1.5]), 2, 3)), [3, 3, 1]);
  assert.deepEqual(arr(B.zeros(3, 'float64')), [0, 0, 0]);
});

// --- dense and channel bookkeeping ------------------------------------------------------------

test('matmul in all four transpose combinations, by hand', () => {
  // [[1, 2, 3], [4, 5, 6]] · [[7, 8], [9, 10], [11, 12]] = [[58, 64], [139, 154]].
  const a = f64([1, 2, 3, 4, 5, 6]),
    aT = f64([1, 4, 2, 5, 3, 6]);
  const b = f64([7, 8, 9, 10, 11, 12]),
    bT = f64([7, 9, 11, 8, 10, 12]);
  const expected = [58, 64, 139, 154];
  const dims = { m: 2, k: 3, n: 2 };
  assert.deepEqual(arr(B.matmul(a, b, { ...dims, transA: false, transB: false })), expected);
  assert.deepEqual(arr(B.matmul(aT, b, { ...dims, transA: true, transB: false })), expected);
  assert.deepEqual(arr(B.matmul(a, bT, { ...dims, transA: false, transB: true })), expected);
  assert.deepEqual(arr(B.matmul(aT, bT, { ...dims, transA: true, transB: true })), expected);
});

test('biasAdd, sumRows, concatChannels and sliceChannels, by hand', () => {
  const x = f64([1, 2, 3, 4, 5, 6]); // [3 rows, 2 channels]
  assert.deepEqual(arr(B.biasAdd(x, f64([10, 100]), { rows: 3, channels: 2 })), [11, 102, 13, 104, 15, 106]);
  assert.deepEqual(arr(B.sumRows(x, { rows: 3, channels: 2 })), [9, 12]);
  const c = B.concatChannels([x, f64([-1, -2, -3])], 3, [2, 1]);
  assert.deepEqual(arr(c), [1, 2, -1, 3, 4, -2, 5, 6, -3]);
  assert.deepEqual(arr(B.sliceChannels(c, { rows: 3, channels: 3 }, 1, 2)), [2, -1, 4, -2, 6, -3]);
});

// --- classification ---------------------------------------------------------------------------

test('softmax, by hand and stable for huge logits', () => {
  assertAllClose(
    B.softmax(f64([0, Math.LN2, Math.log(3)]), { rows: 1, channels: 3 }) as Float64Array,
    [1 / 6, 1 / 3, 1 / 2],
    EXACT,
    'softmax',
  );
  assertAllClose(
    B.softmax(f64([1000, 1000, -1000, 5e3, 5e3, 5e3]), { rows: 2, channels: 3 }) as Float64Array,
    [0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3],
    EXACT,
    'softmax big',
  );
});

test('softmaxCrossEntropy and its backward, by hand, with and without label smoothing', () => {
  // Row 0: probs 1/6, 1/3, 1/2, label 2 → −ln(1/2) = ln 2. Row 1: equal logits of 1000, label 0 → ln 3.
  const logits = f64([0, Math.LN2, Math.log(3), 1000, 1000, 1000]);
  const labels = Int32Array.from([2, 0]);
  const plain = B.softmaxCrossEntropy(logits, labels, { rows: 2, channels: 3, labelSmoothing: 0 });
  assert.ok(Math.abs(plain.loss - (Math.LN2 + Math.log(3)) / 2) < 1e-14);
  assertAllClose(plain.probs as Float64Array, [1 / 6, 1 / 3, 1 / 2, 1 / 3, 1 / 3, 1 / 3], EXACT, 'probs');
  // Smoothing 0.3 over 3 classes: row 0 target 0.1, 0.1, 0.8 → 0.1·ln 6 + 0.1·ln 3 + 0.8·ln 2;
  // row 1 has uniform probs, so any target gives ln 3.
  const smooth = B.softmaxCrossEntropy(logits, labels, { rows: 2, channels: 3, labelSmoothing: 0.3 });
  const row0 = 0.1 * Math.log(6) + 0.1 * Math.log(3) + 0.8 * Math.LN2;
  assert.ok(Math.abs(smooth.loss - (row0 + Math.log(3)) / 2) < 1e-14);
  // Backward, scale 1, 2 rows: (probs − target)/2. Row 0 unsmoothed: [1/12, 1/6, −1/4].
  const d = B.softmaxCrossEntropyBackward(plain.probs, labels, { rows: 2, channels: 3, labelSmoothing: 0 }, 1);
  assertAllClose(d as Float64Array, [1 / 12, 1 / 6, -1 / 4, -1 / 3, 1 / 6, 1 / 6], EXACT, 'dlogits');
  // Smoothed, scale 4: row 0 → 2·(probs − [0.1, 0.1, 0.8]) = [2/15, 7/15, −0.6].
  const ds = B.softmaxCrossEntropyBackward(plain.probs, labels, { rows: 2, channels: 3, labelSmoothing: 0.3 }, 4);
  assertAllClose((ds as Float64Array).subarray(0, 3), [2 / 15, 7 / 15, -0.6], EXACT, 'smoothed dlogits');
});
