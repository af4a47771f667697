import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { noGrad } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import { tensor } from '../../src/core/creation.js';
import { saveWeights } from '../../src/io/model-weights.js';
import { buildModel, preprocessInput } from '../../src/models/registry.js';
import { decodePredictions, imagenetClassNames, loadImage, predictImages } from '../../src/predict/predict.js';
import type { Model } from '../../src/nn/model.js';
import { Progress } from '../../src/train/progress.js';
import { DEFAULT_TRAIN_CONFIG, train } from '../../src/train/trainer.js';
import { openWeights } from '../../src/io/weights-source.js';
import { writeIdxDataset } from '../data/fixtures.js';
import { MNIST_CLASS_NAMES } from '../../src/data/dataset.js';
import { runCli } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-cli-'));
const MODEL_ARGS = ['--width', '0.0625', '--middle-blocks', '1'];
const buildSmall = () => noGrad(() => buildModel('xception', { width: 1 / 16, middleBlocks: 1, seed: 21 }));

/** Runs the CLI in-process, capturing stdout and stderr. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runCli(args);
  return { code: r.code, stdout: r.out, stderr: r.err };
}

/** Weights that give a spread of probabilities (not the near-uniform output of a fresh model). */
function spreadWeights(model: Model): void {
  const r = new Random(5);
  for (const v of model.weights) {
    if (v.name === 'predictions/kernel') v.setData(Float32Array.from({ length: v.size }, () => (r.uniform() - 0.5) * 2000));
    if (v.name === 'predictions/bias') v.setData(Float32Array.from({ length: v.size }, () => (r.uniform() - 0.5) * 4));
  }
}

async function makePng(file: string, width: number, height: number, seed: number): Promise<void> {
  const r = new Random(seed);
  const px = Buffer.alloc(width * height * 3);
  // Smooth gradients plus noise: a plausible photo-like image, different at every pixel.
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) {
        px[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(((x * (c + 1) + y * (3 - c)) % 256) * 0.8 + r.uniform() * 50)));
      }
  await sharp(px, { raw: { width, height, channels: 3 } })
    .png()
    .toFile(file);
}

const image299 = path.join(tmp, 'photo299.png');
const imageOdd = path.join(tmp, 'odd_size.png');
await makePng(image299, 299, 299, 1);
await makePng(imageOdd, 331, 240, 2);
const weightsSt = path.join(tmp, 'small.safetensors');
const weightsH5 = path.join(tmp, 'small.h5');
{
  const m = buildSmall();
  spreadWeights(m);
  await saveWeights(m, weightsSt, 'safetensors');
  await saveWeights(m, weightsH5, 'keras-h5');
  m.dispose();
}

test('the ImageNet class names ship with the package, and decodePredictions ranks like Keras', () => {
  assert.equal(imagenetClassNames().length, 1000);
  assert.equal(imagenetClassNames()[0], 'tench, Tinca tinca');
  assert.equal(imagenetClassNames()[999], 'toilet tissue, toilet paper, bathroom tissue');
  assert.ok(imagenetClassNames().every((n) => typeof n === 'string' && n.length > 0));
  const probs = new Float32Array(2000);
  probs[3] = 0.5;
  probs[7] = 0.3;
  probs[1] = 0.3;
  probs[1000 + 999] = 0.9;
  const [a, b] = decodePredictions(tensor(probs, [2, 1000]), 3);
  assert.deepEqual(
    a!.map((p) => p.index),
    [3, 1, 7],
    'ties go to the lower index',
  );
  assert.equal(a![0]!.label, 'tiger shark, Galeocerdo cuvieri');
  assert.equal(a![0]!.probability, 0.5);
  assert.equal(b![0]!.index, 999);
  assert.deepEqual(
    decodePredictions([0.1, 0.7, 0.2], 2).map((r) => r.map((p) => p.label)),
    [['1', '2']],
    'other class counts: the index',
  );
  assert.deepEqual(decodePredictions([0.1, 0.7, 0.2], 1, { labels: ['a', 'b', 'c'] })[0]![0]!.label, 'b');
  assert.throws(() => decodePredictions([0.1, 0.9], 1, { labels: ['x'] }), /1 labels for 2 classes/);
  assert.throws(() => decodePredictions([0.1], 0), /top must be a positive integer/);
});

