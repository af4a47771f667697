import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatasetError, cifarRecordSize, loadCifar10, loadCifar100, parseCifarBatch } from '../../src/data/index.js';
import { cifarBatch, makeTempDir, pixel } from './fixtures.js';

async function rejectsNaming(fn: () => Promise<unknown>, file: string, re: RegExp): Promise<void> {
  await assert.rejects(
    fn,
    (e: unknown) => (e instanceof DatasetError && e.message.includes(file) && re.test(e.message)) || assert.fail(`${e}`),
  );
}

function writeCifar10(dir: string, perBatch = 3, withNames = true): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 1; i <= 5; i++) writeFileSync(join(dir, `data_batch_${i}.bin`), cifarBatch(perBatch, 'cifar10', (i - 1) * perBatch));
  writeFileSync(join(dir, 'test_batch.bin'), cifarBatch(2, 'cifar10', 100));
  if (withNames) writeFileSync(join(dir, 'batches.meta.txt'), 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n');
}

test('CIFAR-10: five train batches concatenated in order, planar pixels become NHWC, class names read', async () => {
  const { dir, cleanup } = makeTempDir('cifar10');
  try {
    writeCifar10(dir);
    const train = await loadCifar10(dir, 'train');
    assert.deepEqual([train.count, train.height, train.width, train.channels, train.classes], [15, 32, 32, 3, 10]);
    assert.equal(train.classNames?.[9], 'truck');
    // record r of batch i was written with offset (i−1)·3, so sample k carries pixel(k, …)
    for (const [k, y, x, c] of [
      [0, 0, 0, 0],
      [4, 5, 7, 2],
      [14, 31, 31, 1],
      [9, 16, 3, 0],
    ] as const) {
      assert.equal(train.images[((k * 32 + y) * 32 + x) * 3 + c], pixel(k, y, x, c), `sample ${k} (${y},${x},${c})`);
    }
    assert.deepEqual(
      Array.from(train.labels),
      Array.from({ length: 15 }, (_, k) => ((k % 3) * 3 + Math.floor(k / 3) * 3) % 10),
    );
    const t = await loadCifar10(dir, 'test');
    assert.equal(t.count, 2);
    assert.equal(t.images[((1 * 32 + 2) * 32 + 3) * 3 + 1], pixel(101, 2, 3, 1));
  } finally {
    cleanup();
  }
});

test('CIFAR-10: files inside the archive folder cifar-10-batches-bin are found; without a names file, the official names', async () => {
  const { dir, cleanup } = makeTempDir('cifar10n');
  try {
    writeCifar10(join(dir, 'cifar-10-batches-bin'), 1, false);
    const train = await loadCifar10(dir, 'train');
    assert.equal(train.count, 5);
    assert.deepEqual(train.classNames, ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
  } finally {
    cleanup();
  }
});

test('CIFAR-100: fine labels are used, not coarse; fine_label_names.txt read', async () => {
  const { dir, cleanup } = makeTempDir('cifar100');
  try {
    writeFileSync(join(dir, 'train.bin'), cifarBatch(40, 'cifar100'));
    writeFileSync(join(dir, 'test.bin'), cifarBatch(5, 'cifar100'));
    writeFileSync(join(dir, 'fine_label_names.txt'), Array.from({ length: 100 }, (_, i) => `class${i}`).join('\n'));
    const train = await loadCifar100(dir, 'train');
    assert.deepEqual([train.count, train.classes, train.channels], [40, 100, 3]);
    assert.deepEqual(
      Array.from(train.labels),
      Array.from({ length: 40 }, (_, r) => (r * 3) % 100),
    );
    assert.equal(train.classNames?.[42], 'class42');
    assert.equal(train.images[((7 * 32 + 1) * 32 + 30) * 3 + 2], pixel(7, 1, 30, 2));
    assert.equal((await loadCifar100(dir, 'test')).count, 5);
    writeFileSync(join(dir, 'fine_label_names.txt'), 'a\nb\n');
    await rejectsNaming(() => loadCifar100(dir, 'train'), join(dir, 'fine_label_names.txt'), /lists 2 names, expected 100/);
  } finally {
    cleanup();
  }
});

test('a CIFAR file whose size is not a multiple of the record size names the file', async () => {
  const { dir, cleanup } = makeTempDir('cifarsize');
  try {
    writeCifar10(dir, 2);
    const bad = join(dir, 'data_batch_3.bin');
    writeFileSync(bad, cifarBatch(2, 'cifar10').subarray(0, 2 * 3073 - 5));
    await rejectsNaming(
      () => loadCifar10(dir, 'train'),
      bad,
      /not a multiple of the cifar10 record size 3073 \(1 whole records and 3068 extra bytes\)/,
    );
    // A CIFAR-100 file read as CIFAR-10 has the wrong record size too.
    assert.throws(() => parseCifarBatch(cifarBatch(3, 'cifar100'), 'cifar10', 'x.bin'), /x\.bin.*not a multiple/);
    assert.throws(() => parseCifarBatch(new Uint8Array(0), 'cifar10', 'e.bin'), /e\.bin.*empty/);
    assert.equal(cifarRecordSize('cifar100'), 3074);
  } finally {
    cleanup();
  }
});

test('a CIFAR label out of range names the file and record', async () => {
  const { dir, cleanup } = makeTempDir('cifarlabel');
  try {
    writeCifar10(dir, 2);
    const buf = cifarBatch(2, 'cifar10');
    buf[3073] = 10;
    writeFileSync(join(dir, 'test_batch.bin'), buf);
    await rejectsNaming(() => loadCifar10(dir, 'test'), join(dir, 'test_batch.bin'), /label 10 in record 1 is out of range \[0, 10\)/);
    const b100 = cifarBatch(1, 'cifar100');
    b100[1] = 100;
    assert.throws(() => parseCifarBatch(b100, 'cifar100', 'c.bin'), /c\.bin.*label 100 in record 0/);
  } finally {
    cleanup();
  }
});

test('missing CIFAR files: the error lists what was looked for', async () => {
  const { dir, cleanup } = makeTempDir('cifarmissing');
  try {
    await rejectsNaming(
      () => loadCifar10(join(dir, 'none'), 'train'),
      join(dir, 'none', 'data_batch_1.bin'),
      /dataset directory .*none does not exist; looked for/,
    );
    writeCifar10(dir, 1);
    rmSync(join(dir, 'data_batch_4.bin'));
    await rejectsNaming(() => loadCifar10(dir, 'train'), join(dir, 'data_batch_4.bin'), /incomplete cifar10 train split/);
    await rejectsNaming(() => loadCifar100(dir, 'test'), join(dir, 'test.bin'), /CIFAR batch files not found in /);
  } finally {
    cleanup();
  }
});
