/**
 * The whole network through both backends: Keras Xception at its minimum input (71×71, batch 2),
 * built twice from the same seed, one forward (training mode) and backward pass each.
 *
 * Forward: loss and logits must agree to 1e-4 like single kernels (measured: ~1e-6).
 * Backward is not a smooth function of rounding: wherever a ReLU input sits within rounding of 0,
 * float32 differences between the backends flip the ReLU mask and change that element's gradient
 * by its full size; everything below inherits it. (The reference against itself, with inputs
 * perturbed by 1e-7, moves some block2 gradients by 15% the same way.) So gradients are compared
 * in L2 over all weights (measured 5e-3) and per tensor (worst measured 1e-2), which a wrong
 * layout or a missing gradient (error ~1) fails by far.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, ops, Random, tensor, tidy, xception } from '../../src/index.js';
import type { Backend } from '../../src/core/backend.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';

function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let err = 0,
    scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return scale === 0 ? err : err / scale;
}

function run(backend: Backend) {
  const m = xception({ backend, inputShape: [71, 71, 3], classes: 7, seed: 5 });
  const rng = new Random(3);
  const x = tensor(
    Float32Array.from({ length: 2 * 71 * 71 * 3 }, () => rng.uniform(-1, 1)),
    [2, 71, 71, 3],
    { backend },
  );
  let logits: Float32Array | Float64Array = new Float32Array();
  const loss = tidy(() => {
    const y = m.forward(x, { training: true, logits: true });
    logits = y.data();
    const l = ops.softmaxCrossEntropy(y, [1, 4]);
    backward(l);
    return l.item();
  });
  const grads = new Map(m.trainableWeights.map((w) => [w.name, w.value.grad!.data()]));
  m.dispose();
  return { loss, logits, grads };
}

test('full Xception at 71×71, forward and backward: onednn agrees with the reference', (t) => {
  const native = loadNativeBackend();
  if (!native) {
    t.skip(nativeBackendStatus().reason);
    return;
  }
  const n = run(native);
  const r = run(referenceBackend);
  assert.ok(relError([n.loss], [r.loss]) <= 1e-4, `loss ${n.loss} vs ${r.loss}`);
  const logitsError = relError(n.logits, r.logits);
  assert.ok(logitsError <= 1e-4, `logits: relative error ${logitsError.toExponential(2)}`);
  assert.equal(n.grads.size, r.grads.size);
  let diff2 = 0,
    ref2 = 0,
    worst = 0,
    worstName = '';
  for (const [name, g] of r.grads) {
    const h = n.grads.get(name)!;
    let d = 0,
      q = 0;
    for (let i = 0; i < g.length; i++) {
      d += (h[i]! - g[i]!) ** 2;
      q += g[i]! ** 2;
    }
    diff2 += d;
    ref2 += q;
    const e = Math.sqrt(d / q);
    if (!(e <= worst)) [worst, worstName] = [e, name];
  }
  const total = Math.sqrt(diff2 / ref2);
  assert.ok(total <= 2e-2, `all gradients: L2 relative error ${total.toExponential(2)}`);
  assert.ok(worst <= 0.1, `gradient of ${worstName}: L2 relative error ${worst.toExponential(2)}`);
  t.diagnostic(
    `loss ${n.loss}; logits error ${logitsError.toExponential(2)}; gradients L2 ${total.toExponential(2)}, ` +
      `worst ${worstName} ${worst.toExponential(2)}`,
  );
});
