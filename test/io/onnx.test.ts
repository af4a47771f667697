import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Random } from '../../src/core/random.js';
import { OnnxGraphError } from '../../src/io/errors.js';
import { attr, kerasConvKernelToOnnx, kerasDepthwiseKernelToOnnx, OnnxGraphBuilder, tfSamePads } from '../../src/io/onnx.js';
import { ProtoWriter } from '../../src/io/protobuf.js';

// ---- A plain NHWC reference, written the way Keras/TensorFlow define the ops. ----
interface T4 {
  shape: [number, number, number, number];
  data: Float32Array;
}
const at = (t: T4, n: number, y: number, x: number, c: number) => t.data[((n * t.shape[1] + y) * t.shape[2] + x) * t.shape[3] + c]!;

function samePad(size: number, k: number, s: number): { out: number; before: number } {
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + k - size, 0);
  return { out, before: Math.floor(total / 2) };
}

/** Conv2D, kernel HWIO, TensorFlow padding ('same' puts the extra pixel at the end). */
function conv2d(x: T4, k: Float32Array, [kh, kw, cin, cout]: number[], stride: number, padding: 'same' | 'valid'): T4 {
  const [n, h, w] = x.shape;
  const ph = padding === 'same' ? samePad(h, kh!, stride) : { out: Math.floor((h - kh!) / stride) + 1, before: 0 };
  const pw = padding === 'same' ? samePad(w, kw!, stride) : { out: Math.floor((w - kw!) / stride) + 1, before: 0 };
  const out: T4 = { shape: [n, ph.out, pw.out, cout!], data: new Float32Array(n * ph.out * pw.out * cout!) };
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < ph.out; oy++)
      for (let ox = 0; ox < pw.out; ox++)
        for (let o = 0; o < cout!; o++) {
          let s = 0;
          for (let dy = 0; dy < kh!; dy++)
            for (let dx = 0; dx < kw!; dx++) {
              const iy = oy * stride + dy - ph.before;
              const ix = ox * stride + dx - pw.before;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              for (let i = 0; i < cin!; i++) s += at(x, b, iy, ix, i) * k[((dy * kw! + dx) * cin! + i) * cout! + o]!;
            }
          out.data[((b * ph.out + oy) * pw.out + ox) * cout! + o] = s;
        }
  return out;
}

/** DepthwiseConv2D, kernel [kh, kw, C, m]; output channel c·m + j; 'same' padding, stride 1. */
function depthwise(x: T4, k: Float32Array, [kh, kw, c, m]: number[]): T4 {
  const [n, h, w] = x.shape;
  const py = samePad(h, kh!, 1).before;
  const px = samePad(w, kw!, 1).before;
  const out: T4 = { shape: [n, h, w, c! * m!], data: new Float32Array(n * h * w * c! * m!) };
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < h; oy++)
      for (let ox = 0; ox < w; ox++)
        for (let ch = 0; ch < c!; ch++)
          for (let j = 0; j < m!; j++) {
            let s = 0;
            for (let dy = 0; dy < kh!; dy++)
              for (let dx = 0; dx < kw!; dx++) {
                const iy = oy + dy - py;
                const ix = ox + dx - px;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) s += at(x, b, iy, ix, ch) * k[((dy * kw! + dx) * c! + ch) * m! + j]!;
              }
            out.data[((b * h + oy) * w + ox) * c! * m! + ch * m! + j] = s;
          }
  return out;
}

function maxPoolSame(x: T4, k: number, stride: number): T4 {
  const [n, h, w, c] = x.shape;
  const ph = samePad(h, k, stride);
  const pw = samePad(w, k, stride);
  const out: T4 = { shape: [n, ph.out, pw.out, c], data: new Float32Array(n * ph.out * pw.out * c) };
  for (let b = 0; b < n; b++)
    for (let oy = 0; oy < ph.out; oy++)
      for (let ox = 0; ox < pw.out; ox++)
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity;
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) {
              const iy = oy * stride + dy - ph.before;
              const ix = ox * stride + dx - pw.before;
              if (iy >= 0 && iy < h && ix >= 0 && ix < w) best = Math.max(best, at(x, b, iy, ix, ch));
            }
          out.data[((b * ph.out + oy) * pw.out + ox) * c + ch] = best;
        }
  return out;
}

