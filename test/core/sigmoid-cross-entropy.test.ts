/**
 * Binary cross-entropy of a sigmoid head (multi-label training): the loss against its textbook
 * form, its gradient against central finite differences, on every backend present (reference in
 * float64 and float32, native in float32), through the op and its autograd rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DType } from '../../src/core/backend.js';
import { backward } from '../../src/core/autograd.js';
import { tensor } from '../../src/core/creation.js';
import { scale as scaleOp } from '../../src/core/ops/elementwise.js';
import { sigmoidCrossEntropy } from '../../src/core/ops/loss.js';
import { Random } from '../../src/core/random.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { randomArray } from '../helpers/arrays.js';
import { assertGradient } from '../helpers/gradcheck.js';

const ROWS = 3;
const CLASSES = 4;
const TARGETS = [1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0.25];

/** −t·log σ(x) − (1 − t)·log(1 − σ(x)), averaged: the definition, in float64. */
function textbookLoss(logits: ArrayLike<number>, targets: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < logits.length; i++) {
    const p = 1 / (1 + Math.exp(-logits[i]!));
    s -= targets[i]! * Math.log(p) + (1 - targets[i]!) * Math.log(1 - p);
  }
  return s / logits.length;
}

/** The op's loss and d(loss)/d(logits) through autograd. */
function lossAndGrad(be: Backend, dtype: DType, logits: ArrayLike<number>, scale = 1): { loss: number; grad: Float64Array } {
  const x = tensor(logits, [ROWS, CLASSES], { backend: be, dtype });
  x.requiresGrad = true;
  const l = sigmoidCrossEntropy(x, TARGETS);
  const loss = l.item();
  backward(scale === 1 ? l : scaleOp(l, scale));
  return { loss, grad: Float64Array.from(x.grad!.data()) };
}

const native = loadNativeBackend();
const cases: { name: string; be: Backend | null; dtype: DType; tol: { rtol: number; atol: number }; eps: number }[] = [
  { name: 'reference float64', be: referenceBackend, dtype: 'float64', tol: { rtol: 1e-6, atol: 3e-8 }, eps: 1e-6 },
  { name: 'reference float32', be: referenceBackend, dtype: 'float32', tol: { rtol: 2e-2, atol: 2e-4 }, eps: 1e-2 },
  { name: 'native float32', be: native, dtype: 'float32', tol: { rtol: 2e-2, atol: 2e-4 }, eps: 1e-2 },
];

for (const c of cases) {
  test(`sigmoidCrossEntropy on ${c.name}: loss equals the textbook BCE, gradient equals finite differences`, (t) => {
    if (!c.be) {
      t.skip(nativeBackendStatus().reason);
      return;
    }
    const be = c.be;
    const logits = Float64Array.from(randomArray(new Random(7), ROWS * CLASSES, -4, 4));
    const x32 = c.dtype === 'float32' ? Float64Array.from(Float32Array.from(logits)) : logits;
    const { loss, grad } = lossAndGrad(be, c.dtype, x32);
    assert.ok(Math.abs(loss - textbookLoss(x32, TARGETS)) < (c.dtype === 'float64' ? 1e-12 : 1e-5), `loss ${loss}`);
    // Finite differences of the float64 definition: the analytic gradient of any backend must match it.
    const probe = Float64Array.from(x32);
    assertGradient(grad, (v) => textbookLoss(v, TARGETS), probe, `${c.name} dlogits`, c.tol);
    // The backward's scale multiplies the gradient.
    const scaled = lossAndGrad(be, c.dtype, x32, 2.5).grad;
    assertGradient(scaled, (v) => 2.5 * textbookLoss(v, TARGETS), probe, `${c.name} scaled dlogits`, c.tol);
  });

  test(`sigmoidCrossEntropy on ${c.name} is finite for huge logits (stable form)`, (t) => {
    if (!c.be) {
      t.skip(nativeBackendStatus().reason);
      return;
    }
    const logits = [1000, -1000, 80, -80, 0, 0, 0, 0, 0, 0, 0, 0];
    const { loss, grad } = lossAndGrad(c.be, c.dtype, logits);
    // Rows: 1000 with target 1 and −1000 with target 0 cost nothing; 80 with target 0 costs 80.
    const expected = (80 + 80 + 8 * Math.log(2)) / 12;
    assert.ok(Number.isFinite(loss) && Math.abs(loss - expected) < 1e-4, `loss ${loss} vs ${expected}`);
    for (const g of grad) assert.ok(Number.isFinite(g));
  });
}

test('sigmoidCrossEntropy rejects targets outside [0, 1] and a wrong count before any kernel runs', () => {
  const x = tensor([0, 0], [1, 2], { backend: referenceBackend });
  assert.throws(() => sigmoidCrossEntropy(x, [0, 2]), /target 2 at index 1 is outside \[0, 1\]/);
  assert.throws(() => sigmoidCrossEntropy(x, [0, Number.NaN]), /outside \[0, 1\]/);
  assert.throws(() => sigmoidCrossEntropy(x, [1]), /1 targets for 1 rows × 2 classes/);
});
