/**
 * The shared kernel suite: every kernel, forward and backward, of every fast backend present
 * (native oneDNN if its addon is built, wasm if its module is built) against the reference backend
 * on a range of shapes (strided, asymmetric padding, dilated, grouped, depthwise, 1×1, random ones).
 * A backend that is missing skips with its reason. Written once, like TensorFlow.js's backend suites.
 *
 * Inputs are rounded to float32 once and given to both backends; the reference runs in float64,
 * so it is the exact answer for those inputs. The measure is the normwise relative error
 *   max_i |backend_i − reference_i| / max_i |reference_i|  ≤ 1e-4,
 * which does not blow up on elements that happen to be near zero.
 * (Gradients against finite differences: backend-gradients.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, Handle, Pool2DParams, UpdateRule } from '../../src/core/backend.js';
import { Random } from '../../src/core/random.js';
import { referenceBackend as R } from '../../src/backends/reference/index.js';
import { type NativeBackend, loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { randomArray } from '../helpers/arrays.js';
import { FAST_BACKENDS } from '../helpers/backends.js';
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

const N = loadNativeBackend();
const TOL = 1e-4;

/** A test of what only the native backend has (its primitive cache, its GEMM choice). */
function nativeTest(name: string, body: (n: NativeBackend) => void): void {
  test(name, (t) => {
    if (!N) {
      t.skip(nativeBackendStatus().reason);
      return;
    }
    body(N);
  });
}

/** One test per fast backend ("native: …", "wasm: …"); a backend that is missing skips with its reason. */
function backendTest(name: string, body: (n: Backend) => void): void {
  for (const { name: backendName, load, reason } of FAST_BACKENDS) {
    test(`${backendName}: ${name}`, (t) => {
      const b = load();
      if (!b) {
        t.skip(reason());
        return;
      }
      body(b);
    });
  }
}

/** The same float32-rounded values on both backends. */
interface Pair {
  n: Handle;
  r: Handle;
  values: Float32Array;
}

function pair(n: Backend, values: ArrayLike<number>): Pair {
  const f32 = Float32Array.from(values);
  return { n: n.upload(f32), r: R.upload(Float64Array.from(f32)), values: f32 };
}

function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let err = 0,
    scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return scale === 0 ? err : err / scale;
}

function agree(n: Backend, label: string, nh: Handle, rh: Handle, size: number): void {
  const actual = n.download(nh, size, 'float32');
  const expected = R.download(rh, size, 'float64');
  assert.equal(actual.length, expected.length, `${label}: length`);
  const e = relError(actual, expected);
  assert.ok(e <= TOL, `${label}: relative error ${e.toExponential(2)} > ${TOL}`);
  n.dispose(nh);
}

// ---- convolution --------------------------------------------------------------------------

function checkConv(n: Backend, rng: Random, spec: ConvSpec, label: string): void {
  const p = convParams(spec);
  const x = pair(n, randomArray(rng, convInputSize(p)));
  const w = pair(n, randomArray(rng, convFilterSize(p)));
  const dy = pair(n, randomArray(rng, convOutputSize(p)));
  const what = `${label} ${JSON.stringify(spec)}`;
  agree(n, `conv2d ${what}`, n.conv2d(x.n, w.n, p), R.conv2d(x.r, w.r, p), convOutputSize(p));
  agree(n, `conv2dBackwardInput ${what}`, n.conv2dBackwardInput(dy.n, w.n, p), R.conv2dBackwardInput(dy.r, w.r, p), convInputSize(p));
  agree(n, `conv2dBackwardFilter ${what}`, n.conv2dBackwardFilter(x.n, dy.n, p), R.conv2dBackwardFilter(x.r, dy.r, p), convFilterSize(p));
  for (const h of [x.n, w.n, dy.n]) n.dispose(h);
}

