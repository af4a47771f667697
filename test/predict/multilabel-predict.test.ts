/** Prediction with a sigmoid head: independent probabilities, every class above 0.5 listed, on every backend present. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import type { Backend } from '../../src/core/backend.js';
import { tensor } from '../../src/core/creation.js';
import { noGrad } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadNativeBackend } from '../../src/backends/onednn/index.js';
import { xception } from '../../src/index.js';
import { classify, imageInputs, isMultiLabelModel, predictImages } from '../../src/predict/predict.js';
import { kerasPreprocessing } from '../../src/data/image-preprocessing.js';

const SHAPE: [number, number, number] = [8, 8, 3];
const CLASSES = 6;

for (const backend of [referenceBackend, loadNativeBackend()].filter((b): b is Backend => b !== null)) {
  test(`${backend.name}: a sigmoid head predicts every class above 0.5, sorted, with sigmoid(logits) as probabilities`, async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-multilabel-predict-'));
    try {
      const model = xception({
        backend,
        stem: 'small',
        inputShape: SHAPE,
        classes: CLASSES,
        width: 1 / 16,
        middleBlocks: 0,
        seed: 5,
        classifierActivation: 'sigmoid',
      });
      assert.ok(isMultiLabelModel(model));
      // A fresh head gives logits near 0; biases spread the probabilities to both sides of 0.5.
      const bias = model.layers.find((l) => l.name === 'predictions')!.weights.find((v) => v.value.shape.length === 1)!;
      bias.setData(Float32Array.of(2, -2, 1, -1, 3, 0.2));
      const r = new Random(1);
      const files: string[] = [];
      for (let i = 0; i < 3; i++) {
        const file = path.join(tmp, `${i}.png`);
        await sharp(Buffer.from(Array.from({ length: 8 * 8 * 3 }, () => r.int(256))), { raw: { width: 8, height: 8, channels: 3 } })
          .png()
          .toFile(file);
        files.push(file);
      }
      const prep = kerasPreprocessing('xception');
      const { inputs } = await imageInputs(files, SHAPE, prep);
      const logits = noGrad(() => model.forward(tensor(inputs, [3, ...SHAPE], { backend }), { logits: true }).data());
      const probs = classify(model, inputs, 3);
      probs.forEach((p, i) => assert.ok(Math.abs(p - 1 / (1 + Math.exp(-logits[i]!))) < 1e-5, `probability ${i}`));
      const results = await predictImages(model, files, { preprocessing: prep, batchSize: 2, top: 1 });
      results.forEach((res, i) => {
        const row = [...probs.subarray(i * CLASSES, (i + 1) * CLASSES)];
        const expected = row
          .map((p, k) => ({ p, k }))
          .filter((e) => e.p > 0.5)
          .sort((a, b) => b.p - a.p || a.k - b.k);
        // Every class above 0.5, however many (`top` does not cut a multi-label prediction).
        assert.deepEqual(
          res.predictions.map((c) => c.index),
          expected.map((e) => e.k),
          res.file,
        );
        assert.deepEqual(
          res.predictions.map((c) => c.index),
          [4, 0, 2, 5],
          res.file,
        );
      });
      model.dispose();
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}
