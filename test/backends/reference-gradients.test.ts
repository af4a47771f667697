/**
 * Every backward kernel of the reference backend against central finite differences of its
 * forward kernel, in float64: for a fixed random r, L = Σ forward(inputs)·r, and the backward
 * kernel given dy = r must equal ∂L/∂input numerically (eps 1e-6, rtol 1e-6).
 * Gradient rules that autograd will build from forward kernels (matmul transposes, biasAdd →
 * sumRows, concat ↔ slice) are checked the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Conv2DParams, MatMulParams, Pool2DParams } from '../../src/core/backend.js';
import { Random } from '../../src/core/random.js';
import { referenceBackend as B } from '../../src/backends/reference/index.js';
import { awayFromZero, distinctArray, randomArray } from '../helpers/arrays.js';
import { assertGradient, dot } from '../helpers/gradcheck.js';
import {
  type ConvSpec,
  type PoolSpec,
  convFilterSize,
  convInputSize,
  convOutputSize,
  convParams,
  poolInputSize,
  poolOutputSize,
  poolParams,
} from '../helpers/params.js';

const f64 = (h: object) => {
  assert.ok(h instanceof Float64Array, 'float64 inputs must give a Float64Array');
  return h;
};

// --- convolution ------------------------------------------------------------------------------

const convCases: Array<[string, ConvSpec]> = [
  [
    '3×3 stride 1, symmetric padding 1',
    { batch: 2, height: 5, width: 5, inChannels: 3, outChannels: 4, kernel: [3, 3], padding: { height: [1, 1], width: [1, 1] } },
  ],
  [
    '3×3 stride 2 TF same on 6×6 (padTop 0, padBottom 1)',
    { batch: 2, height: 6, width: 6, inChannels: 2, outChannels: 3, kernel: [3, 3], stride: [2, 2], padding: 'same' },
  ],
  ['3×3 stride 2 valid on 7×7', { height: 7, width: 7, inChannels: 3, outChannels: 2, kernel: [3, 3], stride: [2, 2], padding: 'valid' }],
  [
    '2×3 kernel, explicit asymmetric padding top 1 bottom 0 left 0 right 2',
    { height: 5, width: 6, inChannels: 2, outChannels: 3, kernel: [2, 3], padding: { height: [1, 0], width: [0, 2] } },
  ],
  ['3×3 dilation 2, same', { height: 7, width: 6, inChannels: 2, outChannels: 3, kernel: [3, 3], dilation: [2, 2], padding: 'same' }],
  [
    '1×3 kernel, stride (1, 2), dilation (2, 1), valid',
    { height: 6, width: 7, inChannels: 3, outChannels: 2, kernel: [1, 3], stride: [1, 2], dilation: [2, 1], padding: 'valid' },
  ],
  ['groups = 2, 3×3 same', { batch: 2, height: 5, width: 4, inChannels: 4, outChannels: 6, kernel: [3, 3], padding: 'same', groups: 2 }],
  [
    'groups = 3 with 6 input channels per group (exercises the 4-channel unroll and its remainder)',
    { height: 4, width: 4, inChannels: 18, outChannels: 6, kernel: [2, 2], padding: 'same', groups: 3 },
  ],
  [
    'depthwise, multiplier 1, 3×3 same',
    { batch: 2, height: 5, width: 5, inChannels: 3, outChannels: 3, kernel: [3, 3], padding: 'same', groups: 3 },
  ],
  [
    'depthwise, multiplier 2, 3×3 stride 2 same',
    { height: 6, width: 5, inChannels: 3, outChannels: 6, kernel: [3, 3], stride: [2, 2], padding: 'same', groups: 3 },
  ],
  ['pointwise 1×1, 9 → 7 channels', { batch: 2, height: 3, width: 4, inChannels: 9, outChannels: 7, kernel: [1, 1], padding: 'valid' }],
  [
    'pointwise 1×1 stride 2 same on odd 5×5 (Xception shortcut)',
    { height: 5, width: 5, inChannels: 4, outChannels: 5, kernel: [1, 1], stride: [2, 2], padding: 'same' },
  ],
  [
    '3×3 same with 13 input channels and batch 3 (many pixel pairs, unroll remainders)',
    { batch: 3, height: 4, width: 3, inChannels: 13, outChannels: 5, kernel: [3, 3], padding: 'same' },
  ],
];

for (const [name, spec] of convCases) {
  test(`conv2d backward input and filter match finite differences: ${name}`, () => {
    const p: Conv2DParams = convParams(spec);
    const rng = new Random(name.length * 7919);
    const x = randomArray(rng, convInputSize(p));
    const w = randomArray(rng, convFilterSize(p));
    const r = randomArray(rng, convOutputSize(p));
    const dx = f64(B.conv2dBackwardInput(r, w, p));
    const dw = f64(B.conv2dBackwardFilter(x, r, p));
    assertGradient(dx, (xv) => dot(f64(B.conv2d(xv, w, p)), r), x, `${name}: dx`);
    assertGradient(dw, (wv) => dot(f64(B.conv2d(x, wv, p)), r), w, `${name}: dw`);
  });
}

test('the TF same stride-2 case really is end-heavy', () => {
  const p = convParams(convCases[1][1]);
  assert.deepEqual([p.outHeight, p.padTop, p.padBottom, p.padLeft, p.padRight], [3, 0, 1, 0, 1]);
});

// --- batch normalization ----------------------------------------------------------------------

for (const [rows, channels, shift] of [
  [7, 3, 0],
  [12, 5, 3],
  [2, 4, -1],
] as const) {
  test(`batchNormBackward matches finite differences through the batch statistics (${rows} rows × ${channels})`, () => {
    const rng = new Random(rows * 100 + channels);
    const p = { rows, channels, epsilon: 1e-3 };
    const x = randomArray(rng, rows * channels, shift - 1, shift + 2);
    const gamma = randomArray(rng, channels, 0.5, 1.5);
    const beta = randomArray(rng, channels);
    const r = randomArray(rng, rows * channels);
    const { mean, variance } = B.batchNormTrain(x, gamma, beta, p);
    const g = B.batchNormBackward(r, x, gamma, mean, variance, p);
    const loss = (xv: Float64Array, gv: Float64Array, bv: Float64Array) => dot(f64(B.batchNormTrain(xv, gv, bv, p).y), r);
    assertGradient(f64(g.dx), (xv) => loss(xv, gamma, beta), x, 'BN dx');
    assertGradient(f64(g.dgamma), (gv) => loss(x, gv, beta), gamma, 'BN dgamma');
    assertGradient(f64(g.dbeta), (bv) => loss(x, gamma, bv), beta, 'BN dbeta');
  });
}

for (const [rows, channels, shift] of [
  [9, 3, 0],
  [12, 5, 1],
] as const) {
  test(`fused batch norm → ReLU: backward matches finite differences (${rows} rows × ${channels})`, () => {
    const rng = new Random(rows * 31 + channels);
    const p = { rows, channels, epsilon: 1e-3, relu: true };
    const x = randomArray(rng, rows * channels, shift - 1, shift + 2);
    const gamma = randomArray(rng, channels, 0.5, 1.5);
    const beta = randomArray(rng, channels, -0.5, 0.5);
    const r = randomArray(rng, rows * channels);
    const t = B.batchNormTrain(x, gamma, beta, p);
    const y = f64(t.y);
    assert.ok(y.some((v) => v === 0) && y.some((v) => v > 0), 'both sides of the kink are exercised');
    // The fused forward is ReLU of the plain one.
    const plain = f64(B.batchNormTrain(x, gamma, beta, { rows, channels, epsilon: 1e-3 }).y);
    assert.deepEqual(
      y,
      plain.map((v) => Math.max(0, v)),
    );
    const g = B.batchNormBackward(r, x, gamma, t.mean, t.variance, p, t.y);
    const loss = (xv: Float64Array, gv: Float64Array, bv: Float64Array) => dot(f64(B.batchNormTrain(xv, gv, bv, p).y), r);
    assertGradient(f64(g.dx), (xv) => loss(xv, gamma, beta), x, 'BN+ReLU dx');
    assertGradient(f64(g.dgamma), (gv) => loss(x, gv, beta), gamma, 'BN+ReLU dgamma');
    assertGradient(f64(g.dbeta), (bv) => loss(x, gamma, bv), beta, 'BN+ReLU dbeta');
    assert.throws(() => B.batchNormBackward(r, x, gamma, t.mean, t.variance, p), /needs the forward output y/);
  });
}

// --- activations ------------------------------------------------------------------------------

test('reluBackward matches finite differences away from the kink', () => {
  const rng = new Random(11);
  const x = awayFromZero(rng, 40);
  const r = randomArray(rng, 40);
  const y = B.relu(x, 40);
  assertGradient(f64(B.reluBackward(r, y, 40)), (xv) => dot(f64(B.relu(xv, 40)), r), x, 'relu dx');
});

for (const alpha of [1, 0.7, 1.6]) {
  test(`eluBackward (alpha ${alpha}) matches finite differences`, () => {
    const rng = new Random(Math.round(alpha * 10));
    const x = awayFromZero(rng, 40, 0.05, 3);
    const r = randomArray(rng, 40);
    const y = B.elu(x, alpha, 40);
    assertGradient(f64(B.eluBackward(r, y, alpha, 40)), (xv) => dot(f64(B.elu(xv, alpha, 40)), r), x, 'elu dx');
  });
}

// --- pooling ----------------------------------------------------------------------------------

const poolCases: Array<[string, PoolSpec]> = [
  [
    '3×3/2 same on 6×6 (pad at the end only)',
    { batch: 2, height: 6, width: 6, channels: 3, window: [3, 3], stride: [2, 2], padding: 'same' },
  ],
  ['3×3/2 same on 7×5 (pad both sides)', { height: 7, width: 5, channels: 2, window: [3, 3], stride: [2, 2], padding: 'same' }],
  ['3×3/1 same on 4×5', { height: 4, width: 5, channels: 2, window: [3, 3], stride: [1, 1], padding: 'same' }],
  ['2×2/2 valid on 5×4', { batch: 2, height: 5, width: 4, channels: 3, window: [2, 2], stride: [2, 2], padding: 'valid' }],
  [
    '2×3/(1, 2) explicit padding top 1 left 2',
    { height: 4, width: 6, channels: 2, window: [2, 3], stride: [1, 2], padding: { height: [1, 0], width: [2, 1] } },
  ],
];

for (const [name, spec] of poolCases) {
  test(`maxPool2dBackward and avgPool2dBackward match finite differences: ${name}`, () => {
    const p: Pool2DParams = poolParams(spec);
    const rng = new Random(name.length * 31);
    // Distinct values 0.01 apart: a 1e-6 step never changes which cell wins a window.
    const x = distinctArray(rng, poolInputSize(p));
    const r = randomArray(rng, poolOutputSize(p));
    assertGradient(f64(B.maxPool2dBackward(r, x, p)), (xv) => dot(f64(B.maxPool2d(xv, p)), r), x, `${name}: max dx`);
    assertGradient(f64(B.avgPool2dBackward(r, p)), (xv) => dot(f64(B.avgPool2d(xv, p)), r), x, `${name}: avg dx`);
  });
}

test('global average and max pool backward match finite differences', () => {
  const rng = new Random(5);
  const p = { batch: 2, spatial: 6, channels: 3 };
  const x = distinctArray(rng, 36);
  const r = randomArray(rng, 6);
  assertGradient(f64(B.globalAvgPoolBackward(r, p)), (xv) => dot(f64(B.globalAvgPool(xv, p)), r), x, 'global avg dx');
  assertGradient(f64(B.globalMaxPoolBackward(r, x, p)), (xv) => dot(f64(B.globalMaxPool(xv, p)), r), x, 'global max dx');
});

// --- dense and channel bookkeeping ------------------------------------------------------------

for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    test(`matmul gradients (transA ${transA}, transB ${transB}) are matmuls with transposes`, () => {
      const rng = new Random(Number(transA) * 2 + Number(transB) + 1);
      const m = 3,
        k = 5,
        n = 4;
      const p: MatMulParams = { m, k, n, transA, transB };
      const a = randomArray(rng, m * k),
        b = randomArray(rng, k * n),
        r = randomArray(rng, m * n);
      // C = op(A)·op(B): d op(A) = dC·op(B)ᵀ and d op(B) = op(A)ᵀ·dC, stored in A's and B's layouts.
      const da = transA
        ? B.matmul(b, r, { m: k, k: n, n: m, transA: transB, transB: true })
        : B.matmul(r, b, { m, k: n, n: k, transA: false, transB: !transB });
      const db = transB
        ? B.matmul(r, a, { m: n, k: m, n: k, transA: true, transB: transA })
        : B.matmul(a, r, { m: k, k: m, n, transA: !transA, transB: false });
      assertGradient(f64(da), (av) => dot(f64(B.matmul(av, b, p)), r), a, 'matmul da');
      assertGradient(f64(db), (bv) => dot(f64(B.matmul(a, bv, p)), r), b, 'matmul db');
    });
  }
}

test('biasAdd: the input gradient is dy and the bias gradient is sumRows(dy)', () => {
  const rng = new Random(8);
  const p = { rows: 5, channels: 4 };
  const x = randomArray(rng, 20),
    bias = randomArray(rng, 4),
    r = randomArray(rng, 20);
  assertGradient(r, (xv) => dot(f64(B.biasAdd(xv, bias, p)), r), x, 'biasAdd dx');
  assertGradient(f64(B.sumRows(r, p)), (bv) => dot(f64(B.biasAdd(x, bv, p)), r), bias, 'biasAdd dbias');
});

test('concatChannels and sliceChannels are each other’s gradients', () => {
  const rng = new Random(9);
  const rows = 4,
    channels = [2, 3, 1];
  const xs = channels.map((c) => randomArray(rng, rows * c));
  const r = randomArray(rng, rows * 6);
  let start = 0;
  channels.forEach((c, i) => {
    const grad = f64(B.sliceChannels(r, { rows, channels: 6 }, start, c));
    const loss = (xi: Float64Array) =>
      dot(
        f64(
          B.concatChannels(
            xs.map((x, j) => (j === i ? xi : x)),
            rows,
            channels,
          ),
        ),
        r,
      );
    assertGradient(grad, loss, xs[i], `concat d input ${i}`);
    start += c;
  });
  // slice columns [2, 5) of a [4, 6] tensor: its gradient is dy placed between zero columns.
  const x = randomArray(rng, rows * 6);
  const rs = randomArray(rng, rows * 3);
  const grad = B.concatChannels([B.zeros(rows * 2, 'float64'), rs, B.zeros(rows * 1, 'float64')], rows, [2, 3, 1]);
  assertGradient(f64(grad), (xv) => dot(f64(B.sliceChannels(xv, { rows, channels: 6 }, 2, 3)), rs), x, 'slice dx');
});

// --- classification ---------------------------------------------------------------------------

for (const labelSmoothing of [0, 0.1, 0.5]) {
  test(`softmaxCrossEntropyBackward matches finite differences of the loss (label smoothing ${labelSmoothing})`, () => {
    const rng = new Random(100 + labelSmoothing * 10);
    const p = { rows: 4, channels: 5, labelSmoothing };
    const logits = randomArray(rng, 20, -3, 3);
    const labels = Int32Array.from([0, 4, 2, 2]);
    const { probs } = B.softmaxCrossEntropy(logits, labels, p);
    const loss = (lv: Float64Array) => B.softmaxCrossEntropy(lv, labels, p).loss;
    assertGradient(f64(B.softmaxCrossEntropyBackward(probs, labels, p, 1)), loss, logits, 'CE dlogits');
    // The scale multiplies the gradient (e.g. loss scaling or a loss weight).
    const scaled = f64(B.softmaxCrossEntropyBackward(probs, labels, p, 2.5));
    assertGradient(scaled, (lv) => 2.5 * loss(lv), logits, 'CE dlogits scaled');
  });
}
