import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  DatasetError,
  FASHION_MNIST_CLASS_NAMES,
  FASHION_MNIST_DIR,
  loadFashionMnist,
  loadIdxDataset,
  loadMnist,
  parseIdx,
  readIdxFile,
} from '../../src/data/index.js';
import { XceptionError } from '../../src/core/errors.js';
import { idxBytes, makeImages, makeTempDir, pixel, writeFile, writeIdxDataset } from './fixtures.js';

/** Asserts that `fn` rejects with a DatasetError whose message names `file` and matches `re`. */
async function rejectsNaming(fn: () => Promise<unknown>, file: string, re: RegExp): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof DatasetError, `expected DatasetError, got ${e}`);
    assert.ok(e instanceof XceptionError);
    assert.ok(e.message.includes(file), `message should name ${file}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

for (const gzip of [false, true]) {
  test(`IDX dataset loads from ${gzip ? 'gzip' : 'plain'} files, both splits`, async () => {
    const { dir, cleanup } = makeTempDir('idx');
    try {
      writeIdxDataset(dir, { gzip, trainCount: 7, testCount: 2, h: 5, w: 4 });
      const train = await loadIdxDataset(dir, 'train', { name: 'toy' });
      assert.equal(train.name, 'toy/train');
      assert.deepEqual([train.count, train.height, train.width, train.channels, train.classes], [7, 5, 4, 1, 10]);
      assert.deepEqual(Array.from(train.images), Array.from(makeImages(7, 5, 4)));
      assert.deepEqual(Array.from(train.labels), [0, 1, 2, 3, 4, 5, 6]);
      assert.equal(train.images[(3 * 5 + 2) * 4 + 1], pixel(3, 2, 1));
      const t = await loadMnist(dir, 'test');
      assert.equal(t.count, 2);
      assert.equal(t.classNames?.length, 10);
    } finally {
      cleanup();
    }
  });
}

test('gzip is detected by magic bytes, not by the file name', async () => {
  const { dir, cleanup } = makeTempDir('idxmagic');
  try {
    const file = join(dir, 'x-idx1-ubyte');
    writeFileSync(file, gzipSync(idxBytes([3], [1, 2, 3])));
    const arr = await readIdxFile(file);
    assert.deepEqual(arr.shape, [3]);
    assert.deepEqual(Array.from(arr.data), [1, 2, 3]);
  } finally {
    cleanup();
  }
});

test('malformed IDX bytes give clear errors naming the file', () => {
  const f = 'some/file-idx3-ubyte';
  const cases: [Uint8Array, RegExp][] = [
    [Uint8Array.from([0, 0]), /truncated IDX file/],
    [Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0, 0, 0]), /wrong magic number 0x504b0304/],
    [Uint8Array.from([0, 0, 0x07, 1, 0, 0, 0, 1, 9]), /unknown IDX data type/],
    [idxBytes([1], [0, 0, 0, 0], 0x0d), /only unsigned byte/],
    [Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 2]), /header needs 16 bytes/],
    [idxBytes([2, 2, 2], [1, 2, 3, 4, 5, 6, 7]), /truncated IDX file: header declares shape \[2, 2, 2\] = 24 bytes, file has 23/],
    [idxBytes([2], [1, 2, 3]), /1 bytes after the declared shape/],
    [Uint8Array.from([0, 0, 8, 0]), /0 dimensions/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(
      () => parseIdx(bytes, f),
      (e: unknown) => e instanceof DatasetError && e.file === f && e.message.includes(f) && re.test(e.message),
      `case ${re}`,
    );
  }
});

test('a huge declared size in a small file is rejected before allocating (plain and gzip)', async () => {
  const { dir, cleanup } = makeTempDir('idxhuge');
  try {
    const header = Buffer.from([0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    const plain = writeFile(join(dir, 'train-images-idx3-ubyte'), header);
    await rejectsNaming(() => readIdxFile(plain), plain, /truncated IDX file/);
    const gz = writeFile(join(dir, 'other-idx3-ubyte'), header, true);
    await rejectsNaming(() => readIdxFile(gz), gz, /truncated IDX file/);
  } finally {
    cleanup();
  }
});

test('truncated or corrupt gzip data is a DatasetError naming the file', async () => {
  const { dir, cleanup } = makeTempDir('idxgz');
  try {
    const full = gzipSync(idxBytes([50, 10, 10], makeImages(50, 10, 10)));
    const file = join(dir, 'cut-idx3-ubyte.gz');
    writeFileSync(file, full.subarray(0, full.length >> 1));
    await rejectsNaming(() => readIdxFile(file), file, /gzip data is truncated or corrupt/);
    const file2 = join(dir, 'garbled-idx3-ubyte.gz');
    const garbled = Buffer.from(full);
    for (let i = 20; i < 60; i++) garbled[i] = 0xaa;
    writeFileSync(file2, garbled);
    await rejectsNaming(() => readIdxFile(file2), file2, /gzip data is truncated or corrupt/);
  } finally {
    cleanup();
  }
});

test('label count disagreeing with the image count names the label file', async () => {
  const { dir, cleanup } = makeTempDir('idxcount');
  try {
    writeIdxDataset(dir, { trainCount: 4 });
    const labels = writeFile(join(dir, 'train-labels-idx1-ubyte'), idxBytes([3], [0, 1, 2]));
    await rejectsNaming(() => loadIdxDataset(dir, 'train'), labels, /label count 3 disagrees with image count 4/);
  } finally {
    cleanup();
  }
});

test('a label out of range names the label file and the index', async () => {
  const { dir, cleanup } = makeTempDir('idxrange');
  try {
    writeIdxDataset(dir, { trainCount: 3 });
    const labels = writeFile(join(dir, 'train-labels-idx1-ubyte'), idxBytes([3], [0, 10, 2]));
    await rejectsNaming(() => loadIdxDataset(dir, 'train'), labels, /label 10 at index 1 is out of range \[0, 10\)/);
  } finally {
    cleanup();
  }
});

test('images with the wrong rank are rejected', async () => {
  const { dir, cleanup } = makeTempDir('idxrank');
  try {
    writeIdxDataset(dir, { trainCount: 3 });
    const images = writeFile(join(dir, 'train-images-idx3-ubyte'), idxBytes([3, 4], makeImages(3, 4, 1)));
    await rejectsNaming(() => loadIdxDataset(dir, 'train'), images, /must have 3 dimensions/);
  } finally {
    cleanup();
  }
});

test('missing directory or files: the error lists the files looked for and how to install', async () => {
  const { dir, cleanup } = makeTempDir('idxmissing');
  try {
    const missingDir = join(dir, 'nope');
    await rejectsNaming(
      () => loadFashionMnist('train', missingDir),
      missingDir,
      /train-images-idx3-ubyte\.gz.*apt-get install dataset-fashion-mnist/s,
    );
    writeIdxDataset(dir);
    await loadIdxDataset(dir, 'train');
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), Buffer.alloc(0));
    // an empty file exists: that is a malformed file, not a missing one
    await rejectsNaming(() => loadIdxDataset(dir, 'test'), join(dir, 't10k-labels-idx1-ubyte'), /truncated/);
    const only = join(dir, 'only');
    writeIdxDataset(only);
    rmSync(join(only, 't10k-images-idx3-ubyte'));
    await rejectsNaming(() => loadMnist(only, 'test'), only, /no image file for split 'test'; looked for .*t10k-images-idx3-ubyte\.gz/);
  } finally {
    cleanup();
  }
});

const haveFashion = existsSync(join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
test('real Fashion-MNIST from the Debian package loads (60000/10000, 28×28×1, labels 0..9)', {
  skip: haveFashion ? false : `${FASHION_MNIST_DIR} is absent (apt-get install dataset-fashion-mnist)`,
}, async () => {
  const train = await loadFashionMnist('train');
  const test_ = await loadFashionMnist('test');
  assert.deepEqual([train.count, train.height, train.width, train.channels, train.classes], [60000, 28, 28, 1, 10]);
  assert.equal(test_.count, 10000);
  assert.deepEqual(train.classNames, FASHION_MNIST_CLASS_NAMES);
  for (const ds of [train, test_]) {
    const perClass = new Array(10).fill(0);
    for (const l of ds.labels) perClass[l]++;
    // Fashion-MNIST is balanced: 6000 (train) or 1000 (test) images per class.
    assert.deepEqual(perClass, new Array(10).fill(ds.count / 10));
  }
  let sum = 0;
  for (const p of test_.images) sum += p;
  const mean = sum / test_.images.length;
  assert.ok(mean > 60 && mean < 80, `mean pixel ${mean} (Fashion-MNIST's is about 73)`);
});