const CONV_CASES: Array<[string, ConvSpec]> = [
  ['3×3 same', { batch: 2, height: 5, width: 7, inChannels: 3, outChannels: 4, kernel: [3, 3], padding: 'same' }],
  [
    '3×3 stride 2 same, even size (pad at the end only)',
    { height: 8, width: 9, inChannels: 4, outChannels: 6, kernel: [3, 3], stride: [2, 2], padding: 'same' },
  ],
  [
    '3×3 stride 2 valid (block1_conv1)',
    { height: 15, width: 15, inChannels: 3, outChannels: 8, kernel: [3, 3], stride: [2, 2], padding: 'valid' },
  ],
  [
    'explicit asymmetric padding, 3×2 window, strides 2×1',
    {
      batch: 2,
      height: 7,
      width: 6,
      inChannels: 5,
      outChannels: 3,
      kernel: [3, 2],
      stride: [2, 1],
      padding: { height: [2, 0], width: [0, 1] },
    },
  ],
  ['dilated 2×3, same', { height: 9, width: 10, inChannels: 4, outChannels: 5, kernel: [3, 3], dilation: [2, 3], padding: 'same' }],
  [
    'dilated, strided, valid',
    { height: 11, width: 12, inChannels: 2, outChannels: 3, kernel: [2, 3], stride: [2, 2], dilation: [3, 2], padding: 'valid' },
  ],
  ['grouped, 3 groups', { batch: 2, height: 6, width: 6, inChannels: 6, outChannels: 9, kernel: [3, 3], padding: 'same', groups: 3 }],
  [
    'grouped strided asymmetric',
    {
      height: 7,
      width: 8,
      inChannels: 8,
      outChannels: 4,
      kernel: [3, 3],
      stride: [2, 2],
      padding: { height: [0, 1], width: [1, 0] },
      groups: 2,
    },
  ],
  ['depthwise 3×3', { batch: 2, height: 9, width: 9, inChannels: 16, outChannels: 16, kernel: [3, 3], padding: 'same', groups: 16 }],
  [
    'depthwise 3×3 stride 2, multiplier 2',
    { height: 10, width: 7, inChannels: 5, outChannels: 10, kernel: [3, 3], stride: [2, 2], padding: 'same', groups: 5 },
  ],
  [
    'depthwise 5×3 stride (2, 3), multiplier 1, 21 channels',
    { batch: 2, height: 11, width: 13, inChannels: 21, outChannels: 21, kernel: [5, 3], stride: [2, 3], padding: 'same', groups: 21 },
  ],
  [
    'depthwise dilated',
    { height: 12, width: 12, inChannels: 8, outChannels: 8, kernel: [3, 3], dilation: [2, 2], padding: 'same', groups: 8 },
  ],
  ['1×1 pointwise', { batch: 2, height: 7, width: 7, inChannels: 32, outChannels: 48, kernel: [1, 1], padding: 'valid' }],
  [
    '1×1 stride 2 same (residual shortcut)',
    { height: 9, width: 9, inChannels: 16, outChannels: 24, kernel: [1, 1], stride: [2, 2], padding: 'same' },
  ],
  ['Xception middle-flow pointwise, smaller', { height: 5, width: 5, inChannels: 128, outChannels: 96, kernel: [1, 1], padding: 'valid' }],
  // Xception's depthwise layers (3×3, stride 1, same) at the edges of the native backend's own loops:
  // one row or column, inner columns in fours with a leftover, channel counts around the 16 lanes.
  ['depthwise 3×3, one row', { batch: 2, height: 1, width: 5, inChannels: 5, outChannels: 5, kernel: [3, 3], padding: 'same', groups: 5 }],
  ['depthwise 3×3, one column', { height: 4, width: 1, inChannels: 17, outChannels: 17, kernel: [3, 3], padding: 'same', groups: 17 }],
  ['depthwise 3×3, 2×2', { height: 2, width: 2, inChannels: 33, outChannels: 33, kernel: [3, 3], padding: 'same', groups: 33 }],
  ['depthwise 3×3, 5×10', { batch: 2, height: 5, width: 10, inChannels: 40, outChannels: 40, kernel: [3, 3], padding: 'same', groups: 40 }],
  [
    'Xception depthwise at 10×10, 64 channels',
    { height: 10, width: 10, inChannels: 64, outChannels: 64, kernel: [3, 3], padding: 'same', groups: 64 },
  ],
];

backendTest('conv2d forward, backward input and backward filter agree with the reference on fixed shapes', (n) => {
  const rng = new Random(11);
  for (const [label, spec] of CONV_CASES) checkConv(n, rng, spec, label);
});

backendTest('conv2d at the full Xception middle-flow shapes (19×19, 728 channels: filter blocks padded to 32)', (n) => {
  const rng = new Random(728);
  checkConv(n, rng, { height: 19, width: 19, inChannels: 728, outChannels: 728, kernel: [1, 1], padding: 'same' }, 'pointwise');
  checkConv(
    n,
    rng,
    { height: 19, width: 19, inChannels: 728, outChannels: 728, kernel: [3, 3], padding: 'same', groups: 728 },
    'depthwise',
  );
});

