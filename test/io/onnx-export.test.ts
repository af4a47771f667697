import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { inceptionV3, Model, noGrad, Random, tensor, xception } from '../../src/index.js';
import { modelToOnnx } from '../../src/io/onnx-export.js';

/** Runs the model and its ONNX export on the same NHWC batch; returns the max abs difference. */
async function compare(model: Model, batch: number, seed: number): Promise<{ diff: number; scale: number }> {
  const rng = new Random(seed);
  // Give BN non-trivial statistics so the export of moving mean/variance is actually checked.
  for (const v of model.weights) {
    if (v.weightName === 'moving_mean' || v.weightName === 'moving_variance' || v.weightName === 'beta' || v.weightName === 'gamma') {
      const d = v.value.data() as Float32Array;
      const fresh = Float32Array.from(d, () => (v.weightName === 'moving_variance' || v.weightName === 'gamma' ? 0.5 + rng.next() : 0.2 * rng.normal()));
      v.assign(tensor(fresh, [...v.shape]));
    }
  }
  const shape = [batch, ...model.inputShape];
  const input = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(-1, 1));
  const expected = noGrad(() => model.forward(tensor(input, shape)).data() as Float32Array);
  const session = await ort.InferenceSession.create(modelToOnnx(model));
  const got = (await session.run({ input: new ort.Tensor('float32', input, shape) })).output!;
  assert.deepEqual(got.dims, [batch, ...model.outputShape]);
  const data = got.data as Float32Array;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < data.length; i++) {
    diff = Math.max(diff, Math.abs(data[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return { diff, scale };
}

test('Xception exported to ONNX matches the model (logits and feature maps)', { timeout: 120_000 }, async () => {
  const top = await compare(xception({ inputShape: [71, 71, 3], classes: 10, width: 0.125, classifierActivation: 'linear', seed: 1 }), 2, 1);
  assert.ok(top.diff <= 1e-4 * Math.max(1, top.scale), `logits differ by ${top.diff} (scale ${top.scale})`);
  const features = await compare(xception({ inputShape: [75, 80, 3], includeTop: false, width: 0.125, seed: 2 }), 1, 2);
  assert.ok(features.diff <= 1e-4 * Math.max(1, features.scale), `feature maps differ by ${features.diff} (scale ${features.scale})`);
});

test('the paper\'s ablation variants export too (pointwise-first, grouped segments, ReLU/ELU in between)', { timeout: 120_000 }, async () => {
  for (const [i, opts] of [
    { order: 'pointwise-first' as const, intermediateActivation: 'relu' as const },
    { segments: 2 as const, intermediateActivation: 'elu' as const, residual: false, width: 0.25 },
  ].entries()) {
    const m = xception({ inputShape: [71, 71, 3], classes: 5, width: 0.125, classifierActivation: 'linear', middleBlocks: 1, seed: 5 + i, ...opts });
    const r = await compare(m, 1, 7 + i);
    assert.ok(r.diff <= 1e-4 * Math.max(1, r.scale), `variant ${i}: differ by ${r.diff} (scale ${r.scale})`);
  }
});

test('Inception V3 (average pooling, concatenation, BN without scale) exports and matches', { timeout: 180_000 }, async () => {
  const r = await compare(inceptionV3({ inputShape: [75, 75, 3], classes: 6, classifierActivation: 'linear', seed: 3 } as Parameters<typeof inceptionV3>[0]), 1, 3);
  assert.ok(r.diff <= 1e-4 * Math.max(1, r.scale), `differ by ${r.diff} (scale ${r.scale})`);
});
