/**
 * The shared gradient suite: on every backend present (reference, native, wasm), each backward
 * kernel is the gradient of its forward kernel, by central finite differences along a random
 * direction in float32 (assertDirectionalGradient). L = Σ forward(inputs)·r for a fixed random r,
 * whose gradient is the backward kernel given dy = r. The reference's float64 element-wise check
 * is reference-gradients.test.ts; agreement with the reference within 1e-4 is backend-kernels.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, Handle } from '../../src/core/backend.js';
import { Random } from '../../src/core/random.js';
import { distinctArray, randomArray } from '../helpers/arrays.js';
import { ALL_BACKENDS } from '../helpers/backends.js';
import { assertDirectionalGradient } from '../helpers/gradcheck.js';
import { type ConvSpec, type PoolSpec, convFilterSize, convInputSize, convOutputSize, convParams, poolParams } from '../helpers/params.js';

function backendTest(name: string, body: (b: Backend, rng: Random, skip: (why: string) => void) => void): void {
  for (const { name: backendName, load, reason } of ALL_BACKENDS) {
    test(`${backendName}: ${name}`, (t) => {
      const b = load();
      if (!b) return t.skip(reason());
      body(b, new Random(name.length * 31 + backendName.length), (why) => t.skip(why));
    });
  }
}

const f32 = (rng: Random, size: number, lo = -1, hi = 1) => Float32Array.from(randomArray(rng, size, lo, hi));

/** Σ h·r in float64, disposing h. */
function weighted(b: Backend, h: Handle, r: Float32Array): number {
  const y = b.download(h, r.length, 'float32');
  b.dispose(h);
  let s = 0;
  for (let i = 0; i < r.length; i++) s += y[i]! * r[i]!;
  return s;
}

/**
 * Checks every input's gradient: `loss(handles)` is the scalar loss and `grads(handles)` the
 * analytic gradient of each input (both on the backend).
 */
function checkGradients(
  b: Backend,
  rng: Random,
  label: string,
  inputs: Float32Array[],
  loss: (hs: Handle[]) => number,
  grads: (hs: Handle[]) => Handle[],
): void {
  const hs = inputs.map((x) => b.upload(x));
  const analytic = grads(hs).map((g, i) => b.download(g, inputs[i]!.length, 'float32'));
  inputs.forEach((x, i) => {
    const at = (xi: Float32Array) => {
      const moved = b.upload(xi);
      const value = loss(hs.map((h, j) => (j === i ? moved : h)));
      b.dispose(moved);
      return value;
    };
    assertDirectionalGradient(analytic[i]!, at, x, f32(rng, x.length), `${label} input ${i}`);
  });
  for (const h of hs) b.dispose(h);
}

const CONV_SPECS: ConvSpec[] = [
  { batch: 2, height: 6, width: 6, inChannels: 3, outChannels: 4, kernel: [3, 3], stride: [2, 2], padding: 'same' },
  { height: 7, width: 5, inChannels: 4, outChannels: 6, kernel: [3, 2], dilation: [2, 1], padding: { height: [1, 0], width: [0, 1] } },
  { batch: 2, height: 5, width: 4, inChannels: 4, outChannels: 6, kernel: [3, 3], padding: 'same', groups: 2 },
  { height: 6, width: 5, inChannels: 3, outChannels: 6, kernel: [3, 3], stride: [2, 2], padding: 'same', groups: 3 },
  // Xception's depthwise layers (the native backend's own loops): inner columns in fours and edges.
  { batch: 2, height: 4, width: 7, inChannels: 5, outChannels: 5, kernel: [3, 3], padding: 'same', groups: 5 },
  { batch: 2, height: 3, width: 4, inChannels: 9, outChannels: 7, kernel: [1, 1], padding: 'valid' },
];

