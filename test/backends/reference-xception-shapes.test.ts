/**
 * Runs every kernel shape of Keras Xception at the minimum input 71×71 (batch 1) forward and
 * backward on the reference backend. This pins that the loops handle the real layer shapes (odd
 * sizes, 'same' stride-2 pools and 1×1 stride-2 shortcuts, 728–2048 channels) and measures how long
 * the readable specification takes on the full network, which the model tests rely on.
 * Layers are called kernel by kernel here, with sizes written out from the Keras model summary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Conv2DParams, NumArray, Pool2DParams } from '../../src/core/backend.js';
import { Random } from '../../src/core/random.js';
import { referenceBackend as B } from '../../src/backends/reference/index.js';
import { randomArray } from '../helpers/arrays.js';
import { sameWindow, validWindow } from '../helpers/windows.js';

const asF32 = (h: object) => h as Float32Array;

function convParams(
  size: number,
  inC: number,
  outC: number,
  k: number,
  stride: number,
  padding: 'same' | 'valid',
  groups = 1,
): Conv2DParams {
  const w = padding === 'same' ? sameWindow(size, k, stride) : validWindow(size, k, stride);
  return {
    batch: 1,
    inHeight: size,
    inWidth: size,
    inChannels: inC,
    outHeight: w.out,
    outWidth: w.out,
    outChannels: outC,
    kernelHeight: k,
    kernelWidth: k,
    strideHeight: stride,
    strideWidth: stride,
    dilationHeight: 1,
    dilationWidth: 1,
    padTop: w.padBefore,
    padLeft: w.padBefore,
    padBottom: w.padAfter,
    padRight: w.padAfter,
    groups,
  };
}

function maxPoolParams(size: number, channels: number): Pool2DParams {
  const w = sameWindow(size, 3, 2);
  return {
    batch: 1,
    inHeight: size,
    inWidth: size,
    channels,
    outHeight: w.out,
    outWidth: w.out,
    windowHeight: 3,
    windowWidth: 3,
    strideHeight: 2,
    strideWidth: 2,
    padTop: w.padBefore,
    padLeft: w.padBefore,
    padBottom: w.padAfter,
    padRight: w.padAfter,
  };
}

test('every Xception layer shape at 71×71 runs forward and backward on the reference backend', () => {
  const rng = new Random(71);
  const started = performance.now();
  const sizes: number[] = [];
  let convMacs = 0;

  // conv → BN (train) → optional ReLU, then the backward of all three; returns the activation.
  const convBnRelu = (x: NumArray, p: Conv2DParams, withRelu: boolean): NumArray => {
    const w = Float32Array.from(randomArray(rng, p.kernelHeight * p.kernelWidth * (p.inChannels / p.groups) * p.outChannels, -0.1, 0.1));
    const y = asF32(B.conv2d(x, w, p));
    convMacs += p.outHeight * p.outWidth * p.outChannels * p.kernelHeight * p.kernelWidth * (p.inChannels / p.groups);
    const bnp = { rows: p.outHeight * p.outWidth, channels: p.outChannels, epsilon: 1e-3 };
    const gamma = new Float32Array(p.outChannels).fill(1),
      beta = new Float32Array(p.outChannels);
    const bn = B.batchNormTrain(y, gamma, beta, bnp);
    const out = withRelu ? asF32(B.relu(bn.y, y.length)) : asF32(bn.y);
    // Backward with a random upstream gradient.
    let dy: NumArray = Float32Array.from(randomArray(rng, out.length));
    if (withRelu) dy = asF32(B.reluBackward(dy, out, out.length));
    const g = B.batchNormBackward(dy, y, gamma, bn.mean, bn.variance, bnp);
    const dx = asF32(B.conv2dBackwardInput(g.dx, w, p));
    const dw = asF32(B.conv2dBackwardFilter(x, g.dx, p));
    assert.equal(dx.length, x.length);
    assert.ok(Number.isFinite(dx[0]) && Number.isFinite(dw[dw.length - 1]));
    return out;
  };
  // Keras SeparableConv2D: depthwise 3×3 'same' then pointwise 1×1, both bias-free.
  const sepConvBn = (x: NumArray, size: number, inC: number, outC: number, withRelu: boolean): NumArray => {
    const dw = convBnReluNoBn(x, convParams(size, inC, inC, 3, 1, 'same', inC));
    return convBnRelu(dw, convParams(size, inC, outC, 1, 1, 'same'), withRelu);
  };
  const convBnReluNoBn = (x: NumArray, p: Conv2DParams): NumArray => {
    const w = Float32Array.from(randomArray(rng, p.kernelHeight * p.kernelWidth * (p.inChannels / p.groups) * p.outChannels, -0.3, 0.3));
    const y = asF32(B.conv2d(x, w, p));
    convMacs += p.outHeight * p.outWidth * p.outChannels * p.kernelHeight * p.kernelWidth * (p.inChannels / p.groups);
    B.conv2dBackwardInput(y, w, p);
    B.conv2dBackwardFilter(x, y, p);
    return y;
  };
  const pool = (x: NumArray, size: number, channels: number): NumArray => {
    const p = maxPoolParams(size, channels);
    const y = asF32(B.maxPool2d(x, p));
    B.maxPool2dBackward(y, x, p);
    return y;
  };

  // Entry flow.
  let size = 71;
  let x: NumArray = Float32Array.from(randomArray(rng, size * size * 3));
  let p = convParams(size, 3, 32, 3, 2, 'valid');
  x = convBnRelu(x, p, true);
  size = p.outHeight;
  sizes.push(size); // 35
  p = convParams(size, 32, 64, 3, 1, 'valid');
  x = convBnRelu(x, p, true);
  size = p.outHeight;
  sizes.push(size); // 33
  let channels = 64;
  for (const outC of [128, 256, 728]) {
    const shortcut = convBnRelu(x, convParams(size, channels, outC, 1, 2, 'same'), false);
    let h = sepConvBn(x, size, channels, outC, true);
    h = sepConvBn(h, size, outC, outC, false);
    h = pool(h, size, outC);
    assert.equal(h.length, shortcut.length);
    x = B.axpby(h, shortcut, 1, 1, h.length) as NumArray;
    size = sameWindow(size, 3, 2).out;
    sizes.push(size); // 17, 9, 5
    channels = outC;
  }
  // Middle flow: 8 blocks of three ReLU → sepconv → BN with a residual add.
  for (let block = 0; block < 8; block++) {
    let h: NumArray = x;
    for (let i = 0; i < 3; i++) h = sepConvBn(B.relu(h, h.length) as NumArray, size, 728, 728, false);
    x = B.axpby(h, x, 1, 1, h.length) as NumArray;
  }
  // Exit flow.
  const shortcut = convBnRelu(x, convParams(size, 728, 1024, 1, 2, 'same'), false);
  let h = sepConvBn(B.relu(x, x.length) as NumArray, size, 728, 728, true);
  h = sepConvBn(h, size, 728, 1024, false);
  h = pool(h, size, 1024);
  x = B.axpby(h, shortcut, 1, 1, h.length) as NumArray;
  size = sameWindow(size, 3, 2).out;
  sizes.push(size); // 3
  x = sepConvBn(x, size, 1024, 1536, true);
  x = sepConvBn(x, size, 1536, 2048, true);
  const gp = { batch: 1, spatial: size * size, channels: 2048 };
  const pooled = B.globalAvgPool(x, gp) as NumArray;
  B.globalAvgPoolBackward(pooled, gp);
  assert.equal(pooled.length, 2048);
  assert.ok(pooled instanceof Float32Array);

  const seconds = (performance.now() - started) / 1000;
  assert.deepEqual(sizes, [35, 33, 17, 9, 5, 3]);
  console.log(
    `# reference backend: Xception 71×71 batch 1 forward+backward, ${(convMacs / 1e6).toFixed(0)} M conv MACs forward, ${seconds.toFixed(2)} s`,
  );
});
