import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backward,
  BatchNormalization,
  inceptionV3,
  noGrad,
  OptionError,
  ShapeError,
  tensor,
  xception,
  Random,
  ops,
  tidy,
} from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';

const backend = referenceBackend;

/** Keras `applications.Xception(include_top=True).layers`, in order (names of the 2017 weights). */
function kerasXceptionLayerNames(): string[] {
  const names = ['input_1', 'block1_conv1', 'block1_conv1_bn', 'block1_conv1_act', 'block1_conv2', 'block1_conv2_bn', 'block1_conv2_act'];
  const down = (b: number, k: number, reluFirst: boolean) => {
    if (reluFirst) names.push(`block${b}_sepconv1_act`);
    names.push(
      `block${b}_sepconv1`,
      `block${b}_sepconv1_bn`,
      `block${b}_sepconv2_act`,
      `block${b}_sepconv2`,
      `block${b}_sepconv2_bn`,
      `conv2d_${k}`,
      `block${b}_pool`,
      `batch_normalization_${k}`,
      `add_${k}`,
    );
  };
  down(2, 1, false);
  down(3, 2, true);
  down(4, 3, true);
  for (let i = 0; i < 8; i++) {
    const p = `block${i + 5}`;
    for (let j = 1; j <= 3; j++) names.push(`${p}_sepconv${j}_act`, `${p}_sepconv${j}`, `${p}_sepconv${j}_bn`);
    names.push(`add_${i + 4}`);
  }
  names.push(
    'block13_sepconv1_act',
    'block13_sepconv1',
    'block13_sepconv1_bn',
    'block13_sepconv2_act',
    'block13_sepconv2',
    'block13_sepconv2_bn',
    'conv2d_4',
    'block13_pool',
    'batch_normalization_4',
    'add_12',
  );
  names.push(
    'block14_sepconv1',
    'block14_sepconv1_bn',
    'block14_sepconv1_act',
    'block14_sepconv2',
    'block14_sepconv2_bn',
    'block14_sepconv2_act',
    'avg_pool',
    'predictions',
  );
  return names;
}

test("Xception at 299×299×3 with 1000 classes has Keras's parameter counts, names and order", () => {
  const model = noGrad(() => xception({ backend }));
  const s = model.summary();
  assert.equal(s.totalParams, 22_910_480);
  assert.equal(s.trainableParams, 22_855_952);
  assert.equal(s.nonTrainableParams, 54_528);
  assert.equal(model.layersWithWeights.length, 81);
  assert.deepEqual(
    s.layers.map((l) => l.name),
    kerasXceptionLayerNames(),
  );
  const shape = (name: string) => s.layers.find((l) => l.name === name)!.outputShape;
  assert.deepEqual(shape('block1_conv1'), [149, 149, 32]);
  assert.deepEqual(shape('block1_conv2_act'), [147, 147, 64]);
  assert.deepEqual(shape('block2_pool'), [74, 74, 128]);
  assert.deepEqual(shape('block3_pool'), [37, 37, 256]);
  assert.deepEqual(shape('block4_pool'), [19, 19, 728]);
  assert.deepEqual(shape('block13_pool'), [10, 10, 1024]);
  assert.deepEqual(shape('block14_sepconv2_act'), [10, 10, 2048]);
  assert.deepEqual(shape('predictions'), [1000]);
  // Weight names and Keras layouts.
  const w = new Map(model.weights.map((v) => [v.name, v.shape]));
  assert.deepEqual(w.get('block1_conv1/kernel'), [3, 3, 3, 32]);
  assert.deepEqual(w.get('block2_sepconv1/depthwise_kernel'), [3, 3, 64, 1]);
  assert.deepEqual(w.get('block2_sepconv1/pointwise_kernel'), [1, 1, 64, 128]);
  assert.deepEqual(w.get('conv2d_1/kernel'), [1, 1, 64, 128]);
  assert.deepEqual(w.get('batch_normalization_4/moving_variance'), [1024]);
  assert.deepEqual(w.get('predictions/kernel'), [2048, 1000]);
  assert.deepEqual(w.get('predictions/bias'), [1000]);
  assert.deepEqual(
    model.layers.find((l) => l.name === 'block1_conv1_bn')!.weights.map((v) => v.weightName),
    ['gamma', 'beta', 'moving_mean', 'moving_variance'],
  );
  const types = new Map(s.layers.map((l) => [l.name, l.type]));
  assert.equal(types.get('block2_sepconv1'), 'SeparableConv2D');
  assert.equal(types.get('add_12'), 'Add');
  assert.equal(types.get('input_1'), 'InputLayer');
  model.dispose();
});

