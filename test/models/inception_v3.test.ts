import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backward,
  getModelEntry,
  inceptionV3,
  inceptionV3MinInput,
  inceptionV3Sizes,
  noGrad,
  OptionError,
  ops,
  Random,
  ShapeError,
  tensor,
  tidy,
} from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { parse } from '../../src/cli/args.js';
import { summaryCommand } from '../../src/cli/commands/summary.js';
import { MODEL_FLAGS, modelFromFlags } from '../../src/cli/model-flags.js';

const backend = referenceBackend;

/**
 * The first 41 entries of Keras `applications.InceptionV3().layers` (Keras 2 names, numbered from
 * 1): the stem, then mixed0 listed by depth — the deepest branch (1×1 → 3×3 → 3×3) first, the
 * four branch-ending conv2d_bn blocks last, side by side.
 */
const KERAS_FIRST_LAYERS = [
  'input_1',
  'conv2d_1',
  'batch_normalization_1',
  'activation_1',
  'conv2d_2',
  'batch_normalization_2',
  'activation_2',
  'conv2d_3',
  'batch_normalization_3',
  'activation_3',
  'max_pooling2d_1',
  'conv2d_4',
  'batch_normalization_4',
  'activation_4',
  'conv2d_5',
  'batch_normalization_5',
  'activation_5',
  'max_pooling2d_2',
  'conv2d_9',
  'batch_normalization_9',
  'activation_9',
  'conv2d_7',
  'conv2d_10',
  'batch_normalization_7',
  'batch_normalization_10',
  'activation_7',
  'activation_10',
  'average_pooling2d_1',
  'conv2d_6',
  'conv2d_8',
  'conv2d_11',
  'conv2d_12',
  'batch_normalization_6',
  'batch_normalization_8',
  'batch_normalization_11',
  'batch_normalization_12',
  'activation_6',
  'activation_8',
  'activation_11',
  'activation_12',
  'mixed0',
];

/** Index of each block output in Keras's layer list (mixed8 at 248: Keras's fine-tuning example freezes layers[:249]). */
const KERAS_MIXED_POSITIONS: Record<string, number> = {
  mixed0: 40,
  mixed1: 63,
  mixed2: 86,
  mixed3: 100,
  mixed4: 132,
  mixed5: 164,
  mixed6: 196,
  mixed7: 228,
  mixed8: 248,
  mixed9_0: 276,
  concatenate_1: 277,
  mixed9: 279,
  mixed9_1: 307,
  concatenate_2: 308,
  mixed10: 310,
};

