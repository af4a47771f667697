import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { tensor } from '../../src/core/creation.js';
import { noGrad } from '../../src/core/engine.js';
import { OptionError } from '../../src/core/errors.js';
import { Random } from '../../src/core/random.js';
import { exportOnnx, type ExportOnnxOptions } from '../../src/io/onnx-model.js';
import { inceptionV3 } from '../../src/models/inception_v3/inception_v3.js';
import { xception } from '../../src/models/xception/xception.js';
import { Conv2D, DepthwiseConv2D, SeparableConv2D } from '../../src/nn/layers/convolutional.js';
import { Activation, Dense, Dropout, Flatten, InputLayer } from '../../src/nn/layers/core.js';
import { Add, Concatenate } from '../../src/nn/layers/merge.js';
import { BatchNormalization } from '../../src/nn/layers/normalization.js';
import { AveragePooling2D, GlobalMaxPooling2D, MaxPooling2D } from '../../src/nn/layers/pooling.js';
import { Model } from '../../src/nn/model.js';

const backend = referenceBackend;

/** Gives BN layers non-trivial statistics (so folding is really exercised) and biases values. */
function randomizeStatistics(model: Model, seed: number): void {
  const r = new Random(seed);
  for (const v of model.weights) {
    const n = v.size;
    const d = new Float32Array(n);
    if (v.weightName === 'moving_variance' || v.weightName === 'gamma') for (let i = 0; i < n; i++) d[i] = 0.5 + r.uniform();
    else if (v.weightName === 'moving_mean' || v.weightName === 'beta' || v.weightName === 'bias')
      for (let i = 0; i < n; i++) d[i] = (r.uniform() - 0.5) * 0.4;
    else continue;
    v.setData(d);
  }
}

function randomInput(n: number, seed: number): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: n }, () => r.uniform() * 2 - 1);
}

function nhwcToNchw(x: Float32Array, [n, h, w, c]: number[]): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n!; b++)
    for (let y = 0; y < h!; y++)
      for (let xx = 0; xx < w!; xx++)
        for (let ch = 0; ch < c!; ch++) {
          out[((b * c! + ch) * h! + y) * w! + xx] = x[((b * h! + y) * w! + xx) * c! + ch]!;
        }
  return out;
}