backendTest('a depthwise tap that falls on padding adds nothing, even an infinite one (no 0·∞)', (n) => {
  const p = convParams({ height: 3, width: 4, inChannels: 3, outChannels: 3, kernel: [3, 3], padding: 'same', groups: 3 });
  const x = Float32Array.from({ length: convInputSize(p) }, (_, i) => 1 + (i % 5));
  const w = new Float32Array(convFilterSize(p)).fill(0.5);
  w.fill(Number.POSITIVE_INFINITY, 0, 3); // tap (0, 0) of every channel: on padding for the top row and left column
  const dy = Float32Array.from({ length: convOutputSize(p) }, (_, i) => (i % 3) - 1);
  const exact = (ours: ArrayLike<number>, ref: ArrayLike<number>, what: string) =>
    assert.deepEqual(Array.from(ours), Array.from(ref, Number), what);
  const [xn, wn, dyn] = [x, w, dy].map((v) => n.upload(v));
  const [xr, wr, dyr] = [x, w, dy].map((v) => R.upload(Float64Array.from(v)));
  // Small integers and halves: every sum is exact in float32, so the results must match exactly.
  exact(
    n.download(n.conv2d(xn!, wn!, p), convOutputSize(p), 'float32'),
    R.download(R.conv2d(xr!, wr!, p), convOutputSize(p), 'float64'),
    'forward',
  );
  const dx = n.download(n.conv2dBackwardInput(dyn!, wn!, p), convInputSize(p), 'float32');
  exact(dx, R.download(R.conv2dBackwardInput(dyr!, wr!, p), convInputSize(p), 'float64'), 'backward input');
  for (const h of [xn!, wn!, dyn!]) n.dispose(h);
});

nativeTest('pointwise convolutions run each pass as a GEMM or a convolution primitive by shape, with the same results', (n) => {
  const rng = new Random(512);
  const gemm = 'gemm:dnnl_sgemm';
  // [in, out] → which of forward, backward data, backward filter run as dnnl_sgemm.
  const cases: Array<[number, number, [boolean, boolean, boolean]]> = [
    [16, 32, [false, false, false]],
    [128, 256, [false, false, true]], // filter gradient from 128·256 weights on
    [24, 512, [true, false, false]], // forward from 512 outputs on
    [512, 520, [true, true, true]], // backward data when both sides have ≥ 512
    [520, 64, [false, false, true]],
  ];
  for (const [inChannels, outChannels, want] of cases) {
    for (const spec of [
      { height: 3, width: 5, inChannels, outChannels, kernel: [1, 1] as [number, number], padding: 'valid' as const, batch: 3 },
      // Not a plain matrix product: strided, padded or grouped 1×1 stay convolutions.
      {
        height: 4,
        width: 4,
        inChannels,
        outChannels,
        kernel: [1, 1] as [number, number],
        stride: [2, 2] as [number, number],
        padding: 'valid' as const,
      },
      { height: 3, width: 3, inChannels, outChannels, kernel: [1, 1] as [number, number], padding: 'valid' as const, groups: 8 },
    ]) {
      const p = convParams(spec);
      const plain = spec.stride === undefined && spec.groups === undefined;
      const impls = (['forward', 'backwardInput', 'backwardFilter'] as const).map((pass) => n.describeConv(p, pass));
      impls.forEach((impl, pass) =>
        assert.equal(impl === gemm, plain && want[pass], `${inChannels}→${outChannels} ${JSON.stringify(spec)} pass ${pass}: ${impl}`),
      );
      checkConv(n, rng, spec, `${inChannels}→${outChannels} via ${impls.join(', ')}`);
    }
  }
});

/** A random convolution: any window, stride, dilation, grouping and padding style. */
function randomConvSpec(rng: Random): ConvSpec {
  const groups = [1, 1, 2, 3][rng.int(4)]!;
  const depthwise = rng.next() < 0.25;
  const inChannels = depthwise ? 1 + rng.int(12) : groups * (1 + rng.int(5));
  const outChannels = depthwise ? inChannels * (1 + rng.int(2)) : groups * (1 + rng.int(5));
  const kernel: [number, number] = [1 + rng.int(4), 1 + rng.int(4)];
  const stride: [number, number] = [1 + rng.int(3), 1 + rng.int(3)];
  const dilation: [number, number] = [1 + rng.int(2), 1 + rng.int(2)];
  const span = (k: number, d: number) => (k - 1) * d + 1;
  const height = span(kernel[0], dilation[0]) + rng.int(9),
    width = span(kernel[1], dilation[1]) + rng.int(9);
  const style = rng.int(3);
  const padding =
    style === 0
      ? ('same' as const)
      : style === 1
        ? ('valid' as const)
        : {
            height: [rng.int(kernel[0]), rng.int(kernel[0])] as [number, number],
            width: [rng.int(kernel[1]), rng.int(kernel[1])] as [number, number],
          };
  return {
    batch: 1 + rng.int(2),
    height,
    width,
    inChannels,
    outChannels,
    kernel,
    stride,
    dilation,
    padding,
    groups: depthwise ? inChannels : groups,
  };
}

backendTest('conv2d forward and backward agree with the reference on 40 random shapes', (n) => {
  const rng = new Random(2024);
  for (let i = 0; i < 40; i++) checkConv(n, rng, randomConvSpec(rng), `random #${i}`);
});

