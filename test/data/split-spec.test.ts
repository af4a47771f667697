import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { OptionError } from '../../src/core/errors.js';
import {
  DatasetError,
  FASHION_MNIST_DIR,
  fromArrays,
  loadDataset,
  parseDatasetSpec,
  splitDataset,
  splitIndices,
  subsetDataset,
  validateDataset,
} from '../../src/data/index.js';
import { cifarBatch, makeImages, makeTempDir, writeIdxDataset } from './fixtures.js';

test('stratified split: disjoint, complete, per-class fraction, seeded', () => {
  const labels = Array.from({ length: 100 }, (_, i) => (i < 60 ? 0 : i < 90 ? 1 : 2));
  const ds = fromArrays(new Uint8Array(100), labels, [100, 1, 1, 1], 3);
  const s = splitIndices(ds, { validationFraction: 0.2, seed: 4 });
  assert.equal(s.validation.length, 12 + 6 + 2);
  const all = [...s.train, ...s.validation].sort((a, b) => a - b);
  assert.deepEqual(
    all,
    Array.from({ length: 100 }, (_, i) => i),
  );
  const perClass = [0, 0, 0];
  for (const i of s.validation) perClass[labels[i]!]!++;
  assert.deepEqual(perClass, [12, 6, 2]);
  assert.deepEqual(splitIndices(ds, { validationFraction: 0.2, seed: 4 }), s);
  assert.notDeepEqual(splitIndices(ds, { validationFraction: 0.2, seed: 5 }).validation, s.validation);
  assert.equal(splitIndices(ds, { validationFraction: 0.25, stratify: false }).validation.length, 25);
  assert.throws(() => splitIndices(ds, { validationFraction: 1 }), OptionError);
  assert.throws(() => splitIndices(fromArrays([1], [0], [1, 1, 1, 1], 1), { validationFraction: 0.1 }), /leaves/);
  const { train, validation } = splitDataset(ds, { validationFraction: 0.2, seed: 4 });
  assert.equal(train.count + validation.count, 100);
  validateDataset(train);
  validateDataset(validation);
});

test('fromArrays validates shapes, pixel values and labels; subsetDataset copies', () => {
  const ds = fromArrays(makeImages(3, 2, 2, 3), [0, 1, 2], [3, 2, 2, 3], 3, { classNames: ['a', 'b', 'c'] });
  assert.deepEqual([ds.count, ds.height, ds.width, ds.channels], [3, 2, 2, 3]);
  assert.throws(
    () => fromArrays(new Uint8Array(11), [0, 0, 0], [3, 2, 2, 1], 1),
    (e: unknown) => e instanceof DatasetError && /11 pixel values/.test(e.message),
  );
  assert.throws(() => fromArrays(new Uint8Array(4), [0, 0], [1, 2, 2, 1], 1), /2 labels for 1 images/);
  assert.throws(() => fromArrays(new Uint8Array(4), [0], [1, 2, 2] as never, 1), OptionError);
  assert.throws(() => fromArrays([0, 1, 2, 256], [0], [1, 2, 2, 1], 1), /pixel 3 is 256/);
  assert.throws(() => fromArrays([0, 1, 2, 0.5], [0], [1, 2, 2, 1], 1), /pixel 3 is 0.5/);
  assert.throws(() => fromArrays(new Uint8Array(4), [3], [1, 2, 2, 1], 3), /label 3 at index 0 is out of range \[0, 3\)/);
  assert.throws(() => fromArrays(new Uint8Array(4), [0], [1, 2, 2, 1], 2, { classNames: ['x'] }), /1 class names for 2 classes/);
  const sub = subsetDataset(ds, [2, 0]);
  assert.deepEqual(Array.from(sub.labels), [2, 0]);
  assert.deepEqual(sub.images.subarray(0, 12), ds.images.subarray(24, 36));
  assert.throws(() => subsetDataset(ds, [3]), /out of range/);
});

