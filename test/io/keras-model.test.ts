/**
 * The file formats against the real Xception model (from src/models): model weights → Keras H5
 * (Keras names) → read back → matched onto the model in Keras's layer order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { xception } from '../../src/index.js';
import { encodeKerasH5, type KerasLayer, readKerasH5 } from '../../src/io/keras-h5.js';
import { matchKerasWeights } from '../../src/io/keras-match.js';
import { WeightFileError } from '../../src/io/errors.js';

test('Xception weights survive a Keras H5 round trip and load back in Keras layer order', async () => {
  // Narrow and small, but with every layer of the full network (81 with weights).
  const model = xception({ inputShape: [71, 71, 3], classes: 10, width: 0.125, seed: 3 });
  const fileLayers: KerasLayer[] = model.layers.map((l) => ({
    name: l.name,
    weights: l.weights.map((v) => ({ name: `${l.name}/${v.weightName}:0`, shape: [...v.shape], data: v.value.data() as Float32Array })),
  }));
  const spec = model.layers.map((l) => ({ name: l.name, weights: l.weights.map((v) => ({ name: v.weightName, shape: [...v.shape] })) }));
  assert.equal(spec.filter((l) => l.weights.length > 0).length, 81);

  const back = await readKerasH5(await encodeKerasH5(fileLayers), 'xception.h5');
  const assignment = matchKerasWeights(spec, back, 'order', 'xception.h5');
  assert.equal(assignment.length, model.weights.length);
  for (const a of assignment) {
    const v = model.layers.find((l) => l.name === a.modelLayer)!.getWeight(a.modelWeight);
    assert.equal(a.fileLayer, a.modelLayer);
    assert.deepEqual(a.data, v.value.data(), `${a.modelLayer}/${a.modelWeight}`);
  }

  // The official files name the residual layers conv2d_1…, batch_normalization_1…; a model built
  // later in the same Keras session would number them differently. Order-matching does not care.
  const renamed = back.map((l) => (/^(conv2d|batch_normalization)_\d+$/.test(l.name) ? { ...l, name: `${l.name}_other` } : l));
  assert.equal(matchKerasWeights(spec, renamed, 'order').length, model.weights.length);
  assert.throws(() => matchKerasWeights(spec, renamed, 'name'), WeightFileError);

  // A model with a different head does not half-load: the error names the layer and both shapes.
  const other = xception({ inputShape: [71, 71, 3], classes: 7, width: 0.125, seed: 3 });
  const otherSpec = other.layers.map((l) => ({
    name: l.name,
    weights: l.weights.map((v) => ({ name: v.weightName, shape: [...v.shape] })),
  }));
  assert.throws(
    () => matchKerasWeights(otherSpec, back, 'order', 'xception.h5'),
    /xception\.h5: .*"predictions" weight "kernel" has shape \[\d+, 7\] but file layer "predictions" weight "predictions\/kernel:0" has shape \[\d+, 10\]/,
  );
});

test('save a model as Keras H5, load it into a fresh model: same weights, same outputs; a misfit changes nothing', async () => {
  const { loadKerasH5Weights, saveKerasH5Weights } = await import('../../src/io/keras-model.js');
  const { noGrad, tensor } = await import('../../src/index.js');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const opts = { inputShape: [71, 71, 3] as [number, number, number], classes: 4, width: 0.125 };
  const a = xception({ ...opts, seed: 1 });
  const b = xception({ ...opts, seed: 2 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-keras-'));
  try {
    const file = path.join(dir, 'a.h5');
    await saveKerasH5Weights(a, file);
    const assigned = await loadKerasH5Weights(b, file);
    assert.equal(assigned.length, a.weights.length);
    a.weights.forEach((v, i) => assert.deepEqual(b.weights[i]!.value.data(), v.value.data(), v.name));
    const x = tensor(
      Float32Array.from({ length: 71 * 71 * 3 }, (_, i) => Math.sin(i)),
      [1, 71, 71, 3],
    );
    assert.deepEqual(
      noGrad(() => b.forward(x).data()),
      noGrad(() => a.forward(x).data()),
    );

    const c = xception({ ...opts, classes: 3, seed: 3 });
    const before = c.weights.map((v) => Float32Array.from(v.value.data() as Float32Array));
    await assert.rejects(
      loadKerasH5Weights(c, file),
      (e: unknown) => e instanceof WeightFileError && /a\.h5: .*"predictions"/.test(e.message),
    );
    c.weights.forEach((v, i) => assert.deepEqual(v.value.data(), before[i], `${v.name} must be untouched`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