nativeTest('repeated convolutions reuse cached primitives and filter layouts, and stay correct', (n) => {
  const rng = new Random(5);
  const p = convParams({ height: 6, width: 6, inChannels: 16, outChannels: 32, kernel: [1, 1], padding: 'valid' });
  const x = pair(n, randomArray(rng, convInputSize(p)));
  const w = pair(n, randomArray(rng, convFilterSize(p)));
  agree(n, 'first call', n.conv2d(x.n, w.n, p), R.conv2d(x.r, w.r, p), convOutputSize(p));
  const before = n.stats();
  for (let i = 0; i < 5; i++) n.dispose(n.conv2d(x.n, w.n, p));
  const after = n.stats();
  assert.equal(after.cachedPrimitives, before.cachedPrimitives, 'no new primitives for a repeated shape');
  assert.equal(after.cacheMisses, before.cacheMisses);
  assert.ok(after.cacheHits >= before.cacheHits + 5);
  // A different filter of the same shape must not be served the first filter's cached layout.
  const w2 = pair(n, randomArray(rng, convFilterSize(p)));
  agree(n, 'second filter', n.conv2d(x.n, w2.n, p), R.conv2d(x.r, w2.r, p), convOutputSize(p));
});

// ---- batch normalization --------------------------------------------------------------------

// [rows, channels, x low, x high]. Channel counts below 64 exercise the grouped-rows path of the
// native kernels (with leftover rows when rows is not a multiple of the group), 182 is the main
// job's width (not a multiple of 16), 100352 = 128·28·28 rows use both threads, and the last case
// has a mean far from zero against a small spread (shifted sums, centring before scaling).
const BN_CASES: Array<[number, number, number, number]> = [
  [1, 3, -1, 3],
  [50, 8, -1, 3],
  [7, 64, -1, 3],
  [1000, 3, -1, 3],
  [8 * 19 * 19, 32, -1, 3],
  [13, 8, -1, 3],
  [2048, 182, -1, 3],
  [128 * 28 * 28, 8, -1, 3],
  [6272 + 5, 182, 0, 4],
  [517, 24, 99, 101],
];

backendTest('batch norm train, inference and backward agree with the reference', (n) => {
  const rng = new Random(3);
  for (const [rows, channels, lo, hi] of BN_CASES) {
    const p = { rows, channels, epsilon: 1e-3 };
    const size = rows * channels;
    // Non-zero mean and spread so the statistics matter.
    const x = pair(n, randomArray(rng, size, lo, hi));
    const gamma = pair(n, randomArray(rng, channels, 0.5, 1.5));
    const beta = pair(n, randomArray(rng, channels));
    const dy = pair(n, randomArray(rng, size));
    const label = `rows ${rows} channels ${channels} x in [${lo}, ${hi}]`;
    const tn = n.batchNormTrain(x.n, gamma.n, beta.n, p);
    const tr = R.batchNormTrain(x.r, gamma.r, beta.r, p);
    agree(n, `batchNormTrain y ${label}`, tn.y, tr.y, size);
    agree(n, `batchNormTrain mean ${label}`, tn.mean, tr.mean, channels);
    agree(n, `batchNormTrain variance ${label}`, tn.variance, tr.variance, channels);
    // Backward from the same (reference) statistics on both sides.
    const mean = pair(n, R.download(tr.mean, channels, 'float64'));
    const variance = pair(n, R.download(tr.variance, channels, 'float64'));
    const bn = n.batchNormBackward(dy.n, x.n, gamma.n, mean.n, variance.n, p);
    const br = R.batchNormBackward(dy.r, x.r, gamma.r, mean.r, variance.r, p);
    agree(n, `batchNormBackward dx ${label}`, bn.dx, br.dx, size);
    agree(n, `batchNormBackward dgamma ${label}`, bn.dgamma, br.dgamma, channels);
    agree(n, `batchNormBackward dbeta ${label}`, bn.dbeta, br.dbeta, channels);
    // Inference with moving statistics unrelated to the batch.
    const mm = pair(n, randomArray(rng, channels));
    const mv = pair(n, randomArray(rng, channels, 0.1, 2));
    agree(
      n,
      `batchNormInference ${label}`,
      n.batchNormInference(x.n, gamma.n, beta.n, mm.n, mv.n, p),
      R.batchNormInference(x.r, gamma.r, beta.r, mm.r, mv.r, p),
      size,
    );
    // Batch norm → ReLU fused: forward, backward through the mask, inference.
    const pr = { ...p, relu: true };
    const fn = n.batchNormTrain(x.n, gamma.n, beta.n, pr);
    const fr = R.batchNormTrain(x.r, gamma.r, beta.r, pr);
    agree(n, `batchNormReluTrain y ${label}`, fn.y, fr.y, size);
    const yr = R.download(fr.y, size, 'float64');
    const yn = n.upload(Float32Array.from(yr));
    const gn = n.batchNormBackward(dy.n, x.n, gamma.n, mean.n, variance.n, pr, yn);
    const gr = R.batchNormBackward(dy.r, x.r, gamma.r, mean.r, variance.r, pr, fr.y);
    agree(n, `batchNormReluBackward dx ${label}`, gn.dx, gr.dx, size);
    agree(n, `batchNormReluBackward dgamma ${label}`, gn.dgamma, gr.dgamma, channels);
    agree(n, `batchNormReluBackward dbeta ${label}`, gn.dbeta, gr.dbeta, channels);
    agree(
      n,
      `batchNormReluInference ${label}`,
      n.batchNormInference(x.n, gamma.n, beta.n, mm.n, mv.n, pr),
      R.batchNormInference(x.r, gamma.r, beta.r, mm.r, mv.r, pr),
      size,
    );
    assert.throws(() => n.batchNormBackward(dy.n, x.n, gamma.n, mean.n, variance.n, pr), /needs the forward output y/);
  }
});