test('dataset specs: parsing, defaults and clear errors', () => {
  const fm = parseDatasetSpec('fashion-mnist');
  assert.deepEqual([fm.kind, fm.dir], ['fashion-mnist', FASHION_MNIST_DIR]);
  assert.deepEqual([parseDatasetSpec('cifar10:/x/y').kind, parseDatasetSpec('cifar10:/x/y').dir], ['cifar10', '/x/y']);
  assert.equal(parseDatasetSpec('folder:C:/images').dir, 'C:/images');
  assert.equal(parseDatasetSpec('MNIST:/m').kind, 'mnist');
  assert.throws(
    () => parseDatasetSpec('imagenet:/data'),
    (e: unknown) => e instanceof OptionError && /unknown dataset 'imagenet'.*expected one of: fashion-mnist/.test(e.message),
  );
  assert.throws(() => parseDatasetSpec('cifar-10:/d'), /did you mean 'cifar10'/);
  assert.throws(() => parseDatasetSpec('cifar10'), /needs a directory/);
  assert.throws(() => parseDatasetSpec('mnist:'), /empty directory/);
  assert.throws(() => parseDatasetSpec(''), /empty dataset spec/);
});

test('dataset specs load every format from generated files', async () => {
  const { dir, cleanup } = makeTempDir('spec');
  try {
    writeIdxDataset(join(dir, 'mnist'), { gzip: true, trainCount: 5, testCount: 2 });
    assert.equal((await loadDataset(`mnist:${join(dir, 'mnist')}`, 'train')).count, 5);
    assert.equal((await loadDataset(`fashion-mnist:${join(dir, 'mnist')}`, 'test')).classNames?.[9], 'Ankle boot');
    mkdirSync(join(dir, 'c10'));
    for (let i = 1; i <= 5; i++) writeFileSync(join(dir, 'c10', `data_batch_${i}.bin`), cifarBatch(1, 'cifar10'));
    writeFileSync(join(dir, 'c10', 'test_batch.bin'), cifarBatch(2, 'cifar10'));
    assert.equal((await loadDataset(`cifar10:${join(dir, 'c10')}`, 'test')).count, 2);
    mkdirSync(join(dir, 'c100'));
    writeFileSync(join(dir, 'c100', 'train.bin'), cifarBatch(3, 'cifar100'));
    assert.equal((await loadDataset(`cifar100:${join(dir, 'c100')}`, 'train')).classes, 100);

    const png = await sharp({ create: { width: 12, height: 9, channels: 3, background: { r: 10, g: 20, b: 30 } } })
      .png()
      .toBuffer();
    for (const split of ['train', 'val'])
      for (const c of ['cat', 'dog']) {
        mkdirSync(join(dir, 'imgs', split, c), { recursive: true });
        writeFileSync(join(dir, 'imgs', split, c, 'x.png'), png);
      }
    const spec = parseDatasetSpec(`folder:${join(dir, 'imgs')}`);
    const t = await spec.load('test', { imageSize: 5 });
    assert.deepEqual([t.count, t.height, t.classNames], [2, 5, ['cat', 'dog']]);
    assert.equal((await spec.load('train', { imageSize: 4, channels: 1 })).channels, 1);
    // a folder without train/ and test/ is the training set and has no test split
    const flat = join(dir, 'imgs', 'train');
    assert.equal((await loadDataset(`folder:${flat}`, 'train', { imageSize: 3 })).count, 2);
    await assert.rejects(
      () => loadDataset(`folder:${flat}`, 'test'),
      (e: unknown) => e instanceof DatasetError && /no test split/.test(e.message),
    );
    await assert.rejects(
      () => loadDataset(`cifar100:${join(dir, 'nothing')}`, 'train'),
      (e: unknown) => e instanceof DatasetError && e.message.includes(join(dir, 'nothing')),
    );
  } finally {
    cleanup();
  }
});
