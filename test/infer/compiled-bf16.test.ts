/**
 * precision: 'bf16' — activations and weights in bfloat16 inside the plan (8 bits of mantissa),
 * float32 at its input and output. It must agree with fp32 to bf16's precision (not to 1e-4), keep
 * the top class, and say what it ran.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileInference, noGrad, xception } from '../../src/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { errors, randomImages, randomizeStatistics } from './helpers.js';

const native = loadNativeBackend();
const skip = native ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;

test('a bf16 plan agrees with the fp32 plan to bfloat16 precision', { skip }, () => {
  const m = noGrad(() =>
    xception({ backend: native!, stem: 'small', inputShape: [24, 24, 3], classes: 8, width: 0.25, middleBlocks: 2, seed: 6 }),
  );
  randomizeStatistics(m);
  const x = randomImages(native!, 4, m.inputShape, 2);
  const fp32 = compileInference(m, { batch: 4, logits: true });
  const bf16 = compileInference(m, { batch: 4, logits: true, precision: 'bf16' });
  assert.equal(bf16.precision, 'bf16');
  assert.ok(
    bf16.info().steps.some((s) => /bf16|avx512_core/.test(s)),
    bf16.info().steps.join('\n'),
  );
  assert.ok(bf16.info().weightBytes < fp32.info().weightBytes * 0.6, 'weights are stored in 2 bytes (biases stay 4)');
  const a = fp32.run(x).data();
  const b = bf16.run(x).data();
  const e = errors(b, a);
  // bfloat16 rounds to 2^-8 relative per value; through ~40 layers errors of a few 1e-2 remain.
  assert.ok(e.rel < 0.1, `bf16 vs fp32: rel ${e.rel.toExponential(2)}`);
  assert.ok(e.rel > 1e-6, 'bf16 really computes in lower precision');
  fp32.dispose();
  bf16.dispose();
  x.dispose();
  m.dispose();
});
