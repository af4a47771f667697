import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { OptionError } from '../../src/core/errors.js';
import { Random } from '../../src/core/random.js';
import { readImagePixels } from '../../src/data/image-file.js';
import { type ImagePreprocessing, kerasPreprocessing, trainingPreprocessing } from '../../src/data/image-preprocessing.js';
import { preprocessPixels } from '../../src/data/transforms.js';
import { xception } from '../../src/index.js';
import { classify, imageInputs, type ImagePrediction, predictImages } from '../../src/predict/predict.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-predict-images-'));
const SHAPE: [number, number, number] = [8, 8, 3];
const CLASSES = 4;
const model = xception({
  backend: referenceBackend,
  stem: 'small',
  inputShape: SHAPE,
  classes: CLASSES,
  width: 1 / 16,
  middleBlocks: 0,
  seed: 3,
});

/** Writes a random-pixel PNG of width×height (lossless, so decoding is exact). */
async function writeImage(name: string, width: number, height: number, seed: number): Promise<string> {
  const r = new Random(seed);
  const file = path.join(tmp, name);
  await sharp(Buffer.from(Array.from({ length: width * height * 3 }, () => r.int(256))), { raw: { width, height, channels: 3 } })
    .png()
    .toFile(file);
  return file;
}

/** Probabilities by class index (predictions come sorted by probability). */
function byIndex(r: ImagePrediction): number[] {
  const p = new Array<number>(CLASSES).fill(NaN);
  for (const c of r.predictions) p[c.index] = c.probability;
  return p;
}

/** What evaluation computes for these files: readImagePixels (no augmentation), scaled, one batch. */
async function evalInputs(files: string[], prep: ImagePreprocessing): Promise<Float32Array> {
  const per = SHAPE[0] * SHAPE[1] * SHAPE[2];
  const x = new Float32Array(files.length * per);
  for (let i = 0; i < files.length; i++) x.set(preprocessPixels(await readImagePixels(files[i]!, SHAPE, prep), prep.scaling), i * per);
  return x;
}

test('same file → same tensor in evaluation and in prediction (center-crop, non-square images)', async () => {
  const files = [await writeImage('wide.png', 30, 12, 1), await writeImage('tall.png', 11, 25, 2)];
  const prep = trainingPreprocessing('xception');
  const x = await evalInputs(files, prep);
  const fed = await imageInputs(files, SHAPE, prep);
  assert.deepEqual(fed.errors, [undefined, undefined]);
  assert.deepEqual(fed.inputs, x, "predictImages' batch builder gives the evaluation tensor");
  const results = await predictImages(model, files, { preprocessing: prep, top: CLASSES, batchSize: 2 });
  const probs = classify(model, x, 2);
  assert.deepEqual(results.map(byIndex), [[...probs.subarray(0, CLASSES)], [...probs.subarray(CLASSES)]]);
  // The preprocessing is honoured: stretching the same files feeds the model something else.
  const stretched = await predictImages(model, files, { preprocessing: kerasPreprocessing('xception'), top: CLASSES, batchSize: 2 });
  assert.notDeepEqual(stretched.map(byIndex), results.map(byIndex));
  assert.notDeepEqual((await imageInputs(files, SHAPE, kerasPreprocessing('xception'))).inputs, x);
});

test('predictImages: results in input order across batches; unreadable images get an error and the others are still classified', async () => {
  const good = [await writeImage('a.png', 9, 9, 3), await writeImage('b.png', 16, 10, 4), await writeImage('c.png', 8, 8, 5)];
  const missing = path.join(tmp, 'missing.png');
  const notImage = path.join(tmp, 'notes.txt');
  fs.writeFileSync(notImage, 'not an image');
  const cut = path.join(tmp, 'cut.png');
  fs.writeFileSync(cut, fs.readFileSync(good[1]!).subarray(0, 60));
  // Batches of 2: [a, missing], [notes, cut] (nothing readable), [b, c].
  const files = [good[0]!, missing, notImage, cut, good[1]!, good[2]!];
  const results = await predictImages(model, files, { batchSize: 2, decodeConcurrency: 1, top: CLASSES });
  assert.deepEqual(
    results.map((r) => r.file),
    files,
  );
  assert.deepEqual(
    results.map((r) => r.error === undefined),
    [true, false, false, false, true, true],
  );
  assert.match(results[1]!.error!, /missing\.png: no such file/);
  assert.match(results[2]!.error!, /notes\.txt: not a readable image/);
  assert.match(results[3]!.error!, /cut\.png: not a readable image/);
  for (const i of [1, 2, 3]) assert.deepEqual(results[i]!.predictions, []);
  // Each readable image is classified as it is on its own.
  const alone = await predictImages(model, good, { batchSize: 1, top: CLASSES });
  for (const [k, i] of [0, 4, 5].entries()) {
    assert.equal(results[i]!.predictions.length, CLASSES);
    const a = byIndex(alone[k]!),
      b = byIndex(results[i]!);
    for (let c = 0; c < CLASSES; c++) assert.ok(Math.abs(a[c]! - b[c]!) < 1e-5, `${files[i]} class ${c}: ${a[c]} vs ${b[c]}`);
  }
  assert.deepEqual(await predictImages(model, []), []);
});

test('predictImages checks its options', async () => {
  const file = await writeImage('opt.png', 8, 8, 6);
  await assert.rejects(predictImages(model, [file], { batchSize: 0 }), /batchSize must be a positive integer, got 0/);
  await assert.rejects(predictImages(model, [file], { decodeConcurrency: 1.5 }), /decodeConcurrency must be a positive integer/);
  await assert.rejects(predictImages(model, [file], { top: -1 }), OptionError);
  await assert.rejects(
    predictImages(model, [file], {
      preprocessing: { resize: 'fit', interpolation: 'nearest', scaling: 'xception' } as unknown as ImagePreprocessing,
    }),
    /predict preprocessing: resize must be one of center-crop, stretch, got "fit"/,
  );
});

test("predictImages decodes batch k+1 while batch k is classified: its decodes are in sharp's worker queue during the forward pass", async () => {
  const files = await Promise.all([0, 1, 2, 3, 4].map((i) => writeImage(`overlap${i}.png`, 40, 30, 10 + i)));
  const inFlight: number[] = [];
  const forward = model.forward.bind(model);
  model.forward = (x) => {
    const { queue, process } = sharp.counters();
    inFlight.push(queue + process);
    return forward(x);
  };
  try {
    const results = await predictImages(model, files, { batchSize: 2, decodeConcurrency: 2 });
    assert.equal(results.filter((r) => r.predictions.length > 0).length, 5);
  } finally {
    model.forward = forward;
  }
  // Batches [0,1] [2,3] [4]: while the first is classified both of the second decode, then the last one, then none.
  assert.deepEqual(inFlight, [2, 1, 0]);
});