backendTest('conv2d backward input and filter are the gradient of conv2d', (b, rng) => {
  for (const spec of CONV_SPECS) {
    const p = convParams(spec);
    const r = f32(rng, convOutputSize(p));
    const rh = b.upload(r);
    checkGradients(
      b,
      rng,
      `conv2d ${JSON.stringify(spec)}`,
      [f32(rng, convInputSize(p)), f32(rng, convFilterSize(p))],
      ([x, w]) => weighted(b, b.conv2d(x!, w!, p), r),
      ([x, w]) => [b.conv2dBackwardInput(rh, w!, p), b.conv2dBackwardFilter(x!, rh, p)],
    );
    b.dispose(rh);
  }
});

backendTest('batchNormBackward is the gradient of batchNormTrain, with and without the fused ReLU', (b, rng) => {
  for (const relu of [false, true]) {
    const p = { rows: 30, channels: 5, epsilon: 1e-3, relu };
    const r = f32(rng, p.rows * p.channels);
    const rh = b.upload(r);
    checkGradients(
      b,
      rng,
      `batchNorm relu=${relu}`,
      [f32(rng, p.rows * p.channels, -1, 3), f32(rng, p.channels, 0.5, 1.5), f32(rng, p.channels)],
      ([x, g, be]) => {
        const t = b.batchNormTrain(x!, g!, be!, p);
        b.dispose(t.mean);
        b.dispose(t.variance);
        return weighted(b, t.y, r);
      },
      ([x, g, be]) => {
        const t = b.batchNormTrain(x!, g!, be!, p);
        const d = b.batchNormBackward(rh, x!, g!, t.mean, t.variance, p, t.y);
        for (const h of [t.y, t.mean, t.variance]) b.dispose(h);
        return [d.dx, d.dgamma, d.dbeta];
      },
    );
    b.dispose(rh);
  }
});

backendTest('pooling backward kernels are the gradients of their forwards', (b, rng) => {
  const specs: PoolSpec[] = [
    { batch: 2, height: 7, width: 6, channels: 3, window: [3, 3], stride: [2, 2], padding: 'same' },
    { height: 6, width: 7, channels: 2, window: [3, 2], stride: [2, 1], padding: { height: [2, 0], width: [0, 1] } },
  ];
  for (const spec of specs) {
    const p = poolParams(spec);
    const r = f32(rng, p.batch * p.outHeight * p.outWidth * p.channels);
    const rh = b.upload(r);
    // Distinct values 0.01 apart: a step of eps = 1e-3 never moves a window's maximum.
    const x = [Float32Array.from(distinctArray(rng, p.batch * p.inHeight * p.inWidth * p.channels))];
    const label = JSON.stringify(spec);
    checkGradients(
      b,
      rng,
      `maxPool2d ${label}`,
      x,
      ([h]) => weighted(b, b.maxPool2d(h!, p), r),
      ([h]) => [b.maxPool2dBackward(rh, h!, p)],
    );
    checkGradients(
      b,
      rng,
      `avgPool2d ${label}`,
      x,
      ([h]) => weighted(b, b.avgPool2d(h!, p), r),
      () => [b.avgPool2dBackward(rh, p)],
    );
    b.dispose(rh);
  }
  const g = { batch: 2, spatial: 9, channels: 4 };
  const r = f32(rng, g.batch * g.channels);
  const rh = b.upload(r);
  const x = [Float32Array.from(distinctArray(rng, g.batch * g.spatial * g.channels))];
  checkGradients(
    b,
    rng,
    'globalAvgPool',
    x,
    ([h]) => weighted(b, b.globalAvgPool(h!, g), r),
    () => [b.globalAvgPoolBackward(rh, g)],
  );
  checkGradients(
    b,
    rng,
    'globalMaxPool',
    x,
    ([h]) => weighted(b, b.globalMaxPool(h!, g), r),
    ([h]) => [b.globalMaxPoolBackward(rh, h!, g)],
  );
  b.dispose(rh);
});