test('without the top: 20,861,480 parameters and a 10×10×2048 map; pooling options', () => {
  const model = noGrad(() => xception({ backend, includeTop: false }));
  assert.equal(model.countParams(), 20_861_480);
  assert.deepEqual(model.outputShape, [10, 10, 2048]);
  assert.equal(model.layers.length, 132);
  model.dispose();
  const pooled = noGrad(() => xception({ backend, includeTop: false, pooling: 'max', inputShape: [71, 71, 3] }));
  assert.deepEqual(pooled.outputShape, [2048]);
  assert.equal(pooled.layers.at(-1)!.className, 'GlobalMaxPooling2D');
  pooled.dispose();
});

test('research switches change exactly what they say', () => {
  const base = { backend, inputShape: [71, 71, 3] as [number, number, number], classes: 10 };
  const ref = xception(base);
  const noRes = xception({ ...base, residual: false });
  // The four residual 1×1 convs and their BNs: 64·128 + 128·256 + 256·728 + 728·1024 weights, 4 BN sets.
  const residualParams = 64 * 128 + 128 * 256 + 256 * 728 + 728 * 1024 + 4 * (128 + 256 + 728 + 1024);
  assert.equal(ref.countParams() - noRes.countParams(), residualParams);
  assert.ok(!noRes.layers.some((l) => l.className === 'Add'));
  // An intermediate activation adds layers' behaviour but no parameters.
  assert.equal(xception({ ...base, intermediateActivation: 'elu' }).countParams(), ref.countParams());
  // Pointwise-first: the depthwise kernel runs over the output channels.
  const pf = xception({ ...base, order: 'pointwise-first' });
  assert.deepEqual(
    pf.getLayer('block2_sepconv1').weights.map((v) => v.shape),
    [
      [3, 3, 128, 1],
      [1, 1, 64, 128],
    ],
  );
  // Segments: 1 = a regular 3×3 convolution inside each separable conv.
  const seg1 = xception({ ...base, segments: 1, middleBlocks: 1 });
  assert.deepEqual(
    seg1.getLayer('block2_sepconv1').weights.map((v) => [v.weightName, v.shape]),
    [
      ['spatial_kernel', [3, 3, 64, 64]],
      ['pointwise_kernel', [1, 1, 64, 128]],
    ],
  );
  const seg4 = xception({ ...base, segments: 4, middleBlocks: 1 });
  assert.deepEqual(seg4.getLayer('block4_sepconv2').weights[0]!.shape, [3, 3, 182, 728]);
  // Middle blocks, width, dropout.
  const mb2 = xception({ ...base, middleBlocks: 2 });
  assert.equal(mb2.layers.filter((l) => /^block\d+_sepconv\d_act$/.test(l.name)).length, 1 + 2 + 2 + 6 + 2 + 2);
  assert.ok(
    mb2.layers.some((l) => l.name === 'block8_sepconv2'),
    'exit blocks renumber after the middle flow',
  );
  const drop = xception({ ...base, dropout: 0.5 });
  assert.equal(drop.getLayer('dropout').className, 'Dropout');
  assert.equal(drop.countParams(), ref.countParams());
  for (const m of [ref, noRes, pf, seg1, seg4, mb2, drop]) m.dispose();
});

