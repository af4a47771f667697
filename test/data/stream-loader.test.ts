import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatasetError, ImageError } from '../../src/data/errors.js';
import { trainingPreprocessing } from '../../src/data/image-preprocessing.js';
import type { Batch } from '../../src/data/loader.js';
import { listImageFolder } from '../../src/data/folder.js';
import { type ReadPixels, StreamLoader, type StreamLoaderOptions } from '../../src/data/stream-loader.js';
import { makeTempDir, writeImageFolder } from './fixtures.js';

const prep = trainingPreprocessing('xception');

async function epochOf(loader: StreamLoader): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epochBatches()) out.push(b);
  return out;
}

/** A reader that fills every pixel with the file's number (files are named '<n>'), after a turn of the event loop. */
function numberedReader(log: { calls: number; active: number; maxActive: number }): ReadPixels {
  return async (file, shape) => {
    log.calls++;
    log.active++;
    log.maxActive = Math.max(log.maxActive, log.active);
    await new Promise((r) => setTimeout(r, 1));
    log.active--;
    if (file.startsWith('bad')) throw new ImageError(file, 'not a readable image (JPEG, PNG, WebP, …): bad header');
    return new Uint8Array(shape[0] * shape[1] * shape[2]).fill(Number(file) % 256);
  };
}

function fakeSource(n: number, bad: number[] = []): { files: string[]; labels: Int32Array } {
  return {
    files: Array.from({ length: n }, (_, i) => (bad.includes(i) ? `bad${i}` : String(i))),
    labels: Int32Array.from({ length: n }, (_, i) => i % 3),
  };
}