backendTest('matmul, biasAdd and elu have the gradients autograd builds from kernels', (b, rng) => {
  const [m, k, n] = [5, 7, 3];
  const r = f32(rng, m * n);
  const rh = b.upload(r);
  const mm = { m, k, n, transA: false, transB: false };
  checkGradients(
    b,
    rng,
    'matmul',
    [f32(rng, m * k), f32(rng, k * n)],
    ([a, bb]) => weighted(b, b.matmul(a!, bb!, mm), r),
    ([a, bb]) => [
      b.matmul(rh, bb!, { m, k: n, n: k, transA: false, transB: true }),
      b.matmul(a!, rh, { m: k, k: m, n, transA: true, transB: false }),
    ],
  );
  const rows = { rows: m, channels: n };
  checkGradients(
    b,
    rng,
    'biasAdd',
    [f32(rng, m * n), f32(rng, n)],
    ([x, bias]) => weighted(b, b.biasAdd(x!, bias!, rows), r),
    () => [b.scale(rh, 1, m * n), b.sumRows(rh, rows)],
  );
  checkGradients(
    b,
    rng,
    'elu',
    [f32(rng, m * n, -2, 2)],
    ([x]) => weighted(b, b.elu(x!, 0.7, m * n), r),
    ([x]) => {
      const y = b.elu(x!, 0.7, m * n);
      const d = b.eluBackward(rh, y, 0.7, m * n);
      b.dispose(y);
      return [d];
    },
  );
  b.dispose(rh);
});

backendTest('softmaxCrossEntropyBackward is the gradient of softmaxCrossEntropy, with label smoothing', (b, rng) => {
  for (const labelSmoothing of [0, 0.1]) {
    const p = { rows: 4, channels: 6, labelSmoothing };
    const labels = Int32Array.from({ length: p.rows }, () => rng.int(p.channels));
    checkGradients(
      b,
      rng,
      `softmaxCrossEntropy s=${labelSmoothing}`,
      [f32(rng, p.rows * p.channels, -3, 3)],
      ([x]) => {
        const { loss, probs } = b.softmaxCrossEntropy(x!, labels, p);
        b.dispose(probs);
        return loss;
      },
      ([x]) => {
        const { probs } = b.softmaxCrossEntropy(x!, labels, p);
        const d = b.softmaxCrossEntropyBackward(probs, labels, p, 1);
        b.dispose(probs);
        return [d];
      },
    );
  }
});

backendTest('sigmoid cross-entropy: Keras binary_crossentropy on logits, and its gradient', (b, rng) => {
  const s = b;
  const p = { rows: 3, channels: 4 };
  const size = p.rows * p.channels;
  const logits = Float32Array.from([...f32(rng, size - 2, -4, 4), 40, -40]);
  const targets = Float32Array.from({ length: size }, (_, i) => (i % 3 === 0 ? 0.3 : rng.int(2)));
  const th = b.upload(targets);
  // Closed form in float64: mean of −t·log σ(x) − (1 − t)·log(1 − σ(x)), written stably.
  let expected = 0;
  for (let i = 0; i < size; i++)
    expected += Math.max(logits[i]!, 0) - logits[i]! * targets[i]! + Math.log1p(Math.exp(-Math.abs(logits[i]!)));
  expected /= size;
  const lh = b.upload(logits);
  const { loss, probs } = s.sigmoidCrossEntropy(lh, th, p);
  assert.ok(Math.abs(loss - expected) <= 1e-6 * Math.abs(expected), `loss ${loss} vs ${expected}`);
  const pr = b.download(probs, size, 'float32');
  for (let i = 0; i < size; i++) assert.ok(Math.abs(pr[i]! - 1 / (1 + Math.exp(-logits[i]!))) < 1e-6, `sigmoid ${i}`);
  checkGradients(
    b,
    rng,
    'sigmoidCrossEntropy',
    [logits],
    ([x]) => {
      const out = s.sigmoidCrossEntropy(x!, th, p);
      b.dispose(out.probs);
      return out.loss;
    },
    ([x]) => {
      const out = s.sigmoidCrossEntropy(x!, th, p);
      const d = s.sigmoidCrossEntropyBackward(out.probs, th, p, 1);
      b.dispose(out.probs);
      return [d];
    },
  );
});