/** Parameters of a width-scaled, small-stem Xception, counted by hand from the architecture. */
function handCount(inC: number, classes: number, w: number): number {
  const c = (n: number) => Math.round(n * w);
  const bn = (n: number) => 4 * n;
  const sep = (i: number, o: number) => 9 * i + i * o + bn(o);
  const down = (i: number, f0: number, f1: number) => i * f1 + bn(f1) + sep(i, f0) + sep(f0, f1);
  return (
    9 * inC * c(32) +
    bn(c(32)) +
    9 * c(32) * c(64) +
    bn(c(64)) +
    down(c(64), c(128), c(128)) +
    down(c(128), c(256), c(256)) +
    down(c(256), c(728), c(728)) +
    8 * 3 * sep(c(728), c(728)) +
    down(c(728), c(728), c(1024)) +
    sep(c(1024), c(1536)) +
    sep(c(1536), c(2048)) +
    c(2048) * classes +
    classes
  );
}

test('the small-image stem keeps 28×28 through block1; width 0.25 gives the 1.37 M-parameter network', () => {
  const m = xception({ backend, stem: 'small', inputShape: [28, 28, 1], classes: 10, width: 0.25 });
  const shape = (n: string) => m.getLayer(n).output!.shape;
  assert.deepEqual(shape('block1_conv2_act'), [28, 28, 16]);
  assert.deepEqual(shape('block2_pool'), [14, 14, 32]);
  assert.deepEqual(shape('block14_sepconv2_act'), [2, 2, 512]);
  assert.equal(m.countParams(), handCount(1, 10, 0.25));
  assert.equal(m.countParams(), 1_368_332);
  assert.equal(handCount(3, 1000, 1), 22_910_480);
  m.dispose();
});

test('bad options are clear errors before anything is computed', () => {
  assert.throws(
    () => xception({ backend, inputShape: [70, 71, 3] }),
    (e: Error) => e instanceof ShapeError && /at least 71/.test(e.message),
  );
  assert.throws(() => xception({ backend, inputShape: [71, 71] as unknown as [number, number, number] }), ShapeError);
  assert.throws(
    () => xception({ backend, segments: 3 }),
    (e: Error) => e instanceof ShapeError && /segments 3 does not divide the 64 channels of block2_sepconv1/.test(e.message),
  );
  assert.throws(
    () => xception({ backend, residuals: false } as never),
    (e: Error) => e instanceof OptionError && /unknown option 'residuals'/.test(e.message),
  );
  assert.throws(() => xception({ backend, order: 'sideways' } as never), OptionError);
  assert.throws(() => xception({ backend, intermediateActivation: 'tanh' } as never), OptionError);
  assert.throws(() => xception({ backend, classes: 0 }), OptionError);
  assert.throws(() => xception({ backend, dropout: 1 }), OptionError);
  const m = xception({ backend, inputShape: [71, 71, 3], classes: 5, middleBlocks: 0 });
  const wrong = tensor(new Float32Array(2 * 72 * 71 * 3), [2, 72, 71, 3], { backend });
  assert.throws(
    () => m.forward(wrong),
    (e: Error) => e instanceof ShapeError && /expects input \[batch, 71, 71, 3\], got \[2, 72, 71, 3\]/.test(e.message),
  );
  m.dispose();
});