test("Inception V3 at 299×299×3 with 1000 classes has Keras's parameter counts, names and order", () => {
  const model = noGrad(() => inceptionV3({ backend }));
  const s = model.summary();
  assert.equal(s.totalParams, 23_851_784);
  assert.equal(s.trainableParams, 23_817_352);
  assert.equal(s.nonTrainableParams, 34_432);
  assert.equal(s.layers.length, 313);
  assert.deepEqual(
    s.layers.slice(0, KERAS_FIRST_LAYERS.length).map((l) => l.name),
    KERAS_FIRST_LAYERS,
  );
  const names = s.layers.map((l) => l.name);
  for (const [name, index] of Object.entries(KERAS_MIXED_POSITIONS)) assert.equal(names.indexOf(name), index, `position of ${name}`);
  assert.deepEqual(names.slice(-3), ['mixed10', 'avg_pool', 'predictions']);
  // Keras's summary row for mixed10: "activation_86, mixed9_1, concatenate_2, activation_94".
  assert.deepEqual(s.layers.find((l) => l.name === 'mixed10')!.connectedTo, [
    'activation_86',
    'mixed9_1',
    'concatenate_2',
    'activation_94',
  ]);

  const shape = (name: string) => s.layers.find((l) => l.name === name)!.outputShape;
  assert.deepEqual(shape('conv2d_1'), [149, 149, 32]);
  assert.deepEqual(shape('max_pooling2d_1'), [73, 73, 64]);
  assert.deepEqual(shape('max_pooling2d_2'), [35, 35, 192]);
  assert.deepEqual(shape('mixed0'), [35, 35, 256]);
  assert.deepEqual(shape('mixed2'), [35, 35, 288]);
  assert.deepEqual(shape('mixed3'), [17, 17, 768]);
  assert.deepEqual(shape('mixed7'), [17, 17, 768]);
  assert.deepEqual(shape('mixed8'), [8, 8, 1280]);
  assert.deepEqual(shape('mixed9_0'), [8, 8, 768]);
  assert.deepEqual(shape('mixed10'), [8, 8, 2048]);
  assert.deepEqual(shape('predictions'), [1000]);

  // Layer census: 94 conv2d_bn blocks, 4 max pools (2 stem, mixed3, mixed8), 9 average pools,
  // 15 concatenations (mixed0–10, mixed9_0/1, concatenate_1/2).
  const count = (type: string) => s.layers.filter((l) => l.type === type).length;
  assert.equal(count('Conv2D'), 94);
  assert.equal(count('BatchNormalization'), 94);
  assert.equal(count('Activation'), 94);
  assert.equal(count('MaxPooling2D'), 4);
  assert.equal(count('AveragePooling2D'), 9);
  assert.equal(count('Concatenate'), 15);

  // BN with scale=False holds beta (trainable) + moving_mean + moving_variance: the non-trainable
  // count is twice the BN channels, and trainable = conv kernels + one beta per BN channel + Dense.
  const bns = model.layers.filter((l) => l.className === 'BatchNormalization');
  for (const l of bns)
    assert.deepEqual(
      l.weights.map((v) => v.weightName),
      ['beta', 'moving_mean', 'moving_variance'],
      l.name,
    );
  const bnChannels = bns.reduce((a, l) => a + l.weights[0]!.size, 0);
  assert.equal(bnChannels, 17_216);
  assert.equal(s.nonTrainableParams, 2 * bnChannels);
  const convParams = model.layers.filter((l) => l.className === 'Conv2D').reduce((a, l) => a + l.countParams(), 0);
  assert.ok(
    model.layers.filter((l) => l.className === 'Conv2D').every((l) => l.weights.length === 1),
    'convs are bias-free',
  );
  assert.equal(s.trainableParams, convParams + bnChannels + 2048 * 1000 + 1000);

  const w = new Map(model.weights.map((v) => [v.name, v.shape]));
  assert.deepEqual(w.get('conv2d_1/kernel'), [3, 3, 3, 32]);
  assert.deepEqual(w.get('conv2d_7/kernel'), [1, 1, 192, 48]); // mixed0's 5×5 branch: 1×1 then …
  assert.deepEqual(w.get('conv2d_8/kernel'), [5, 5, 48, 64]);
  assert.deepEqual(w.get('conv2d_32/kernel'), [1, 1, 768, 128]); // mixed4's 7×7 branch: 1×1, then 1×7, 7×1
  assert.deepEqual(w.get('conv2d_33/kernel'), [1, 7, 128, 128]);
  assert.deepEqual(w.get('conv2d_34/kernel'), [7, 1, 128, 192]);
  assert.deepEqual(w.get('conv2d_94/kernel'), [1, 1, 2048, 192]);
  assert.deepEqual(w.get('predictions/kernel'), [2048, 1000]);
  model.dispose();
});

test('without the top: 21,802,784 parameters, 311 layers and an 8×8×2048 map; pooling at the 75×75 minimum', () => {
  const model = noGrad(() => inceptionV3({ backend, includeTop: false }));
  assert.equal(model.countParams(), 21_802_784);
  assert.equal(model.layers.length, 311);
  assert.deepEqual(model.outputShape, [8, 8, 2048]);
  model.dispose();
  for (const pooling of ['avg', 'max'] as const) {
    const m = noGrad(() => inceptionV3({ backend, includeTop: false, pooling, inputShape: [75, 75, 3] }));
    assert.deepEqual(m.getLayer('mixed3').output!.shape, [3, 3, 768]);
    assert.deepEqual(m.getLayer('mixed10').output!.shape, [1, 1, 2048]);
    assert.deepEqual(m.outputShape, [2048]);
    assert.equal(m.layers.at(-1)!.name, pooling === 'avg' ? 'global_average_pooling2d_1' : 'global_max_pooling2d_1');
    m.dispose();
  }
  assert.deepEqual(inceptionV3Sizes(299), { stem: 35, mixed3: 17, mixed8: 8 });
  assert.equal(inceptionV3MinInput('imagenet'), 75);
  assert.equal(inceptionV3MinInput('small'), 13);
});