test('a 299×299 PNG predicted through the CLI gives the same probabilities as the API (safetensors and Keras H5 weights)', async () => {
  const model = buildSmall();
  spreadWeights(model);
  const api = await predictImages(model, [image299, imageOdd], { top: 5 });
  // The API is the Keras pipeline spelled out: load_img → preprocess_input → predict → decode.
  const pixels = await loadImage(image299, [299, 299, 3]);
  const x = preprocessInput(pixels);
  const probs = noGrad(() => model.forward(tensor(x, [1, 299, 299, 3])).data());
  // On the native backend predictImages runs a compiled plan (BN folded, fused ops): the same
  // classes, probabilities equal up to float32 rounding of a different summation order.
  const expected = decodePredictions(probs, 5)[0]!;
  assert.deepEqual(
    api[0]!.predictions.map((p) => p.index),
    expected.map((p) => p.index),
  );
  api[0]!.predictions.forEach((p, i) =>
    assert.ok(Math.abs(p.probability - expected[i]!.probability) <= 1e-5, `${p.probability} vs ${expected[i]!.probability}`),
  );
  assert.ok(
    api[0]!.predictions[0]!.probability > 0.05 && api[0]!.predictions[0]!.probability < 0.99,
    `spread: ${api[0]!.predictions[0]!.probability}`,
  );

  const st = await run(['predict', image299, imageOdd, '--weights', weightsSt, '--top', '5', '--json']);
  assert.equal(st.code, 0, st.stderr);
  assert.equal(st.stderr, '', 'weights given: no warning');
  const lines = st.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(lines, api, 'the safetensors file rebuilt the model from its recorded options');

  const h5 = await run(['predict', image299, imageOdd, '--weights', weightsH5, ...MODEL_ARGS, '--json']);
  assert.equal(h5.code, 0, h5.stderr);
  assert.deepEqual(
    h5.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l)),
    api,
  );

  const text = await run(['predict', image299, '--weights', weightsSt, '--top', '2']);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /^weights: .*small\.safetensors \(safetensors, \d+ weights\)\n/);
  const top = api[0]!.predictions[0]!;
  assert.ok(text.stdout.includes(`   1. ${top.probability.toFixed(4)}  ${top.label} (${top.index})`), text.stdout);
  model.dispose();
});

test('without --weights, predict says clearly that the model is random', async () => {
  const r = await run(['predict', image299, ...MODEL_ARGS, '--top', '1']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^warning: no --weights given: the model is randomly initialised/);
  const j = await run(['predict', image299, ...MODEL_ARGS, '--top', '1', '--json']);
  assert.match(j.stderr, /warning: no --weights given/);
  const obj = JSON.parse(j.stdout);
  assert.deepEqual(Object.keys(obj), ['file', 'predictions']);
  assert.deepEqual(Object.keys(obj.predictions[0]), ['index', 'label', 'probability']);
});

test("export --format onnx: onnxruntime on the preprocessed PNG gives the API's probabilities", async () => {
  const onnxFile = path.join(tmp, 'small.onnx');
  const r = await run(['export', '--weights', weightsSt, '--format', 'onnx', '--out', onnxFile]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*small\.onnx: ONNX opset 13, input NCHW \[batch, 3, 299, 299\], BN folded/);
  const model = buildSmall();
  spreadWeights(model);
  const [api] = await predictImages(model, [image299], { top: 1000 });
  const x = preprocessInput(await loadImage(image299, [299, 299, 3]));
  const nchw = new Float32Array(x.length);
  for (let i = 0; i < 299 * 299; i++) for (let c = 0; c < 3; c++) nchw[c * 299 * 299 + i] = x[i * 3 + c]!;
  const session = await ort.InferenceSession.create(onnxFile);
  const out = (await session.run({ input: new ort.Tensor('float32', nchw, [1, 3, 299, 299]) }))['output']!.data as Float32Array;
  await session.release();
  let maxDiff = 0;
  for (const p of api!.predictions) maxDiff = Math.max(maxDiff, Math.abs(out[p.index]! - p.probability));
  assert.ok(maxDiff <= 1e-4, `max abs difference ${maxDiff}`);

  const kept = path.join(tmp, 'kept.onnx');
  assert.equal(
    (
      await run([
        'export',
        '--weights',
        weightsSt,
        '--format',
        'onnx',
        '--no-fold-bn',
        '--input-layout',
        'nhwc',
        '--opset',
        '17',
        '--out',
        kept,
      ])
    ).code,
    0,
  );
  const s2 = await ort.InferenceSession.create(kept);
  const out2 = (await s2.run({ input: new ort.Tensor('float32', x, [1, 299, 299, 3]) }))['output']!.data as Float32Array;
  await s2.release();
  for (const p of api!.predictions) assert.ok(Math.abs(out2[p.index]! - p.probability) <= 1e-4);
  model.dispose();
});