const map = (x: T4, f: (v: number, c: number) => number): T4 => ({ shape: x.shape, data: x.data.map((v, i) => f(v, i % x.shape[3])) });

function concatChannels(a: T4, b: T4): T4 {
  const [n, h, w, ca] = a.shape;
  const cb = b.shape[3];
  const out: T4 = { shape: [n, h, w, ca + cb], data: new Float32Array(n * h * w * (ca + cb)) };
  for (let p = 0; p < n * h * w; p++) {
    out.data.set(a.data.subarray(p * ca, (p + 1) * ca), p * (ca + cb));
    out.data.set(b.data.subarray(p * cb, (p + 1) * cb), p * (ca + cb) + ca);
  }
  return out;
}

function randn(rng: Random, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

test('an exported Xception-style graph runs in onnxruntime and matches a plain NHWC computation', async () => {
  const rng = new Random(42);
  const N = 2,
    H = 8,
    W = 8,
    C = 3;
  // Keras-layout weights.
  const k1Shape = [3, 3, C, 8];
  const k1 = randn(rng, 3 * 3 * C * 8, 0.3);
  const gamma = Float32Array.from({ length: 8 }, () => 0.5 + rng.next());
  const beta = randn(rng, 8, 0.1);
  const mean = randn(rng, 8, 0.1);
  const variance = Float32Array.from({ length: 8 }, () => 0.5 + rng.next());
  const dwShape = [3, 3, 8, 2]; // depth multiplier 2 exercises the output-channel order
  const dw = randn(rng, 3 * 3 * 8 * 2, 0.3);
  const pwShape = [1, 1, 16, 16];
  const pw = randn(rng, 16 * 16, 0.3);
  const resShape = [1, 1, 8, 16];
  const res = randn(rng, 8 * 16, 0.3);
  const dense = randn(rng, 32 * 5, 0.3);
  const bias = randn(rng, 5, 0.1);

  const g = new OnnxGraphBuilder('xception_like');
  g.addInput('input', ['batch', H, W, C]);
  g.addOutput('probs', ['batch', 5]);
  g.addOutput('logits', ['batch', 5]);
  g.addOutput('features', ['batch', 32, 2, 2]);
  const c1 = kerasConvKernelToOnnx(k1, k1Shape);
  g.addInitializer('block1_conv1/kernel', c1.shape, c1.data);
  for (const [n, v] of [
    ['gamma', gamma],
    ['beta', beta],
    ['mean', mean],
    ['var', variance],
  ] as const)
    g.addInitializer(`bn/${n}`, [8], v);
  const d = kerasDepthwiseKernelToOnnx(dw, dwShape);
  g.addInitializer('sep/depthwise', d.shape, d.data);
  const p = kerasConvKernelToOnnx(pw, pwShape);
  g.addInitializer('sep/pointwise', p.shape, p.data);
  const r = kerasConvKernelToOnnx(res, resShape);
  g.addInitializer('residual/kernel', r.shape, r.data);
  g.addInitializer('predictions/kernel', [32, 5], dense);
  g.addInitializer('predictions/bias', [5], bias);

  g.addNode('Transpose', ['input'], ['nchw'], { perm: [0, 3, 1, 2] });
  g.addNode('Conv', ['nchw', 'block1_conv1/kernel'], ['c1'], {
    kernel_shape: [3, 3],
    strides: [2, 2],
    pads: tfSamePads([H, W], [3, 3], [2, 2]),
  });
  g.addNode('BatchNormalization', ['c1', 'bn/gamma', 'bn/beta', 'bn/mean', 'bn/var'], ['b1'], { epsilon: attr.float(1e-3) });
  g.addNode('Relu', ['b1'], ['r1']);
  g.addNode('Conv', ['r1', 'sep/depthwise'], ['dw'], { group: d.group, kernel_shape: [3, 3], pads: tfSamePads([4, 4], [3, 3], [1, 1]) });
  g.addNode('Conv', ['dw', 'sep/pointwise'], ['pw'], { kernel_shape: [1, 1] });
  g.addNode('MaxPool', ['pw'], ['pool'], { kernel_shape: [3, 3], strides: [2, 2], pads: tfSamePads([4, 4], [3, 3], [2, 2]) });
  g.addNode('Conv', ['r1', 'residual/kernel'], ['res'], { kernel_shape: [1, 1], strides: [2, 2] });
  g.addNode('Add', ['pool', 'res'], ['sum']);
  g.addNode('Concat', ['sum', 'pool'], ['features'], { axis: 1 });
  g.addNode('GlobalAveragePool', ['features'], ['gap']);
  g.addNode('Flatten', ['gap'], ['flat'], { axis: 1 });
  g.addNode('Gemm', ['flat', 'predictions/kernel', 'predictions/bias'], ['logits'], {
    alpha: attr.float(1),
    beta: attr.float(1),
    transB: 0,
  });
  g.addNode('Softmax', ['logits'], ['probs'], { axis: -1 });
  assert.deepEqual(tfSamePads([H, W], [3, 3], [2, 2]), [0, 0, 1, 1], "TF 'same' with stride 2 on an even size pads only at the end");

  const session = await ort.InferenceSession.create(g.toBytes());
  const input = randn(rng, N * H * W * C);
  const result = await session.run({ input: new ort.Tensor('float32', input, [N, H, W, C]) });

  // Reference.
  const x: T4 = { shape: [N, H, W, C], data: input };
  const a1 = map(conv2d(x, k1, k1Shape, 2, 'same'), (v, c) =>
    Math.max(0, ((v - mean[c]!) / Math.sqrt(variance[c]! + 1e-3)) * gamma[c]! + beta[c]!),
  );
  const sep = conv2d(depthwise(a1, dw, dwShape), pw, pwShape, 1, 'same');
  const pool = maxPoolSame(sep, 3, 2);
  const resid = conv2d(a1, res, resShape, 2, 'valid');
  const sum: T4 = { shape: pool.shape, data: pool.data.map((v, i) => v + resid.data[i]!) };
  const feats = concatChannels(sum, pool);
  const [, fh, fw, fc] = feats.shape;
  const logits = new Float32Array(N * 5);
  const probs = new Float32Array(N * 5);
  for (let b = 0; b < N; b++) {
    const avg = new Float64Array(fc);
    for (let p2 = 0; p2 < fh * fw; p2++) for (let ch = 0; ch < fc; ch++) avg[ch] += feats.data[(b * fh * fw + p2) * fc + ch]! / (fh * fw);
    for (let o = 0; o < 5; o++) {
      let s = bias[o]!;
      for (let i = 0; i < fc; i++) s += avg[i]! * dense[i * 5 + o]!;
      logits[b * 5 + o] = s;
    }
    const mx = Math.max(...logits.subarray(b * 5, b * 5 + 5));
    let z = 0;
    for (let o = 0; o < 5; o++) z += Math.exp(logits[b * 5 + o]! - mx);
    for (let o = 0; o < 5; o++) probs[b * 5 + o] = Math.exp(logits[b * 5 + o]! - mx) / z;
  }
  // NCHW features from onnxruntime vs NHWC reference.
  const featNchw = new Float32Array(feats.data.length);
  for (let b = 0; b < N; b++)
    for (let y = 0; y < fh; y++)
      for (let x2 = 0; x2 < fw; x2++)
        for (let ch = 0; ch < fc; ch++) {
          featNchw[((b * fc + ch) * fh + y) * fw + x2] = feats.data[((b * fh + y) * fw + x2) * fc + ch]!;
        }
  assert.deepEqual(result.features!.dims, [N, 32, 2, 2]);
  assert.ok(
    maxAbsDiff(result.features!.data as Float32Array, featNchw) <= 1e-4,
    `features differ by ${maxAbsDiff(result.features!.data as Float32Array, featNchw)}`,
  );
  assert.ok(maxAbsDiff(result.logits!.data as Float32Array, logits) <= 1e-4, 'logits');
  assert.ok(maxAbsDiff(result.probs!.data as Float32Array, probs) <= 1e-4, 'probs');
  // The batch dimension is dynamic: one image runs through the same model.
  const one = await session.run({ input: new ort.Tensor('float32', input.slice(0, H * W * C), [1, H, W, C]) });
  assert.ok(maxAbsDiff(one.probs!.data as Float32Array, probs.subarray(0, 5)) <= 1e-4);
});

test('int64 initializers and negative int attributes encode correctly (Reshape, Softmax axis -1)', async () => {
  const g = new OnnxGraphBuilder('reshape', { opset: 17 });
  g.addInput('x', ['n', 2, 3]);
  g.addOutput('y', ['n', 6]);
  g.addInt64Initializer('shape', [2], [-1, 6]);
  g.addNode('Reshape', ['x', 'shape'], ['flat']);
  g.addNode('Softmax', ['flat'], ['y'], { axis: -1 });
  const session = await ort.InferenceSession.create(g.toBytes());
  const x = Float32Array.from({ length: 12 }, (_, i) => i / 4);
  const y = (await session.run({ x: new ort.Tensor('float32', x, [2, 2, 3]) })).y!;
  assert.deepEqual(y.dims, [2, 6]);
  const row = Array.from(x.subarray(0, 6), (v) => Math.exp(v));
  const z = row.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs((y.data as Float32Array)[5]! - row[5]! / z) < 1e-6);
});