// ---- activations ---------------------------------------------------------------------------

backendTest('relu, elu and their backward passes agree with the reference', (n) => {
  const rng = new Random(4);
  for (const size of [1, 17, 1000, 100_003]) {
    const x = pair(n, randomArray(rng, size, -2, 2));
    const dy = pair(n, randomArray(rng, size));
    const yn = n.relu(x.n, size),
      yr = R.relu(x.r, size);
    agree(n, `reluBackward ${size}`, n.reluBackward(dy.n, yn, size), R.reluBackward(dy.r, yr, size), size);
    agree(n, `relu ${size}`, yn, yr, size);
    for (const alpha of [1, 0.3]) {
      const en = n.elu(x.n, alpha, size),
        er = R.elu(x.r, alpha, size);
      // Backward from the same y on both sides, so only the gradient formula is compared.
      const y = pair(n, R.download(er, size, 'float64'));
      agree(n, `eluBackward ${size} alpha ${alpha}`, n.eluBackward(dy.n, y.n, alpha, size), R.eluBackward(dy.r, y.r, alpha, size), size);
      agree(n, `elu ${size} alpha ${alpha}`, en, er, size);
    }
  }
});

// ---- pooling -------------------------------------------------------------------------------

function checkPool(n: Backend, rng: Random, spec: PoolSpec, label: string, values?: (size: number) => ArrayLike<number>): void {
  const p: Pool2DParams = poolParams(spec);
  const xs = poolInputSize(p),
    ys = poolOutputSize(p);
  const x = pair(n, values ? values(xs) : randomArray(rng, xs));
  const dy = pair(n, randomArray(rng, ys));
  const what = `${label} ${JSON.stringify(spec)}`;
  agree(n, `maxPool2d ${what}`, n.maxPool2d(x.n, p), R.maxPool2d(x.r, p), ys);
  agree(n, `maxPool2dBackward ${what}`, n.maxPool2dBackward(dy.n, x.n, p), R.maxPool2dBackward(dy.r, x.r, p), xs);
  agree(n, `avgPool2d ${what}`, n.avgPool2d(x.n, p), R.avgPool2d(x.r, p), ys);
  agree(n, `avgPool2dBackward ${what}`, n.avgPool2dBackward(dy.n, p), R.avgPool2dBackward(dy.r, p), xs);
}

const POOL_CASES: Array<[string, PoolSpec]> = [
  ['3×3 stride 2 same, odd size', { batch: 2, height: 9, width: 9, channels: 4, window: [3, 3], stride: [2, 2], padding: 'same' }],
  [
    '3×3 stride 2 same, even size (74→37 case, smaller)',
    { height: 10, width: 8, channels: 5, window: [3, 3], stride: [2, 2], padding: 'same' },
  ],
  ['2×2 stride 2 valid', { height: 8, width: 7, channels: 3, window: [2, 2], stride: [2, 2], padding: 'valid' }],
  ['3×3 stride 1 same (overlapping windows)', { height: 6, width: 6, channels: 16, window: [3, 3], stride: [1, 1], padding: 'same' }],
  [
    'explicit asymmetric padding, 3×2 window',
    { height: 7, width: 6, channels: 2, window: [3, 2], stride: [2, 1], padding: { height: [2, 0], width: [0, 1] } },
  ],
  [
    'Xception block-exit pool at 19×19, 64 channels',
    { height: 19, width: 19, channels: 64, window: [3, 3], stride: [2, 2], padding: 'same' },
  ],
  [
    '130 channels over 3 images (channel blocks of 64 and a remainder)',
    { batch: 3, height: 7, width: 5, channels: 130, window: [3, 3], stride: [2, 2], padding: 'same' },
  ],
];

backendTest('max and average pooling forward and backward agree with the reference', (n) => {
  const rng = new Random(6);
  for (const [label, spec] of POOL_CASES) checkPool(n, rng, spec, label);
  for (let i = 0; i < 15; i++) {
    const window: [number, number] = [1 + rng.int(4), 1 + rng.int(4)];
    const stride: [number, number] = [1 + rng.int(3), 1 + rng.int(3)];
    const spec: PoolSpec = {
      batch: 1 + rng.int(2),
      height: window[0] + rng.int(8),
      width: window[1] + rng.int(8),
      channels: 1 + rng.int(9),
      window,
      stride,
      padding: rng.next() < 0.5 ? 'same' : 'valid',
    };
    checkPool(n, rng, spec, `random #${i}`);
  }
});

