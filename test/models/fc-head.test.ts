/**
 * The paper's optional JFT head (fcLayers: Dense+ReLU `fc1`, `fc2`, … between the global pooling
 * and the classifier) and the sigmoid classifier, for both models: Keras names, order and
 * parameter counts, and the options' checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../../src/core/engine.js';
import { OptionError } from '../../src/core/errors.js';
import { tensor } from '../../src/core/creation.js';
import { referenceBackend as backend } from '../../src/backends/reference/index.js';
import { buildModel } from '../../src/models/registry.js';

// Keras's feature counts without the top (checked in xception.test.ts / inception_v3.test.ts).
const NOTOP = { xception: 20_861_480, inception_v3: 21_802_784 } as const;
const MIN_INPUT = { xception: [71, 71, 3], inception_v3: [75, 75, 3] } as const;

for (const name of ['xception', 'inception_v3'] as const) {
  test(`${name} with fcLayers [4096, 4096]: fc1, fc2 then predictions, with the paper head's parameter counts`, () => {
    const model = noGrad(() => buildModel(name, { backend, inputShape: [...MIN_INPUT[name]], fcLayers: [4096, 4096] }));
    const names = model.layers.map((l) => l.name);
    assert.deepEqual(names.slice(-4), ['avg_pool', 'fc1', 'fc2', 'predictions']);
    const fc = (n: string) => model.layers.find((l) => l.name === n)!;
    assert.deepEqual(
      fc('fc1').weights.map((v) => v.value.shape),
      [[2048, 4096], [4096]],
    );
    assert.deepEqual(
      fc('fc2').weights.map((v) => v.value.shape),
      [[4096, 4096], [4096]],
    );
    // 2048·4096 + 4096 + 4096·4096 + 4096 + 4096·1000 + 1000 on top of the features.
    assert.equal(model.countParams(), NOTOP[name] + 8_392_704 + 16_781_312 + 4_097_000);
    model.dispose();
  });

  test(`${name}: a sigmoid head gives independent probabilities; logits leave it out`, () => {
    const model = noGrad(() =>
      buildModel(name, {
        backend,
        inputShape: [...MIN_INPUT[name]],
        width: 0.125,
        classes: 3,
        fcLayers: [8],
        classifierActivation: 'sigmoid',
      }),
    );
    const [h, w, c] = MIN_INPUT[name];
    const x = tensor(
      new Float32Array(h * w * c).map((_, i) => Math.sin(i)),
      [1, h, w, c],
      { backend },
    );
    const probs = noGrad(() => model.forward(x, { training: false }).data());
    const logits = noGrad(() => model.forward(x, { training: false, logits: true }).data());
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(probs[k]! - 1 / (1 + Math.exp(-logits[k]!))) < 1e-6);
    model.dispose();
  });

  test(`${name}: fcLayers needs the top and stays within its caps`, () => {
    const fails = (options: Record<string, unknown>, pattern: RegExp) =>
      assert.throws(
        () => buildModel(name, { backend, ...options }),
        (e: Error) => e instanceof OptionError && pattern.test(e.message),
      );
    fails({ includeTop: false, fcLayers: [16] }, /fcLayers applies only with the top/);
    fails({ fcLayers: [0] }, /fcLayers must be up to 8 integers in \[1, 16384\]/);
    fails({ fcLayers: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, /fcLayers must be up to 8 integers/);
    fails({ fcLayers: '4096' }, /fcLayers must be/);
  });
}