test('the builder rejects undefined inputs, reused names and missing outputs', () => {
  const g = new OnnxGraphBuilder();
  g.addInput('x', [1, 3]);
  assert.throws(() => g.addNode('Relu', ['nope'], ['y']), OnnxGraphError);
  g.addNode('Relu', ['x'], ['y']);
  assert.throws(() => g.addNode('Relu', ['x'], ['y']), /already defined/);
  assert.throws(() => g.addInitializer('w', [2, 2], new Float32Array(3)), /4 values\) but 3/);
  assert.throws(() => g.addInput('z', [-1]), OnnxGraphError);
  g.addOutput('missing', [1, 3]);
  assert.throws(() => g.toBytes(), /"missing" is produced by no node/);
});

test('protobuf varints: small, multi-byte and negative int64 (ten bytes)', () => {
  assert.deepEqual([...new ProtoWriter().int(1, 1).finish()], [0x08, 0x01]);
  assert.deepEqual([...new ProtoWriter().int(1, 300).finish()], [0x08, 0xac, 0x02]);
  assert.deepEqual([...new ProtoWriter().int(1, -1).finish()], [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.deepEqual([...new ProtoWriter().string(2, 'hi').finish()], [0x12, 0x02, 0x68, 0x69]);
  assert.deepEqual([...new ProtoWriter().float(2, 1).finish()], [0x15, 0x00, 0x00, 0x80, 0x3f]);
});

test('Keras kernel layout conversions follow the documented index rules', () => {
  const k = Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => i);
  const c = kerasConvKernelToOnnx(k, [2, 3, 4, 5]);
  assert.deepEqual(c.shape, [5, 4, 2, 3]);
  // W[o,i,y,x] = K[y,x,i,o] at o=3, i=2, y=1, x=2
  assert.equal(c.data[((3 * 4 + 2) * 2 + 1) * 3 + 2], k[((1 * 3 + 2) * 4 + 2) * 5 + 3]);
  const dwk = Float32Array.from({ length: 3 * 3 * 4 * 2 }, (_, i) => i);
  const dw = kerasDepthwiseKernelToOnnx(dwk, [3, 3, 4, 2]);
  assert.deepEqual([dw.shape, dw.group], [[8, 1, 3, 3], 4]);
  // W[c·m+j,0,y,x] = K[y,x,c,j] at c=3, j=1, y=2, x=0
  assert.equal(dw.data[((3 * 2 + 1) * 3 + 2) * 3 + 0], dwk[((2 * 3 + 0) * 4 + 3) * 2 + 1]);
  assert.deepEqual(tfSamePads([299, 299], [3, 3], [2, 2]), [1, 1, 1, 1]); // odd total: even split
  assert.deepEqual(tfSamePads([147, 147], [3, 3], [2, 2]), [1, 1, 1, 1]);
  assert.deepEqual(tfSamePads([74, 74], [3, 3], [2, 2]), [0, 0, 1, 1]); // block3 pool: 74 -> 37
});
