import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backward,
  keep,
  noGrad,
  ops,
  Random,
  tensor,
  tidy,
  type Tensor,
  DisposedError,
  ShapeError,
  BackendError,
} from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';

const backend = referenceBackend;
const f64 = { backend, dtype: 'float64' as const };

function randn(rng: Random, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(
    Float64Array.from({ length: n }, () => rng.normal()),
    shape,
    f64,
  );
}

/**
 * A small network through the public ops, in float64: conv (strided, same) → BN (training) →
 * ELU → depthwise → ReLU → max pool → add → grouped conv → global avg pool → dense →
 * cross-entropy. Autograd's gradients must match central differences of the whole chain.
 */
test('autograd through a composite network matches central finite differences (float64)', () => {
  const rng = new Random(11);
  const x = randn(rng, [2, 6, 6, 2]);
  const w1 = randn(rng, [3, 3, 2, 4]);
  const gamma = randn(rng, [4]);
  const beta = randn(rng, [4]);
  const dw = randn(rng, [3, 3, 4, 1]);
  const w2 = randn(rng, [1, 1, 2, 4]);
  const k = randn(rng, [4, 3]);
  const bias = randn(rng, [3]);
  const mm = tensor(new Float64Array(4), [4], f64);
  const mv = tensor(new Float64Array(4).fill(1), [4], f64);
  const params = [x, w1, gamma, beta, dw, w2, k, bias];
  const labels = [2, 0];
  const lossOf = () => {
    const a = ops.conv2d(x, w1, { strides: 2, padding: 'same' });
    const bn = ops.batchNormTrain(a, gamma, beta, mm, mv, 0.99, 1e-3).y;
    const e = ops.elu(bn);
    const d = ops.relu(ops.depthwiseConv2d(e, dw, { padding: 'same' }));
    const p = ops.maxPool2d(d, { poolSize: 2, strides: 1, padding: 'valid' });
    const s = ops.add(p, ops.scale(p, 0.5));
    const g = ops.conv2d(s, w2, { groups: 2 });
    const pooled = ops.globalAvgPool(g);
    const logits = ops.dense(pooled, k, bias);
    return ops.softmaxCrossEntropy(logits, labels, { labelSmoothing: 0.1 });
  };
  for (const p of params) p.requiresGrad = true;
  const loss = lossOf();
  backward(loss);
  const eps = 1e-6;
  for (const [pi, p] of params.entries()) {
    const analytic = p.grad!.dataRaw();
    const values = p.dataRaw() as Float64Array;
    const h = p.handle as Float64Array; // reference handles are the arrays themselves
    for (let i = 0; i < values.length; i++) {
      const orig = h[i]!;
      h[i] = orig + eps;
      const up = noGrad(() => lossOf().item());
      h[i] = orig - eps;
      const down = noGrad(() => lossOf().item());
      h[i] = orig;
      const numeric = (up - down) / (2 * eps);
      assert.ok(
        Math.abs(numeric - analytic[i]!) <= 1e-6 + 1e-5 * Math.abs(numeric),
        `param ${pi}[${i}]: numeric ${numeric} vs autograd ${analytic[i]}`,
      );
    }
  }
});

test('gradients accumulate over uses and over backward calls; noGrad records nothing', () => {
  const a = tensor([1, 2, 3], [3], f64);
  a.requiresGrad = true;
  const y = ops.add(ops.mul(a, a), a); // y = a² + a, dy/da = 2a + 1
  backward(y, { grad: tensor([1, 1, 1], [3], f64) });
  assert.deepEqual([...a.grad!.dataRaw()], [3, 5, 7]);
  const y2 = ops.scale(a, 2);
  backward(y2, { grad: tensor([1, 1, 1], [3], f64) });
  assert.deepEqual([...a.grad!.dataRaw()], [5, 7, 9]);
  const z = noGrad(() => ops.mul(a, a));
  assert.equal(z.node, null);
});

test('tidy frees intermediates but keeps results, and disposed tensors give typed errors', () => {
  const a = tensor([1, 2, 3, 4], [4], { backend });
  let inner: Tensor | null = null;
  const out = tidy(() => {
    inner = ops.scale(a, 2);
    return ops.add(inner, a);
  });
  assert.ok(inner!.isDisposed);
  assert.ok(!out.isDisposed);
  assert.deepEqual([...out.data()], [3, 6, 9, 12]);
  out.dispose();
  assert.throws(() => out.data(), DisposedError);
  assert.throws(() => ops.relu(out), DisposedError);
  // A reshape shares memory: the data lives until both views are gone.
  const b = tensor([1, 2, 3, 4], [2, 2], { backend });
  const r = b.reshape([4]);
  b.dispose();
  assert.deepEqual([...r.data()], [1, 2, 3, 4]);
  assert.throws(() => b.reshape([3]), DisposedError);
  assert.throws(() => r.reshape([3]), ShapeError);
});

