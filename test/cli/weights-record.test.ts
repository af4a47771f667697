import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { FASHION_MNIST_CLASS_NAMES } from '../../src/data/dataset.js';
import { openWeights } from '../../src/io/weights-source.js';
import { Progress } from '../../src/train/progress.js';
import { DEFAULT_TRAIN_CONFIG, train } from '../../src/train/trainer.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';
import { runCli } from './helpers.js';

const { dir: tmp, cleanup } = makeTempDir('weights-cli');
after(cleanup);

/** Runs the CLI in-process, capturing stdout and stderr. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runCli(args);
  return { code: r.code, stdout: r.out, stderr: r.err };
}

// A Fashion-MNIST-style run on 8×8 images, and grey images to classify.
const data = path.join(tmp, 'fashion');
writeIdxDataset(data, { trainCount: 16, testCount: 8, h: 8, w: 8 });
const runDir = path.join(tmp, 'run');
await train(
  {
    ...DEFAULT_TRAIN_CONFIG,
    dataset: `fashion-mnist:${data}`,
    modelOptions: { stem: 'small', width: 1 / 16, middleBlocks: 0 },
    epochs: 1,
    batchSize: 8,
    outDir: runDir,
  },
  { progress: new Progress(process.stderr, true) },
);
const images = path.join(tmp, 'images');
fs.mkdirSync(images);
for (const [name, seed] of [
  ['b.png', 3],
  ['a.png', 1],
  ['c.webp', 2],
] as const) {
  const px = Buffer.from(Array.from({ length: 20 * 12 * 3 }, (_, i) => (i * (seed * 7 + 3)) % 256));
  const img = sharp(px, { raw: { width: 20, height: 12, channels: 3 } });
  await (name.endsWith('.png') ? img.png() : img.webp({ lossless: true })).toFile(path.join(images, name));
}
fs.writeFileSync(path.join(images, 'notes.txt'), 'not an image, and not listed');
const imageA = path.join(images, 'a.png');

test('predict --weights RUN prints the Fashion-MNIST class names, with no model flags', async () => {
  const r = await run(['predict', imageA, '--weights', runDir, '--top', '10']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^weights: .*run \(run folder, \d+ weights\)\n/);
  const labels = [...r.stdout.matchAll(/^ +\d+\. \d\.\d{4} {2}(.+) \((\d)\)$/gm)].map((m) => [m[1], Number(m[2])] as const);
  assert.equal(labels.length, 10);
  for (const [label, index] of labels) assert.equal(label, FASHION_MNIST_CLASS_NAMES[index], `class ${index}`);
  assert.ok(r.stdout.includes('Ankle boot (9)'));
});

test('the record survives every format: run, weights.safetensors, exported safetensors and H5 predict alike with no model flags', async () => {
  const st = path.join(tmp, 'exported.safetensors');
  const h5 = path.join(tmp, 'exported.h5');
  for (const [format, out] of [
    ['safetensors', st],
    ['keras-h5', h5],
  ]) {
    const e = await run(['export', '--weights', runDir, '--format', format!, '--out', out!]);
    assert.equal(e.code, 0, e.stderr);
  }
  // Export from an export (no flags either) keeps the record.
  const again = path.join(tmp, 'again.safetensors');
  assert.equal((await run(['export', '--weights', h5, '--format', 'safetensors', '--out', again])).code, 0);
  const expected = (await openWeights(runDir)).record;
  for (const file of [st, h5, again]) assert.deepEqual((await openWeights(file)).record, expected, file);

  const outputs: string[] = [];
  for (const source of [runDir, path.join(runDir, 'weights.safetensors'), st, h5, again]) {
    const r = await run(['predict', imageA, '--weights', source, '--json', '--top', '3']);
    assert.equal(r.code, 0, `${source}: ${r.stderr}`);
    outputs.push(r.stdout);
  }
  for (const o of outputs.slice(1)) assert.equal(o, outputs[0]);
  const labels = (JSON.parse(outputs[0]!) as { predictions: { label: string }[] }).predictions.map((p) => p.label);
  assert.ok(
    labels.every((l) => FASHION_MNIST_CLASS_NAMES.includes(l)),
    labels.join(', '),
  );
});

test('predict DIR classifies its image files in sorted order; flags override the recorded preprocessing', async () => {
  const r = await run(['predict', images, '--weights', runDir, '--json', '--top', '1']);
  assert.equal(r.code, 0, r.stderr);
  const files = r.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { file: string }).file);
  assert.deepEqual(
    files,
    ['a.png', 'b.png', 'c.webp'].map((n) => path.join(images, n)),
  );

  // The recorded centre crop and a stretch see different pixels of the 20×12 image.
  const probs = async (extra: string[]) => {
    const out = await run(['predict', imageA, '--weights', runDir, '--json', '--top', '10', ...extra]);
    assert.equal(out.code, 0, out.stderr);
    return out.stdout;
  };
  const recorded = await probs([]);
  assert.equal(await probs(['--resize', 'center-crop', '--interpolation', 'bilinear']), recorded, 'the record says center-crop, bilinear');
  assert.notEqual(await probs(['--resize', 'stretch']), recorded);
});

test('model flags given with a recorded source must agree with it; --labels gives way to recorded names', async () => {
  const same = await run(['predict', imageA, '--weights', runDir, '--width', '0.0625', '--classes', '10', '--top', '1']);
  assert.equal(same.code, 0, same.stderr);
  const differ = await run(['predict', imageA, '--weights', runDir, '--classes', '5', '--input-shape', '8,8,3']);
  assert.equal(differ.code, 2);
  assert.match(
    differ.stderr,
    /records its model, and these flags differ from it: --input-shape 8,8,3 \(recorded: 8,8,1\), --classes 5 \(recorded: 10\)/,
  );
  const model = await run(['predict', imageA, '--weights', runDir, '--model', 'inception_v3']);
  assert.match(model.stderr, /records model xception, not --model inception_v3/);

  const labelsFile = path.join(tmp, 'labels.txt');
  fs.writeFileSync(labelsFile, Array.from({ length: 10 }, (_, i) => `label${i}`).join('\n'));
  const labelled = await run(['predict', imageA, '--weights', runDir, '--labels', labelsFile, '--top', '1']);
  assert.equal(labelled.code, 0);
  assert.match(labelled.stdout, /--labels is not used: the weights record their class names/);
  assert.doesNotMatch(labelled.stdout, /label\d/);
});

test("eval --weights RUN uses the run's dataset and preprocessing; --checkpoint is the same; names are matched", async () => {
  const a = await run(['eval', '--weights', runDir, '--json']);
  assert.equal(a.code, 0, a.stderr);
  const b = await run(['eval', '--checkpoint', runDir, '--json']);
  const c = await run(['eval', '--weights', path.join(runDir, 'weights.safetensors'), '--json']);
  assert.equal(b.stdout, a.stdout);
  assert.equal(c.stdout, a.stdout);
  const r = JSON.parse(a.stdout) as { testTop1: number };
  assert.ok(r.testTop1 >= 0 && r.testTop1 <= 1);

  const exported = path.join(tmp, 'no-dataset.safetensors');
  assert.equal((await run(['export', '--weights', runDir, '--format', 'safetensors', '--out', exported])).code, 0);
  const noData = await run(['eval', '--weights', exported]);
  assert.equal(noData.code, 2);
  assert.match(noData.stderr, /does not say which dataset it was trained on; pass --dataset SPEC/);
  const withData = await run(['eval', '--weights', exported, '--dataset', `fashion-mnist:${data}`, '--json']);
  assert.equal(withData.stdout, a.stdout);
  assert.match((await run(['eval', '--weights', runDir, '--checkpoint', runDir])).stderr, /not both/);
});