test('forward and backward of the full Xception at 71×71 on the reference backend', () => {
  const m = xception({ backend, inputShape: [71, 71, 3], classes: 7 });
  const rng = new Random(3);
  const x = tensor(
    Float32Array.from({ length: 2 * 71 * 71 * 3 }, () => rng.uniform(-1, 1)),
    [2, 71, 71, 3],
    { backend },
  );
  const loss = tidy(() => {
    const logits = m.forward(x, { training: true, logits: true });
    assert.deepEqual(logits.shape, [2, 7]);
    const l = ops.softmaxCrossEntropy(logits, [1, 4]);
    backward(l);
    return l.item();
  });
  assert.ok(Number.isFinite(loss) && loss > 0);
  for (const w of m.trainableWeights) {
    assert.ok(w.value.grad, `no gradient for ${w.name}`);
    const g = w.value.grad!.data();
    assert.ok(g.every(Number.isFinite), `non-finite gradient in ${w.name}`);
  }
  assert.ok(
    m
      .getLayer('block1_conv1')
      .weights[0]!.value.grad!.data()
      .some((v) => v !== 0),
  );
  for (const w of m.nonTrainableWeights) assert.equal(w.value.grad, null, `${w.name} must get no gradient`);
  // Inference gives probabilities.
  const p = noGrad(() => m.forward(x)).data();
  for (let i = 0; i < 2; i++) {
    const row = p.subarray(i * 7, i * 7 + 7);
    assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  }
  m.dispose();
});

test('channelMultiple rounds channel counts so that more segment counts divide every layer', () => {
  const base = {
    backend,
    stem: 'small' as const,
    inputShape: [16, 16, 1] as [number, number, number],
    classes: 10,
    width: 0.25,
    middleBlocks: 1,
  };
  assert.throws(() => xception({ ...base, segments: 8 }), /segments 8 does not divide the 182 channels/);
  const m = xception({ ...base, channelMultiple: 8, segments: 8 });
  assert.deepEqual(m.getLayer('block4_sepconv2').weights[0]!.shape, [3, 3, 23, 184]);
  const m32 = xception({ ...base, channelMultiple: 32, segments: 32 });
  assert.deepEqual(m32.getLayer('block1_conv1').weights[0]!.shape, [3, 3, 1, 32]);
  assert.throws(() => xception({ ...base, channelMultiple: 0 }), OptionError);
  for (const x of [m, m32]) x.dispose();
});

test("bnMomentum sets every batch norm's moving-average momentum (Xception and Inception V3)", () => {
  const small = { backend, stem: 'small', inputShape: [28, 28, 1], classes: 3, width: 1 / 16, middleBlocks: 0 } as const;
  const bns = (m: { layers: readonly unknown[] }) => m.layers.filter((l): l is BatchNormalization => l instanceof BatchNormalization);
  const keras = xception(small);
  assert.ok(bns(keras).length > 0 && bns(keras).every((l) => l.momentum === 0.99), 'Keras default 0.99');
  keras.dispose();
  const inc = inceptionV3({ backend, stem: 'small', inputShape: [32, 32, 1], classes: 3, width: 1 / 16, bnMomentum: 0.9 });
  assert.ok(bns(inc).every((l) => l.momentum === 0.9));
  inc.dispose();
  // Same weights, same batch: from moving mean 0 one step moves it to (1 − m)·batch mean.
  const x = tensor(
    Float32Array.from({ length: 2 * 784 }, (_, i) => Math.sin(i) + 0.5),
    [2, 28, 28, 1],
    { backend },
  );
  const movingMean = (m: number) => {
    const model = xception({ ...small, bnMomentum: m });
    assert.ok(bns(model).every((l) => l.momentum === m));
    tidy(() => model.forward(x, { training: true }));
    const v = (model.getLayer('block1_conv1_bn') as BatchNormalization).movingMean.read().data();
    model.dispose();
    return v;
  };
  const fast = movingMean(0.5),
    slow = movingMean(0.9);
  assert.ok(fast.some((v) => Math.abs(v) > 1e-3));
  for (let c = 0; c < fast.length; c++) assert.ok(Math.abs(fast[c]! - 5 * slow[c]!) <= 1e-5 * (1 + Math.abs(fast[c]!)), `channel ${c}`);
  x.dispose();
  for (const bad of [1, -0.1, Number.NaN]) {
    assert.throws(
      () => xception({ ...small, bnMomentum: bad }),
      (e: Error) => e instanceof OptionError && /bnMomentum must be in \[0, 1\)/.test(e.message),
    );
  }
});