async function runOnnx(bytes: Uint8Array, x: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const result = await session.run({ input: new ort.Tensor('float32', x, dims) });
    const out = result['output']!;
    return { data: out.data as Float32Array, dims: out.dims };
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Exports `model` with every combination of BN folding and input layout and checks ONNX Runtime
 * against the model's own forward pass (batch 2, so the symbolic batch is exercised).
 */
async function checkAgainstForward(model: Model, what: string, tolerance = 1e-4): Promise<number[]> {
  const [h, w, c] = model.inputShape as number[];
  const batch = 2;
  const x = randomInput(batch * h! * w! * c!, 11);
  const want = noGrad(() => model.forward(tensor(x, [batch, h!, w!, c!], { backend })).data());
  const diffs: number[] = [];
  for (const opts of [
    { foldBatchNorm: true },
    { foldBatchNorm: false },
    { foldBatchNorm: true, inputLayout: 'nhwc' },
  ] as ExportOnnxOptions[]) {
    const bytes = exportOnnx(model, opts);
    const nhwc = opts.inputLayout === 'nhwc';
    const got = await runOnnx(bytes, nhwc ? x : nhwcToNchw(x, [batch, h!, w!, c!]), nhwc ? [batch, h!, w!, c!] : [batch, c!, h!, w!]);
    let gotData = got.data;
    if (model.outputShape.length === 3 && !nhwc) {
      const [oh, ow, oc] = model.outputShape as number[];
      assert.deepEqual(got.dims, [batch, oc, oh, ow], `${what}: NCHW feature map`);
      // Compare in NHWC.
      const back = new Float32Array(gotData.length);
      for (let b = 0; b < batch; b++)
        for (let y = 0; y < oh!; y++)
          for (let xx = 0; xx < ow!; xx++)
            for (let ch = 0; ch < oc!; ch++) {
              back[((b * oh! + y) * ow! + xx) * oc! + ch] = gotData[((b * oc! + ch) * oh! + y) * ow! + xx]!;
            }
      gotData = back;
    } else {
      assert.deepEqual(got.dims, [batch, ...model.outputShape], `${what}: output dims`);
    }
    const d = maxAbsDiff(gotData, want);
    diffs.push(d);
    assert.ok(d <= tolerance, `${what} ${JSON.stringify(opts)}: max abs difference ${d} > ${tolerance}`);
  }
  return diffs;
}

test('Xception (71×71, reduced width) exported to ONNX gives the same probabilities in onnxruntime (BN folded and kept, NCHW and NHWC input)', async () => {
  const model = noGrad(() => xception({ inputShape: [71, 71, 3], width: 1 / 16, middleBlocks: 1, classes: 5, seed: 3, backend }));
  randomizeStatistics(model, 4);
  const diffs = await checkAgainstForward(model, 'xception');
  // The probabilities are not saturated: the comparison says something.
  const p = noGrad(() => model.forward(tensor(randomInput(71 * 71 * 3, 11), [1, 71, 71, 3], { backend })).data());
  assert.ok(Math.max(...p) < 0.99, `probabilities ${[...p]}`);
  console.log(`xception max abs differences: ${diffs.map((d) => d.toExponential(2)).join(', ')}`);
  model.dispose();
});

test('the research variant (segments 2, pointwise-first, ELU between, no residual) exports and matches', async () => {
  const model = noGrad(() =>
    xception({
      inputShape: [71, 71, 3],
      width: 1 / 16,
      middleBlocks: 1,
      classes: 5,
      seed: 5,
      backend,
      segments: 2,
      order: 'pointwise-first',
      intermediateActivation: 'elu',
      residual: false,
    }),
  );
  assert.equal(model.getLayer('block2_sepconv1').weights[0]!.weightName, 'spatial_kernel');
  randomizeStatistics(model, 6);
  await checkAgainstForward(model, 'research variant');
  model.dispose();
});

test('Inception V3 (small, BN without gamma, average pools, concatenations) exports and matches', async () => {
  const model = noGrad(() => inceptionV3({ inputShape: [75, 75, 3], width: 1 / 16, classes: 4, seed: 7, backend }));
  randomizeStatistics(model, 8);
  await checkAgainstForward(model, 'inception_v3');
  model.dispose();
});

test('every other layer option exports and matches: grouped, dilated, strided convs with bias and activations, depth multiplier, pools, BN after Add, Flatten, Dense', async () => {
  const ctx = { rng: new Random(9), backend };
  const input = new InputLayer({ shape: [10, 9, 4], name: 'img' }).apply([], ctx);
  const a = new Conv2D({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', groups: 2, activation: 'relu', name: 'grouped' }).apply(
    input,
    ctx,
  );
  const b = new Conv2D({
    filters: 6,
    kernelSize: [3, 2],
    dilationRate: 2,
    padding: 'same',
    strides: 1,
    activation: 'elu',
    name: 'dilated',
  }).apply(input, ctx);
  const bPool = new MaxPooling2D({ poolSize: 3, strides: 2, padding: 'same', name: 'bpool' }).apply(b, ctx);
  const sum = new Add({ name: 'sum' }).apply([a, bPool], ctx);
  const sumBn = new BatchNormalization({ name: 'bn_after_add' }).apply(sum, ctx); // not foldable: Mul + Add
  const d = new DepthwiseConv2D({ kernelSize: 3, padding: 'valid', depthMultiplier: 2, activation: 'relu', name: 'dw' }).apply(sumBn, ctx);
  const dBn = new BatchNormalization({ center: false, name: 'bn_no_beta' }).apply(
    new Conv2D({ filters: 12, kernelSize: 1, useBias: false, name: 'mix' }).apply(d, ctx),
    ctx,
  );
  const s = new SeparableConv2D({
    filters: 8,
    kernelSize: 3,
    padding: 'same',
    useBias: true,
    activation: 'relu',
    intermediateActivation: 'relu',
    depthMultiplier: 2,
    name: 'sep',
  }).apply(dBn, ctx);
  const avg = new AveragePooling2D({ poolSize: 2, strides: 1, padding: 'same', name: 'avg' }).apply(s, ctx);
  const cat = new Concatenate({ name: 'cat' }).apply([avg, s], ctx);
  const gmax = new GlobalMaxPooling2D({ name: 'gmax' }).apply(cat, ctx);
  const flat = new Flatten({ name: 'flat' }).apply(new Activation('softmax', { name: 'channel_softmax' }).apply(cat, ctx), ctx);
  const dense = new Dense({ units: 7, useBias: false, name: 'dense_nobias' }).apply(flat, ctx);
  const dense2 = new Dense({ units: 7, activation: 'relu', name: 'dense_g' }).apply(gmax, ctx);
  const both = new Concatenate({ name: 'cat2' }).apply([dense, dense2], ctx);
  const bn1d = new BatchNormalization({ name: 'bn_1d' }).apply(new Dropout(0.3, { name: 'drop' }).apply(both, ctx), ctx);
  const out = new Dense({ units: 3, activation: 'softmax', name: 'out' }).apply(bn1d, ctx);
  const model = new Model({ inputs: input, outputs: out, name: 'everything' });
  randomizeStatistics(model, 10);
  await checkAgainstForward(model, 'layer zoo');
  model.dispose();
});

test('a model without top exports its feature map in the input layout', async () => {
  const model = noGrad(() => xception({ inputShape: [71, 71, 3], width: 1 / 16, middleBlocks: 0, includeTop: false, seed: 12, backend }));
  randomizeStatistics(model, 13);
  await checkAgainstForward(model, 'no top', 1e-3);
  model.dispose();
});

test('export options are checked', () => {
  const model = noGrad(() => xception({ inputShape: [71, 71, 3], width: 1 / 16, middleBlocks: 0, classes: 2, backend }));
  assert.throws(
    () => exportOnnx(model, { opset: 11 }),
    (e: unknown) => e instanceof OptionError && /opset must be an integer from 13 to 21, got 11/.test(e.message),
  );
  assert.throws(() => exportOnnx(model, { inputLayout: 'chwn' as 'nchw' }), /inputLayout must be 'nchw' or 'nhwc'/);
  const bytes = exportOnnx(model, { opset: 17 });
  assert.ok(bytes.length > 1000);
  model.dispose();
});