test('export to keras-h5 and safetensors round-trips through predict; a run-less safetensors export keeps the model', async () => {
  const h5 = path.join(tmp, 'exported.h5');
  const st = path.join(tmp, 'exported.safetensors');
  assert.equal((await run(['export', '--weights', weightsSt, '--format', 'keras-h5', '--out', h5])).code, 0);
  // The seed is one of the recorded options (the initialization the weights replaced).
  const r = await run([
    'export',
    '--weights',
    h5,
    ...MODEL_ARGS,
    '--seed',
    '21',
    '--weights-mode',
    'order',
    '--format',
    'safetensors',
    '--out',
    st,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*exported\.safetensors: safetensors weights of xception/);
  assert.deepEqual(fs.readFileSync(st), fs.readFileSync(weightsSt), 'safetensors → H5 → safetensors is byte-identical');
});

test('predict and export errors are clear', async () => {
  const notImage = path.join(tmp, 'notes.txt');
  fs.writeFileSync(notImage, 'not an image');
  const emptyDir = path.join(tmp, 'empty');
  fs.mkdirSync(emptyDir, { recursive: true });
  const bareH5 = path.join(tmp, 'bare.h5');
  const m = buildSmall();
  await saveWeights(m, bareH5, 'keras-h5', null);
  m.dispose();
  const cases: [string[], RegExp][] = [
    [['predict'], /predict needs at least one IMAGE/],
    [['predict', path.join(tmp, 'missing.png')], /missing\.png: no such file/],
    [['predict', emptyDir], /empty: a folder with no image files/],
    [['predict', image299, '--weights', path.join(tmp, 'nope.h5')], /nope\.h5: no such file/],
    [['predict', image299, '--weights', notImage], /notes\.txt: not a weight file: neither HDF5/],
    [
      ['predict', image299, '--weights', bareH5],
      /bare\.h5: does not fit the model the flags describe \(xception\):\n {2}the file's block1_conv1 has 2 filters, the model's 32; pass --width 0\.0625\n {2}the file has 1 middle-flow block, the model 8; pass --middle-blocks 1\n/,
    ],
    [
      ['predict', image299, '--weights', weightsH5, '--width', '0.5'],
      /records its model, and these flags differ from it: --width 0\.5 \(recorded: 0\.0625\)/,
    ],
    [['predict', image299, '--no-top', ...MODEL_ARGS], /not class scores: predict needs the classifier/],
    [['predict', image299, '--top', '0'], /--top must be an integer ≥ 1/],
    [['predict', image299, '--weights-mode', 'order'], /--weights-mode needs --weights/],
    [['export', '--format', 'tflite', '--out', 'x'], /--format must be one of onnx, keras-h5, safetensors, got 'tflite'/],
    [['export', '--format', 'onnx'], /export needs --out FILE/],
    [['export', '--out', 'x.onnx'], /export needs --format/],
    [['export', '--format', 'keras-h5', '--no-fold-bn', '--out', 'x.h5'], /--no-fold-bn applies only to --format onnx/],
    [['export', '--format', 'onnx', '--opset', '9', '--out', 'x.onnx'], /--opset must be an integer ≥ 13/],
    [['export', '--weights', tmp, '--format', 'onnx', '--out', 'x.onnx'], /not a run folder written by `xception train`/],
  ];
  for (const [args, pattern] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit code`);
    assert.match(r.stderr, pattern, args.join(' '));
  }
  // An unreadable image is reported and the others still classified; the exit code says so.
  const mixed = await run(['predict', notImage, image299, ...MODEL_ARGS, '--json']);
  assert.equal(mixed.code, 1);
  assert.match(mixed.stderr, /notes\.txt: not a readable image \(JPEG, PNG, WebP, …\)/);
  assert.equal(mixed.stdout.trim().split('\n').length, 1);
  assert.equal(JSON.parse(mixed.stdout).file, image299);
  for (const cmd of ['predict', 'export']) {
    const h = await run([cmd, '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, new RegExp(`^Usage: xception ${cmd}`));
  }
  assert.match((await run(['--help'])).stdout, /predict .*\n.*export /);
});

test("--weights accepts a run folder written by train: predict (grey images) and export use the run's model", async () => {
  const data = path.join(tmp, 'mnist');
  writeIdxDataset(data, { trainCount: 16, testCount: 8, h: 28, w: 28 });
  const runDir = path.join(tmp, 'run');
  await train(
    {
      ...DEFAULT_TRAIN_CONFIG,
      dataset: `mnist:${data}`,
      modelOptions: { stem: 'small', width: 1 / 16, middleBlocks: 0 },
      epochs: 1,
      batchSize: 8,
      outDir: runDir,
    },
    { progress: new Progress(process.stderr, true) },
  );
  const grey = path.join(tmp, 'digit.png');
  await sharp(Buffer.from(Array.from({ length: 40 * 30 }, (_, i) => (i * 13) % 256)), { raw: { width: 40, height: 30, channels: 1 } })
    .png()
    .toFile(grey);

  const cli = await run(['predict', grey, '--weights', runDir, '--top', '3', '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const source = await openWeights(runDir);
  const model = source.buildModel();
  await source.loadInto(model);
  assert.deepEqual(model.inputShape, [28, 28, 1]);
  // The run records its class names and preprocessing; predict uses both with no flags.
  const record = source.record!;
  assert.deepEqual(record.preprocessing, { resize: 'center-crop', interpolation: 'bilinear', scaling: 'xception' });
  const api = await predictImages(model, [grey], { top: 3, preprocessing: record.preprocessing!, labels: record.classNames! });
  assert.deepEqual(JSON.parse(cli.stdout), api[0]);
  assert.equal(api[0]!.predictions[0]!.label, MNIST_CLASS_NAMES[api[0]!.predictions[0]!.index], 'labels are the recorded class names');

  const onnxFile = path.join(tmp, 'run.onnx');
  const e = await run(['export', '--weights', runDir, '--format', 'onnx', '--out', onnxFile]);
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stdout, /input NCHW \[batch, 1, 28, 28\]/);
  model.dispose();
});