backendTest('max pooling: NaN never wins, a window of only NaN and −∞ gives (and takes the gradient at) its first value', (n) => {
  const rng = new Random(11);
  const pick = [Number.NaN, Number.NEGATIVE_INFINITY, Number.NaN, 0.5, -1];
  for (const [label, spec] of POOL_CASES) {
    const p: Pool2DParams = poolParams(spec);
    const x = pair(
      n,
      Array.from({ length: poolInputSize(p) }, () => pick[rng.int(pick.length)]!),
    );
    const ys = poolOutputSize(p);
    const actual = n.download(n.maxPool2d(x.n, p), ys, 'float32');
    const expected = R.download(R.maxPool2d(x.r, p), ys, 'float64');
    for (let i = 0; i < ys; i++)
      assert.ok(Object.is(actual[i], expected[i]) || actual[i] === expected[i], `${label} [${i}]: ${actual[i]} vs ${expected[i]}`);
    const dy = pair(n, randomArray(rng, ys));
    agree(n, `maxPool2dBackward ${label}`, n.maxPool2dBackward(dy.n, x.n, p), R.maxPool2dBackward(dy.r, x.r, p), poolInputSize(p));
    n.dispose(x.n);
  }
});

backendTest('max pooling backward sends ties to the first maximum in row-major order, like the reference', (n) => {
  const rng = new Random(7);
  // Few distinct values (and many zeros, as after a ReLU), so most windows hold tied maxima.
  const tied = (size: number) => Array.from({ length: size }, () => Math.max(0, rng.int(4) - 1));
  for (const [label, spec] of POOL_CASES) checkPool(n, rng, spec, `tied ${label}`, tied);
});

backendTest('global average and max pooling forward and backward agree with the reference, ties included', (n) => {
  const rng = new Random(8);
  for (const [batch, spatial, channels] of [
    [1, 1, 5],
    [2, 49, 7],
    [3, 100, 64],
  ] as const) {
    const p = { batch, spatial, channels };
    const size = batch * spatial * channels;
    for (const kind of ['random', 'tied'] as const) {
      const x = pair(n, kind === 'random' ? randomArray(rng, size) : Array.from({ length: size }, () => rng.int(3)));
      const dy = pair(n, randomArray(rng, batch * channels));
      const label = `${kind} ${JSON.stringify(p)}`;
      agree(n, `globalAvgPool ${label}`, n.globalAvgPool(x.n, p), R.globalAvgPool(x.r, p), batch * channels);
      agree(n, `globalAvgPoolBackward ${label}`, n.globalAvgPoolBackward(dy.n, p), R.globalAvgPoolBackward(dy.r, p), size);
      agree(n, `globalMaxPool ${label}`, n.globalMaxPool(x.n, p), R.globalMaxPool(x.r, p), batch * channels);
      agree(n, `globalMaxPoolBackward ${label}`, n.globalMaxPoolBackward(dy.n, x.n, p), R.globalMaxPoolBackward(dy.r, x.r, p), size);
    }
  }
});

// ---- dense, elementwise, channel bookkeeping ------------------------------------------------

backendTest('matmul agrees with the reference for every transpose combination', (n) => {
  const rng = new Random(9);
  for (const [m, k, nn] of [
    [1, 5, 3],
    [7, 13, 11],
    [32, 64, 10],
    [2, 2048, 100],
  ] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const p = { m, k, n: nn, transA, transB };
        const a = pair(n, randomArray(rng, m * k));
        const b = pair(n, randomArray(rng, k * nn));
        agree(n, `matmul ${JSON.stringify(p)}`, n.matmul(a.n, b.n, p), R.matmul(a.r, b.r, p), m * nn);
      }
    }
  }
});

backendTest('axpby, mul, scale, biasAdd and sumRows agree with the reference', (n) => {
  const rng = new Random(10);
  for (const size of [1, 33, 70_001]) {
    const a = pair(n, randomArray(rng, size));
    const b = pair(n, randomArray(rng, size));
    agree(n, `axpby ${size}`, n.axpby(a.n, b.n, 0.7, -1.3, size), R.axpby(a.r, b.r, 0.7, -1.3, size), size);
    agree(n, `mul ${size}`, n.mul(a.n, b.n, size), R.mul(a.r, b.r, size), size);
    agree(n, `scale ${size}`, n.scale(a.n, -2.5, size), R.scale(a.r, -2.5, size), size);
  }
  // sumRows over many rows of same-signed values: float32 accumulation would drift here.
  for (const [rows, channels] of [
    [1, 4],
    [9, 3],
    [8 * 147 * 147, 3],
    [500, 256],
  ] as const) {
    const p = { rows, channels };
    const x = pair(n, randomArray(rng, rows * channels, 0, 1));
    const bias = pair(n, randomArray(rng, channels));
    agree(n, `biasAdd ${rows}×${channels}`, n.biasAdd(x.n, bias.n, p), R.biasAdd(x.r, bias.r, p), rows * channels);
    agree(n, `sumRows ${rows}×${channels}`, n.sumRows(x.n, p), R.sumRows(x.r, p), channels);
  }
});