test('width, dropout and classes change what they say', () => {
  const base = { backend, inputShape: [75, 75, 3] as [number, number, number], classes: 10 };
  const ref = noGrad(() => inceptionV3(base));
  const half = noGrad(() => inceptionV3({ ...base, width: 0.5 }));
  assert.deepEqual(half.getLayer('mixed0').output!.shape, [7, 7, 128]);
  assert.deepEqual(half.getLayer('mixed10').output!.shape, [1, 1, 1024]);
  assert.deepEqual(half.getLayer('conv2d_1').weights[0]!.shape, [3, 3, 3, 16]);
  const drop = noGrad(() => inceptionV3({ ...base, dropout: 0.5 }));
  assert.equal(drop.getLayer('dropout').className, 'Dropout');
  assert.equal(drop.countParams(), ref.countParams());
  assert.equal(ref.countParams(), 23_851_784 - 2048 * 990 - 990);
  for (const m of [ref, half, drop]) m.dispose();
});

test('the small stem keeps 32×32 and 28×28 viable and trains: forward and backward on the reference backend', () => {
  const m = inceptionV3({ backend, stem: 'small', inputShape: [32, 32, 3], classes: 5, width: 0.125, seed: 1 });
  const shape = (n: string) => m.getLayer(n).output!.shape;
  assert.deepEqual(shape('activation_5'), [32, 32, 24]); // the five stem convs keep the size
  assert.deepEqual(shape('max_pooling2d_1'), [16, 16, 24]);
  assert.deepEqual(shape('mixed0'), [16, 16, 32]);
  assert.deepEqual(shape('mixed3'), [7, 7, 96]);
  assert.deepEqual(shape('mixed8'), [3, 3, 160]);
  assert.deepEqual(shape('mixed10'), [3, 3, 256]);
  assert.equal(m.layers.filter((l) => l.className === 'MaxPooling2D').length, 3);
  assert.equal(m.layers.filter((l) => l.className === 'Conv2D').length, 94);

  const rng = new Random(3);
  const x = tensor(
    Float32Array.from({ length: 2 * 32 * 32 * 3 }, () => rng.uniform(-1, 1)),
    [2, 32, 32, 3],
    { backend },
  );
  const loss = tidy(() => {
    const logits = m.forward(x, { training: true, logits: true });
    assert.deepEqual(logits.shape, [2, 5]);
    const l = ops.softmaxCrossEntropy(logits, [1, 4]);
    backward(l);
    return l.item();
  });
  assert.ok(Number.isFinite(loss) && loss > 0);
  for (const w of m.trainableWeights) {
    assert.ok(w.value.grad, `no gradient for ${w.name}`);
    assert.ok(w.value.grad!.data().every(Number.isFinite), `non-finite gradient in ${w.name}`);
  }
  // The gradient reaches the first conv through every concatenation.
  assert.ok(
    m
      .getLayer('conv2d_1')
      .weights[0]!.value.grad!.data()
      .some((v) => v !== 0),
  );
  for (const w of m.nonTrainableWeights) assert.equal(w.value.grad, null, `${w.name} must get no gradient`);
  // Training updated the BN moving statistics.
  assert.ok(
    m
      .getLayer('batch_normalization_1')
      .getWeight('moving_mean')
      .value.data()
      .some((v) => v !== 0),
  );
  const p = noGrad(() => m.forward(x)).data();
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(p.subarray(i * 5, i * 5 + 5).reduce((a, b) => a + b, 0) - 1) < 1e-5);
  m.dispose();

  const mnist = noGrad(() => inceptionV3({ backend, stem: 'small', inputShape: [28, 28, 1], classes: 10, width: 0.25 }));
  assert.deepEqual(mnist.getLayer('mixed10').output!.shape, [2, 2, 512]);
  mnist.dispose();
  const tiny = noGrad(() => inceptionV3({ backend, stem: 'small', inputShape: [13, 13, 3], width: 0.125 }));
  assert.deepEqual(tiny.getLayer('mixed10').output!.shape, [1, 1, 256]);
  tiny.dispose();
});