test('a tidy whose function throws disposes what it created (but kept tensors) and rethrows', () => {
  const a = tensor([1, 2, 3, 4], [4], { backend });
  const made: Tensor[] = [];
  let saved: Tensor | null = null;
  const failure = new Error('out of memory, say');
  assert.throws(
    () =>
      tidy(() => {
        made.push(ops.scale(a, 2), ops.relu(a));
        saved = keep(ops.add(a, a));
        tidy(() => made.push(ops.scale(a, 3)));
        throw failure;
      }),
    (e) => e === failure,
  );
  assert.ok(made.every((t) => t.isDisposed));
  assert.ok(!a.isDisposed, 'a tensor from outside the scope stays');
  assert.deepEqual([...saved!.data()], [2, 4, 6, 8]);
  // The scope stack is intact: a later tidy still frees its intermediates.
  let inner: Tensor | null = null;
  tidy(() => {
    inner = ops.scale(a, 2);
  });
  assert.ok(inner!.isDisposed);
});

test('ops validate shapes before any kernel runs', () => {
  const x = tensor(new Float32Array(2 * 5 * 5 * 4), [2, 5, 5, 4], { backend });
  assert.throws(
    () => ops.conv2d(x, tensor(new Float32Array(9 * 3 * 8), [3, 3, 3, 8], { backend })),
    /expects 3 input channels with 1 group\(s\), input has 4/,
  );
  assert.throws(
    () => ops.conv2d(x, tensor(new Float32Array(9 * 2 * 6), [3, 3, 2, 6], { backend }), { groups: 3 }),
    /groups 3 does not divide the 4 input channels/,
  );
  assert.throws(() => ops.conv2d(x, tensor(new Float32Array(49 * 4), [7, 7, 4, 1], { backend })), /smaller than the 7-wide window/);
  assert.throws(
    () => ops.conv2d(x, tensor(new Float32Array(9 * 4), [3, 3, 4, 1], { backend }), { strides: 0 }),
    /strides must be positive integers/,
  );
  assert.throws(() => ops.maxPool2d(tensor(new Float32Array(4), [4], { backend })), ShapeError);
  assert.throws(() => ops.add(x, tensor(new Float32Array(4), [4], { backend })), /shapes differ/);
  const logits = tensor(new Float32Array(6), [2, 3], { backend });
  assert.throws(() => ops.softmaxCrossEntropy(logits, [0, 3]), /label 3 at index 1 is outside 0…2/);
  assert.throws(() => ops.softmaxCrossEntropy(logits, [0]), /1 labels for a batch of 2/);
  assert.throws(() => ops.add(x, tensor(new Float64Array(200), [2, 5, 5, 4], f64)), ShapeError);
  const other = Object.create(backend, { name: { value: 'other' } });
  assert.throws(() => ops.add(x, tensor(new Float32Array(200), [2, 5, 5, 4], { backend: other })), BackendError);
});

test('same padding puts the odd pixel at the end (TensorFlow), e.g. 74 → 37 for a 3×3/2 pool', () => {
  const p = ops.resolvePool2D([1, 74, 74, 1], { poolSize: 3, strides: 2, padding: 'same' });
  assert.equal(p.outHeight, 37);
  assert.equal(p.padTop, 0);
  assert.equal(p.padBottom, 1);
  const c = ops.resolveConv2D([1, 6, 6, 1], [3, 3, 1, 1], { strides: 2, padding: 'same' });
  assert.deepEqual([c.outHeight, c.padTop, c.padBottom], [3, 0, 1]);
  const c5 = ops.resolveConv2D([1, 5, 5, 1], [3, 3, 1, 1], { strides: 1, padding: 'same', dilations: 2 });
  assert.deepEqual([c5.outHeight, c5.padTop, c5.padBottom], [5, 2, 2]);
});

test('backward with release frees intermediates as it goes, with the same gradients', () => {
  const run = (release: boolean) => {
    const rng = new Random(5);
    const x = randn(rng, [2, 5, 5, 3]);
    const w = randn(rng, [3, 3, 3, 4]);
    const gamma = randn(rng, [4]),
      beta = randn(rng, [4]);
    const mm = tensor(new Float64Array(4), [4], f64),
      mv = tensor(new Float64Array(4).fill(1), [4], f64);
    const k = randn(rng, [4, 2]);
    w.requiresGrad = gamma.requiresGrad = beta.requiresGrad = k.requiresGrad = true;
    const conv = ops.conv2d(x, w, { padding: 'same' });
    const bn = ops.batchNormTrain(conv, gamma, beta, mm, mv, 0.9, 1e-3, { relu: true }).y;
    const twice = ops.add(bn, ops.scale(bn, 2)); // bn has two consumers
    const flat = ops.globalAvgPool(twice);
    const kept = ops.dense(flat, k);
    keep(kept);
    const loss = ops.softmaxCrossEntropy(kept, [1, 0]);
    backward(loss, { release });
    const grads = [w, gamma, beta, k].map((p) => [...p.grad!.dataRaw()]);
    return { grads, intermediates: [conv, bn, twice, flat], kept, loss, leaves: [x, w, gamma, beta, k] };
  };
  const plain = run(false),
    released = run(true);
  assert.deepEqual(released.grads, plain.grads);
  assert.ok(plain.intermediates.every((t) => !t.isDisposed));
  assert.ok(
    released.intermediates.every((t) => t.isDisposed),
    'intermediates are released',
  );
  assert.ok(!released.kept.isDisposed && !released.loss.isDisposed, 'kept tensors and the root stay');
  assert.ok(
    released.leaves.every((t) => !t.isDisposed),
    'leaves stay',
  );
  assert.throws(
    () => backward(ops.scale(tensor([1], [1], f64), 1), { release: true, retainGraph: true }),
    /release and retainGraph exclude each other/,
  );
});
