import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OptionError } from '../../src/core/errors.js';
import { DatasetError } from '../../src/data/errors.js';
import type { Batch, BatchLoader } from '../../src/data/loader.js';
import { listImageFolder } from '../../src/data/folder.js';
import type { ReadPixels } from '../../src/data/stream-loader.js';
import { openEvaluationData, openTrainingData, type TrainingDataOptions } from '../../src/data/training-data.js';
import { makeTempDir, writeIdxDataset, writeImageFolder } from './fixtures.js';

const noAugment = { cropPadding: 0, flip: false, randomResizedCrop: false };

function options(dataset: string, over: Partial<TrainingDataOptions> = {}): TrainingDataOptions {
  return { dataset, scaling: 'xception', augment: noAugment, validationFraction: 0, seed: 3, batchSize: 4, imageSize: 4, ...over };
}

async function labelsOf(loader: BatchLoader): Promise<number[]> {
  const out: number[] = [];
  for await (const b of loader.epochBatches() as AsyncIterable<Batch>) out.push(...b.y);
  return out;
}

/** Which files a loader reads in one epoch (through a recording reader). */
function recordingReader(seen: string[]): ReadPixels {
  return async (file, shape) => {
    seen.push(file);
    return new Uint8Array(shape[0] * shape[1] * shape[2]);
  };
}

test('folder DIR/<class>/… alone: no evaluation unless --validation, which holds out a seeded stratified share', async () => {
  const { dir, cleanup } = makeTempDir('td-single');
  try {
    await writeImageFolder(dir, { cat: 8, dog: 4, owl: 4 });
    const plain = await openTrainingData(options(`folder:${dir}`, { imageSize: undefined }));
    assert.equal(plain.evaluation, null);
    assert.equal(plain.test, null);
    assert.deepEqual(plain.classNames, ['cat', 'dog', 'owl']);
    assert.deepEqual(plain.sampleShape, [299, 299, 3]);
    assert.match(
      plain.description,
      /16 training images; 3 classes \(cat, dog, owl\); 299×299 RGB \(default; --image-size N\); center-crop, bilinear/,
    );
    assert.equal(plain.notes.length, 1);
    assert.match(plain.notes[0]!, /no evaluation split.*--validation 0\.2.*\/train\/<class>.*\/test\/<class>/);

    const seenTrain: string[] = [],
      seenVal: string[] = [];
    const held = await openTrainingData(options(`folder:${dir}`, { validationFraction: 0.25, readPixels: recordingReader(seenTrain) }));
    assert.equal(held.evalName, 'validation');
    assert.equal(held.test, null);
    assert.equal(held.train.samples, 12);
    assert.equal(held.evaluation!.samples, 4);
    assert.match(held.description, /12 training images \+ 4 held out for validation \(25% of each class, seeded\)/);
    // Stratified: 2 cats, 1 dog, 1 owl held out; no image in both.
    assert.deepEqual((await labelsOf(held.evaluation!)).sort(), [0, 0, 1, 2]);
    await labelsOf(held.train);
    const again = await openTrainingData(options(`folder:${dir}`, { validationFraction: 0.25, readPixels: recordingReader(seenVal) }));
    await labelsOf(again.evaluation!);
    assert.equal(seenVal.length, 4);
    assert.equal(new Set([...seenTrain, ...seenVal]).size, 16, 'validation images are not trained on');
  } finally {
    cleanup();
  }
});

test('folder DIR/train + DIR/test: classes matched by name; a class training lacks is an error, one it has extra is a note', async () => {
  const { dir, cleanup } = makeTempDir('td-split');
  try {
    await writeImageFolder(join(dir, 'train'), { ant: 3, bee: 3, cow: 3 });
    await writeImageFolder(join(dir, 'val'), { ant: 2, cow: 2 });
    const data = await openTrainingData(options(`folder:${dir}`));
    assert.equal(data.evalName, 'test');
    assert.equal(data.evaluation!.samples, 4);
    // cow is class 2 in training, though it is the second class of the test folder.
    assert.deepEqual(await labelsOf(data.evaluation!), [0, 0, 2, 2]);
    assert.match(data.notes.join('\n'), /test split has no images of 1 training class \(bee\)/);
    assert.match(data.description, /9 training images, 4 test; 3 classes \(ant, bee, cow\); 4×4 RGB; center-crop/);

    // With --validation, validation comes from train and the test split is the final evaluation.
    const withVal = await openTrainingData(options(`folder:${dir}`, { validationFraction: 1 / 3 }));
    assert.equal(withVal.evalName, 'validation');
    assert.equal(withVal.evaluation!.samples, 3);
    assert.equal(withVal.test!.samples, 4);
    assert.deepEqual(await labelsOf(withVal.test!), [0, 0, 2, 2]);

    await writeImageFolder(join(dir, 'val'), { emu: 1 });
    await assert.rejects(
      openTrainingData(options(`folder:${dir}`)),
      (e: unknown) =>
        e instanceof DatasetError &&
        /evaluation data has a class the training split lacks: 'emu'.*add them to/.test(e.message) &&
        e.file === join(dir, 'val'),
    );
  } finally {
    cleanup();
  }
});