test('stream loader: a resumed loader repeats the uninterrupted batches exactly, augmentation included', async () => {
  const { dir, cleanup } = makeTempDir('stream-resume');
  try {
    await writeImageFolder(dir, { a: 5, b: 4, c: 4 }, 12);
    const listing = await listImageFolder(dir);
    const options: StreamLoaderOptions = {
      batchSize: 4,
      shape: [8, 8, 3],
      preprocessing: prep,
      seed: 7,
      augment: { randomResizedCrop: true, horizontalFlip: true },
    };
    const full = new StreamLoader(listing, options);
    const e0 = await epochOf(full);
    const e1 = await epochOf(full);
    assert.deepEqual(
      e0.map((b) => b.size),
      [4, 4, 4, 1],
    );
    // Cut after 2 batches of epoch 0, restore into a fresh loader.
    const cut = new StreamLoader(listing, options);
    const it = cut.epochBatches();
    await it.next();
    await it.next();
    const state = JSON.parse(JSON.stringify(cut.getState()));
    assert.deepEqual([state.epoch, state.batch], [0, 2]);
    const resumed = new StreamLoader(listing, options);
    resumed.setState(state);
    const rest = [...(await epochOf(resumed)), ...(await epochOf(resumed))];
    const expected = [...e0.slice(2), ...e1];
    assert.equal(rest.length, expected.length);
    rest.forEach((b, i) => {
      assert.deepEqual(b.y, expected[i]!.y, `batch ${i} labels`);
      assert.deepEqual(b.x, expected[i]!.x, `batch ${i} pixels`);
    });
    // The augmentation is real: epoch 1 sees the images differently from epoch 0, and unaugmented
    // reads differ from augmented ones.
    const order = (bs: Batch[]) => bs.flatMap((b) => [...b.y]);
    assert.notDeepEqual(
      e0.map((b) => b.x),
      e1.map((b) => b.x),
    );
    const plain = await epochOf(new StreamLoader(listing, { ...options, shuffle: false, augment: {} }));
    const plainAgain = await epochOf(new StreamLoader(listing, { ...options, shuffle: false, augment: {} }));
    assert.deepEqual(
      plain.map((b) => b.x),
      plainAgain.map((b) => b.x),
    );
    assert.deepEqual(order(plain), [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    assert.notDeepEqual(order(e0), order(plain), 'shuffled');
    assert.throws(() => resumed.setState({ ...state, seed: 8 }), /different configuration: seed 8 ≠ 7/);
  } finally {
    cleanup();
  }
});

test('stream loader: no more than `prefetch` batches in flight, decoding at most `concurrency` images at once', async () => {
  const log = { calls: 0, active: 0, maxActive: 0 };
  const loader = new StreamLoader(fakeSource(40), {
    batchSize: 4,
    shape: [2, 2, 1],
    preprocessing: prep,
    prefetch: 2,
    concurrency: 3,
    readPixels: numberedReader(log),
  });
  const it = loader.epochBatches();
  const first = await it.next();
  assert.equal(first.value!.size, 4);
  await new Promise((r) => setTimeout(r, 50)); // let everything that was started finish
  // The batch handed out, plus the 2 read ahead; nothing more.
  assert.equal(log.calls, 3 * 4);
  await it.next();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(log.calls, 4 * 4);
  for await (const _ of it) {
    /* drain */
  }
  assert.equal(log.calls, 40);
  assert.ok(log.maxActive <= 3 && log.maxActive >= 2, `at most 3 decodes at once, got ${log.maxActive}`);
  // Pixels are scaled (xception: x/127.5 − 1) and labels follow their files.
  const again = await epochOf(
    new StreamLoader(fakeSource(6), {
      batchSize: 6,
      shape: [1, 1, 1],
      preprocessing: prep,
      shuffle: false,
      readPixels: numberedReader(log),
    }),
  );
  assert.deepEqual(
    [...again[0]!.x].map((v) => Math.round((v + 1) * 127.5)),
    [0, 1, 2, 3, 4, 5],
  );
});

test('stream loader: an unreadable image stops with an error naming it, or is skipped and counted', async () => {
  const log = { calls: 0, active: 0, maxActive: 0 };
  const common = { batchSize: 4, shape: [1, 1, 1] as const, preprocessing: prep, shuffle: false, readPixels: numberedReader(log) };
  const strict = new StreamLoader(fakeSource(10, [5]), common);
  await assert.rejects(
    epochOf(strict),
    (e: unknown) => e instanceof DatasetError && e.file === 'bad5' && /bad5: .*bad header.*--skip-bad-images/.test(e.message),
  );

  const lenient = new StreamLoader(fakeSource(10, [5, 6]), { ...common, skipBadImages: true });
  const batches = await epochOf(lenient);
  assert.deepEqual(
    batches.map((b) => b.size),
    [4, 2, 2],
  );
  // The survivors of batch 1 are files 4 and 7, with their own labels.
  assert.deepEqual(
    [...batches[1]!.x].map((v) => Math.round((v + 1) * 127.5)),
    [4, 7],
  );
  assert.deepEqual([...batches[1]!.y], [4 % 3, 7 % 3]);
  assert.equal(batches[1]!.shape[0], 2);
  assert.equal(lenient.skippedImages, 2);
  assert.deepEqual([...lenient.badFiles], ['bad5', 'bad6']);
  await epochOf(lenient);
  assert.equal(lenient.skippedImages, 4, 'counted again every epoch');
  // With minBatch 2, a batch left with one readable image is not handed out.
  const paired = new StreamLoader(fakeSource(6, [4]), { ...common, batchSize: 2, skipBadImages: true, minBatch: 2 });
  assert.deepEqual(
    (await epochOf(paired)).map((b) => [...b.y]),
    [
      [0, 1],
      [2, 0],
    ],
  );

  // A real file that is no image, read by sharp.
  const { dir, cleanup } = makeTempDir('stream-bad');
  try {
    await writeImageFolder(dir, { a: 2, b: 2 });
    writeFileSync(join(dir, 'b', 'broken.jpg'), 'this is not a JPEG');
    const listing = await listImageFolder(dir);
    const real = new StreamLoader(listing, { batchSize: 2, shape: [4, 4, 3], preprocessing: prep, shuffle: false });
    await assert.rejects(
      async () => {
        for await (const _ of real.epochBatches()) {
          /* read */
        }
      },
      (e: unknown) => e instanceof DatasetError && e.message.includes(join(dir, 'b', 'broken.jpg')),
    );
    const skipping = new StreamLoader(listing, {
      batchSize: 2,
      shape: [4, 4, 3],
      preprocessing: prep,
      shuffle: false,
      skipBadImages: true,
    });
    // broken.jpg sorts last, alone in batch 3: a batch of bad images only is no step.
    assert.deepEqual(
      (await epochOf(skipping)).map((b) => b.size),
      [2, 2],
    );
    assert.equal(skipping.skippedImages, 1);
  } finally {
    cleanup();
  }
});

test('stream loader: options and states are checked', () => {
  const source = fakeSource(5);
  assert.throws(
    () => new StreamLoader(source, { batchSize: 0, shape: [2, 2, 3], preprocessing: prep }),
    /batchSize must be a positive integer/,
  );
  assert.throws(() => new StreamLoader(source, { batchSize: 2, shape: [2, 2, 2], preprocessing: prep }), /channels must be 1 or 3/);
  assert.throws(() => new StreamLoader(source, { batchSize: 2, shape: [2, 2, 3], preprocessing: prep, indices: [9] }), /out of range/);
  assert.throws(
    () => new StreamLoader(source, { batchSize: 2, shape: [2, 2, 3], preprocessing: prep, bogus: 1 } as never),
    /unknown StreamLoader option 'bogus'/,
  );
  const loader = new StreamLoader(source, { batchSize: 2, shape: [2, 2, 3], preprocessing: prep });
  assert.throws(() => loader.setState({ version: 1, epoch: 0, batch: 0 } as never), /not saved by a streaming/);
  assert.throws(() => loader.setState({ ...loader.getState(), batch: 3 }), /invalid \(3 batches per epoch\)/);
});