backendTest('concatChannels and sliceChannels agree with the reference', (n) => {
  const rng = new Random(12);
  const rows = 37,
    channels = [3, 2, 8, 1];
  const xs = channels.map((c) => pair(n, randomArray(rng, rows * c)));
  const total = channels.reduce((a, b) => a + b, 0);
  const cn = n.concatChannels(
    xs.map((x) => x.n),
    rows,
    channels,
  );
  const cr = R.concatChannels(
    xs.map((x) => x.r),
    rows,
    channels,
  );
  for (const [start, count] of [
    [0, 3],
    [3, 8],
    [13, 1],
    [2, 7],
    [5, 9],
  ] as const) {
    const p = { rows, channels: total };
    agree(n, `sliceChannels ${start}+${count}`, n.sliceChannels(cn, p, start, count), R.sliceChannels(cr, p, start, count), rows * count);
  }
  agree(n, 'concatChannels', cn, cr, rows * total);
});

backendTest('softmax, cross-entropy and its backward agree with the reference', (n) => {
  const rng = new Random(13);
  for (const [rows, channels] of [
    [1, 2],
    [8, 10],
    [4, 1000],
  ] as const) {
    const logits = pair(n, randomArray(rng, rows * channels, -5, 5));
    const labels = Int32Array.from({ length: rows }, () => rng.int(channels));
    agree(
      n,
      `softmax ${rows}×${channels}`,
      n.softmax(logits.n, { rows, channels }),
      R.softmax(logits.r, { rows, channels }),
      rows * channels,
    );
    for (const labelSmoothing of [0, 0.1]) {
      const p = { rows, channels, labelSmoothing };
      const ln = n.softmaxCrossEntropy(logits.n, labels, p);
      const lr = R.softmaxCrossEntropy(logits.r, labels, p);
      assert.ok(relError([ln.loss], [lr.loss]) <= TOL, `loss ${ln.loss} vs ${lr.loss} (${JSON.stringify(p)})`);
      agree(n, `softmaxCrossEntropy probs ${JSON.stringify(p)}`, ln.probs, lr.probs, rows * channels);
      const probs = pair(n, R.download(lr.probs, rows * channels, 'float64'));
      agree(
        n,
        `softmaxCrossEntropyBackward ${JSON.stringify(p)}`,
        n.softmaxCrossEntropyBackward(probs.n, labels, p, 2),
        R.softmaxCrossEntropyBackward(probs.r, labels, p, 2),
        rows * channels,
      );
    }
  }
});

nativeTest('sigmoid cross-entropy and its backward agree with the reference (large logits included)', (n) => {
  const rng = new Random(17);
  for (const [rows, channels] of [
    [1, 1],
    [8, 10],
    [64, 1000],
  ] as const) {
    const size = rows * channels;
    const logits = pair(n, randomArray(rng, size, -40, 40));
    const targets = pair(
      n,
      Array.from({ length: size }, () => [0, 1, 0.3][rng.int(3)]!),
    );
    const p = { rows, channels };
    const ln = n.sigmoidCrossEntropy(logits.n, targets.n, p);
    const lr = R.sigmoidCrossEntropy(logits.r, targets.r, p);
    assert.ok(relError([ln.loss], [lr.loss]) <= TOL, `loss ${ln.loss} vs ${lr.loss} (${rows}×${channels})`);
    agree(n, `sigmoidCrossEntropy probs ${rows}×${channels}`, ln.probs, lr.probs, size);
    const probs = pair(n, R.download(lr.probs, size, 'float64'));
    agree(
      n,
      `sigmoidCrossEntropyBackward ${rows}×${channels}`,
      n.sigmoidCrossEntropyBackward(probs.n, targets.n, p, 2),
      R.sigmoidCrossEntropyBackward(probs.r, targets.r, p, 2),
      size,
    );
  }
});

// ---- training -------------------------------------------------------------------------------