test('folder data: one class, a test split without train/, and --crop-padding are clear errors', async () => {
  const { dir, cleanup } = makeTempDir('td-errors');
  try {
    await writeImageFolder(join(dir, 'one'), { solo: 3 });
    await assert.rejects(
      openTrainingData(options(`folder:${join(dir, 'one')}`)),
      (e: unknown) => e instanceof DatasetError && /only one class folder \('solo'\)/.test(e.message),
    );
    await writeImageFolder(join(dir, 'lopsided', 'test'), { a: 1, b: 1 });
    await assert.rejects(openTrainingData(options(`folder:${join(dir, 'lopsided')}`)), /has .*test but no train\/ beside it/);
    await writeImageFolder(join(dir, 'two'), { a: 2, b: 2 });
    await assert.rejects(
      openTrainingData(options(`folder:${join(dir, 'two')}`, { augment: { ...noAugment, cropPadding: 2 } })),
      (e: unknown) => e instanceof OptionError && /--random-resized-crop/.test(e.message),
    );
    // --limit-train keeps every class: N images spread over the sorted listing.
    const limited = await openTrainingData(options(`folder:${join(dir, 'two')}`, { limitTrain: 2 }));
    assert.deepEqual((await labelsOf(limited.train)).sort(), [0, 1]);
  } finally {
    cleanup();
  }
});

test('listing a folder of 5,000 files reads names only: fast, and no file is opened', async () => {
  const { dir, cleanup } = makeTempDir('td-many');
  try {
    for (const c of ['x', 'y']) {
      mkdirSync(join(dir, c));
      for (let i = 0; i < 2500; i++) writeFileSync(join(dir, c, `${i}.jpg`), 'not a jpeg at all');
    }
    const seen: string[] = [];
    const t0 = performance.now();
    const data = await openTrainingData(options(`folder:${dir}`, { readPixels: recordingReader(seen) }));
    const ms = performance.now() - t0;
    assert.equal(data.train.samples, 5000);
    assert.equal(seen.length, 0, 'nothing decoded before the first batch is asked for');
    assert.ok(ms < 2000, `listing took ${ms.toFixed(0)} ms`);
    const listing = await listImageFolder(dir);
    assert.equal(listing.files[0], join(dir, 'x', '0.jpg'));
    assert.equal(listing.labels[4999], 1);
  } finally {
    cleanup();
  }
});

test('built-in datasets keep their in-memory loaders and class names', async () => {
  const { dir, cleanup } = makeTempDir('td-idx');
  try {
    writeIdxDataset(dir, { trainCount: 40, testCount: 6, h: 4, w: 4 });
    const data = await openTrainingData(options(`mnist:${dir}`, { imageSize: undefined, validationFraction: 0.25 }));
    assert.deepEqual(data.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.deepEqual(data.sampleShape, [4, 4, 1]);
    assert.equal(data.evalName, 'validation');
    assert.equal(data.test!.samples, 6);
    assert.equal(data.train.samples + data.evaluation!.samples, 40);
    // Evaluation of a model with class names: the dataset's labels become the model's indices.
    const shuffledNames = ['9', '8', '7', '6', '5', '4', '3', '2', '1', '0'];
    const named = await openEvaluationData({
      dataset: `mnist:${dir}`,
      shape: [4, 4, 1],
      scaling: 'xception',
      classes: 10,
      classNames: shuffledNames,
      batchSize: 6,
    });
    assert.deepEqual(await labelsOf(named.loader), [9, 8, 7, 6, 5, 4], 'test labels 0..5 by name');
    await assert.rejects(
      openEvaluationData({ dataset: `mnist:${dir}`, shape: [4, 4, 1], scaling: 'xception', classes: 3, batchSize: 6 }),
      /the model has 3 outputs/,
    );
    assert.match(
      data.description,
      /^data: mnist \(.*\): 30 training images \+ 10 held out for validation .*, 6 test; 10 classes \(0, 1, 2, 3, …\); 4×4 \(the dataset's size\), grey; augmentation none$/,
    );
  } finally {
    cleanup();
  }
});

test("evaluation data: a folder test split streamed with classes matched to the model's names", async () => {
  const { dir, cleanup } = makeTempDir('td-eval');
  try {
    await writeImageFolder(join(dir, 'train'), { ant: 1, bee: 1, cow: 1 });
    await writeImageFolder(join(dir, 'test'), { bee: 1, cow: 2 });
    const common = { dataset: `folder:${dir}`, shape: [4, 4, 3] as const, scaling: 'xception' as const, classes: 3, batchSize: 2 };
    const named = await openEvaluationData({ ...common, classNames: ['ant', 'bee', 'cow'] });
    assert.deepEqual(await labelsOf(named.loader), [1, 2, 2]);
    assert.deepEqual(await labelsOf((await openEvaluationData(common)).loader), [0, 1, 1], "without names: the folder's own order");
    await assert.rejects(
      openEvaluationData({ ...common, classNames: ['ant', 'cow', 'dog'] }),
      /a class the model lacks: 'bee' \(the model's classes: ant, cow, dog\); evaluate on data with the model's classes only/,
    );
    const whole = await openEvaluationData({ ...common, dataset: `folder:${join(dir, 'train')}` });
    assert.deepEqual(await labelsOf(whole.loader), [0, 1, 2], 'a folder of class folders is evaluated whole');
    assert.match(whole.description, /^every image of /);
    const trainOnly = join(dir, 'only');
    await writeImageFolder(join(trainOnly, 'train'), { ant: 1, bee: 1 });
    await assert.rejects(openEvaluationData({ ...common, dataset: `folder:${trainOnly}` }), /has train\/ but no test split to evaluate on/);
  } finally {
    cleanup();
  }
});