test('bad options are clear errors before anything is built', () => {
  assert.throws(
    () => inceptionV3({ backend, inputShape: [74, 299, 3] }),
    (e: Error) =>
      e instanceof ShapeError &&
      /\[74, 299, 3\] is too small: height and width must be at least 75/.test(e.message) &&
      /stem: 'small'/.test(e.message),
  );
  assert.throws(() => inceptionV3({ backend, inputShape: [299, 74, 3] }), ShapeError);
  assert.throws(
    () => inceptionV3({ backend, stem: 'small', inputShape: [12, 12, 3] }),
    (e: Error) => e instanceof ShapeError && /at least 13 with the 'small' stem/.test(e.message),
  );
  assert.throws(() => inceptionV3({ backend, inputShape: [299, 299] as unknown as [number, number, number] }), ShapeError);
  assert.throws(
    () => inceptionV3({ backend, includeTops: false } as never),
    (e: Error) => e instanceof OptionError && /inception_v3: unknown option 'includeTops'/.test(e.message),
  );
  // Xception's research switches are not Inception V3 options.
  assert.throws(
    () => inceptionV3({ backend, segments: 4 } as never),
    (e: Error) => e instanceof OptionError && /unknown option 'segments'/.test(e.message),
  );
  assert.throws(() => inceptionV3({ backend, stem: 'tiny' } as never), OptionError);
  assert.throws(() => inceptionV3({ backend, pooling: 'sum' } as never), OptionError);
  assert.throws(() => inceptionV3({ backend, classes: 0 }), OptionError);
  assert.throws(() => inceptionV3({ backend, width: 0 }), OptionError);
  assert.throws(() => inceptionV3({ backend, dropout: 1 }), OptionError);
  assert.throws(() => inceptionV3({ backend, classifierActivation: 'relu' } as never), OptionError);
});

test('registry and CLI: inception_v3 by name; xception-only flags are refused', async () => {
  const entry = getModelEntry('inception_v3');
  assert.equal(entry.preprocessing, 'inception_v3');
  assert.deepEqual(entry.defaultInputShape, [299, 299, 3]);

  const choice = modelFromFlags(
    parse('summary', ['--model', 'inception_v3', '--stem', 'small', '--width', '0.5', '--classes', '10'], MODEL_FLAGS),
  );
  assert.deepEqual(choice, { name: 'inception_v3', options: { stem: 'small', width: 0.5, classes: 10 } });
  for (const flags of [
    ['--segments', '4'],
    ['--no-residual'],
    ['--middle-blocks', '2'],
    ['--order', 'pointwise-first'],
    ['--intermediate-activation', 'elu'],
  ]) {
    const flag = flags[0]!;
    assert.throws(
      () => modelFromFlags(parse('summary', ['--model', 'inception_v3', ...flags], MODEL_FLAGS)),
      (e: Error) =>
        e instanceof OptionError &&
        e.message.includes(
          `${flag} applies only to --model xception${flag === '--no-residual' ? ' or sepvgg' : ''}, not to 'inception_v3'`,
        ),
    );
  }
  // The same flags still work for Xception.
  assert.equal(modelFromFlags(parse('summary', ['--segments', '4'], MODEL_FLAGS)).options['segments'], 4);

  let text = '';
  const code = await summaryCommand(['--model', 'inception_v3', '--no-top', '--json'], (s) => (text += s));
  assert.equal(code, 0);
  const s = JSON.parse(text);
  assert.equal(s.name, 'inception_v3');
  assert.equal(s.totalParams, 21_802_784);
  assert.equal(s.layers.length, 311);
});