const RULES: UpdateRule[] = [
  { kind: 'sgd', lr: 0.1, momentum: 0, nesterov: false, weightDecay: 0 },
  { kind: 'sgd', lr: 0.045, momentum: 0.9, nesterov: false, weightDecay: 1e-5 },
  { kind: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
  { kind: 'rmsprop', lr: 0.001, rho: 0.9, momentum: 0.9, epsilon: 1.0, weightDecay: 1e-5 },
  { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0, decoupledWeightDecay: false, step: 1 },
  { kind: 'adam', lr: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0.01, decoupledWeightDecay: true, step: 1 },
];

backendTest('applyUpdate for every rule and sumSquares agree with the reference over several steps', (n) => {
  const rng = new Random(14);
  for (const base of RULES) {
    for (const size of [5, 70_001]) {
      const w = pair(n, randomArray(rng, size));
      const stateCount = base.kind === 'sgd' ? (base.momentum > 0 ? 1 : 0) : 2;
      const state = Array.from({ length: stateCount }, () => pair(n, new Float64Array(size)));
      for (let step = 1; step <= 3; step++) {
        const rule = base.kind === 'adam' ? { ...base, step } : base;
        const g = pair(n, randomArray(rng, size));
        n.applyUpdate(
          rule,
          w.n,
          g.n,
          state.map((s) => s.n),
          size,
          0.5,
        );
        R.applyUpdate(
          rule,
          w.r,
          g.r,
          state.map((s) => s.r),
          size,
          0.5,
        );
        const label = `${JSON.stringify(rule)} size ${size} step ${step}`;
        // agree() disposes its native handle; these live on, so compare through copies.
        const copy = (p: Pair) => n.upload(n.download(p.n, size, 'float32') as Float32Array);
        agree(n, `applyUpdate param ${label}`, copy(w), w.r, size);
        state.forEach((s, i) => agree(n, `applyUpdate state ${i} ${label}`, copy(s), s.r, size));
      }
      const sn = n.sumSquares(w.n, size),
        sr = R.sumSquares(w.r, size);
      assert.ok(relError([sn], [sr]) <= TOL, `sumSquares ${sn} vs ${sr}`);
    }
  }
});

backendTest('sumSquares is NaN with any NaN and infinite with any infinity, wherever it sits', (n) => {
  for (const size of [5, 17, 70_001]) {
    for (const at of [0, size - 1, size >> 1]) {
      for (const [bad, expect] of [
        [Number.NaN, Number.isNaN],
        [Number.POSITIVE_INFINITY, (v: number) => v === Number.POSITIVE_INFINITY],
        [Number.NEGATIVE_INFINITY, (v: number) => v === Number.POSITIVE_INFINITY],
      ] as const) {
        const x = new Float32Array(size).fill(0.5);
        x[at] = bad;
        const h = n.upload(x);
        const s = n.sumSquares(h, size);
        n.dispose(h);
        assert.ok(expect(s), `size ${size}, ${bad} at ${at}: ${s}`);
      }
    }
  }
});

backendTest('a filter updated in place is seen by the next convolution (no stale cached layout)', (n) => {
  const rng = new Random(15);
  const p = convParams({ height: 7, width: 7, inChannels: 32, outChannels: 64, kernel: [1, 1], padding: 'valid' });
  const x = pair(n, randomArray(rng, convInputSize(p)));
  const w = pair(n, randomArray(rng, convFilterSize(p)));
  const dy = pair(n, randomArray(rng, convOutputSize(p)));
  agree(n, 'before the update', n.conv2d(x.n, w.n, p), R.conv2d(x.r, w.r, p), convOutputSize(p));
  agree(n, 'input gradient before', n.conv2dBackwardInput(dy.n, w.n, p), R.conv2dBackwardInput(dy.r, w.r, p), convInputSize(p));
  const rule: UpdateRule = { kind: 'sgd', lr: 0.5, momentum: 0, nesterov: false, weightDecay: 0 };
  const g = pair(n, randomArray(rng, convFilterSize(p)));
  n.applyUpdate(rule, w.n, g.n, [], convFilterSize(p), 1);
  R.applyUpdate(rule, w.r, g.r, [], convFilterSize(p), 1);
  agree(n, 'after the update', n.conv2d(x.n, w.n, p), R.conv2d(x.r, w.r, p), convOutputSize(p));
  agree(n, 'input gradient after', n.conv2dBackwardInput(dy.n, w.n, p), R.conv2dBackwardInput(dy.r, w.r, p), convInputSize(p));
});

backendTest('upload, zeros and download round-trip float32 exactly', (n) => {
  const values = Float32Array.from([0, -0, 1.5, -3.25, 1e-30, 3.4e38, Number.NaN]);
  const back = n.download(n.upload(values), values.length, 'float32');
  assert.deepEqual(Array.from(back), Array.from(values));
  assert.deepEqual(Array.from(n.download(n.zeros(5, 'float32'), 5, 'float32')), [0, 0, 0, 0, 0]);
  assert.equal(n.download(n.zeros(0, 'float32'), 0, 'float32').length, 0);
  // A view into a larger buffer uploads only its own elements.
  const view = Float32Array.from([9, 1, 2, 3, 9]).subarray(1, 4);
  assert.deepEqual(Array.from(n.download(n.upload(view), 3, 'float32')), [1, 2, 3]);
});
