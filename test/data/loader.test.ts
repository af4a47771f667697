import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OptionError } from '../../src/core/errors.js';
import { Random } from '../../src/core/random.js';
import {
  type Batch,
  DataLoader,
  fromArrays,
  type ImageDataset,
  type LoaderState,
  preprocessPixels,
  randomResizedCropBox,
  resizeBilinear,
} from '../../src/data/index.js';
import { makeImages, pixel } from './fixtures.js';

/** n images h×w×c; label = index % classes; pixels from `pixel()` (unique-ish per image). */
function toy(n = 23, h = 6, w = 5, c = 1, classes = 4): ImageDataset {
  return fromArrays(
    makeImages(n, h, w, c),
    Array.from({ length: n }, (_, i) => i % classes),
    [n, h, w, c],
    classes,
  );
}

/** The next `batches` batches, synchronously. */
function collect(loader: DataLoader, batches: number): Batch[] {
  return Array.from({ length: batches }, () => loader.nextBatch());
}

function sameBatches(a: Batch[], b: Batch[]): void {
  assert.equal(a.length, b.length);
  a.forEach((x, i) => {
    assert.deepEqual(x.shape, b[i]!.shape, `batch ${i} shape`);
    assert.deepEqual(x.y, b[i]!.y, `batch ${i} labels`);
    assert.deepEqual(x.x, b[i]!.x, `batch ${i} pixels`);
  });
}

test('an epoch covers every sample once; last partial batch kept or dropped', () => {
  const ds = toy(23);
  const keep = new DataLoader(ds, { batchSize: 5, seed: 3, preprocessing: 'none' });
  assert.equal(keep.batchesPerEpoch, 5);
  const batches = collect(keep, 5);
  assert.deepEqual(
    batches.map((b) => b.size),
    [5, 5, 5, 5, 3],
  );
  assert.deepEqual(batches[4]!.shape, [3, 6, 5, 1]);
  assert.equal(batches[4]!.x.length, 3 * 30);
  assert.equal(keep.epoch, 1);
  assert.equal(keep.position, 0);
  // Unaugmented 'none' samples are the stored pixels; the first pixel identifies the image.
  const firstPixels = batches.flatMap((b) => Array.from({ length: b.size }, (_, i) => b.x[i * 30]!));
  const ids = firstPixels.map((p) => Array.from({ length: 23 }, (_, k) => k).find((k) => pixel(k, 0, 0) === p)!);
  assert.deepEqual(
    [...ids].sort((a, b) => a - b),
    Array.from({ length: 23 }, (_, k) => k),
  );
  assert.notDeepEqual(
    ids,
    Array.from({ length: 23 }, (_, k) => k),
    'shuffled',
  );
  batches.forEach((b) => b.y.forEach((label, i) => assert.equal(label, ids[batches.indexOf(b) * 5 + i]! % 4)));

  const drop = new DataLoader(ds, { batchSize: 5, dropLast: true });
  assert.equal(drop.batchesPerEpoch, 4);
  assert.deepEqual(
    collect(drop, 4).map((b) => b.size),
    [5, 5, 5, 5],
  );
  assert.equal(drop.epoch, 1);
  assert.throws(() => new DataLoader(toy(3), { batchSize: 5, dropLast: true }), OptionError);
});

test('without shuffle the order is the dataset order; indices restrict the samples', () => {
  const ds = toy(10);
  const l = new DataLoader(ds, { batchSize: 4, shuffle: false, preprocessing: 'none' });
  assert.deepEqual(Array.from(l.nextBatch().y), [0, 1, 2, 3]);
  const sub = new DataLoader(ds, { batchSize: 8, shuffle: false, indices: [7, 2, 5], preprocessing: 'none' });
  const b = sub.nextBatch();
  assert.deepEqual(Array.from(b.y), [3, 2, 1]);
  assert.equal(b.x[0], pixel(7, 0, 0));
  assert.throws(() => new DataLoader(ds, { batchSize: 2, indices: [10] }), /out of range/);
});

test('shuffling and augmentation are deterministic under a seed and differ across seeds and epochs', () => {
  const ds = toy(20, 8, 8, 3);
  const opts = { batchSize: 6, augment: { randomCrop: { padding: 2 }, horizontalFlip: true, randomResizedCrop: true } } as const;
  const a = collect(new DataLoader(ds, { ...opts, seed: 11 }), 8);
  const b = collect(new DataLoader(ds, { ...opts, seed: 11 }), 8);
  sameBatches(a, b);
  const c = collect(new DataLoader(ds, { ...opts, seed: 12 }), 8);
  assert.notDeepEqual(a[0]!.x, c[0]!.x);
  // epoch 0 and epoch 1 of the same loader are ordered differently
  const e = new DataLoader(toy(20), { batchSize: 20, seed: 1 });
  assert.notDeepEqual(e.nextBatch().y, e.nextBatch().y);
});

test('preprocessing: xception and inception_v3 map 0..255 to [-1, 1]; unit to [0, 1]', () => {
  const px = [0, 127.5, 255, 51];
  assert.deepEqual(Array.from(preprocessPixels(px, 'xception')), [-1, 0, 1, 51 / 127.5 - 1].map(Math.fround));
  assert.deepEqual(preprocessPixels(px, 'inception_v3'), preprocessPixels(px, 'xception'));
  assert.deepEqual(Array.from(preprocessPixels([0, 255], 'unit')), [0, 1]);
  const ds = fromArrays([0, 255, 51, 102], [0], [1, 2, 2, 1], 1);
  const b = new DataLoader(ds, { batchSize: 1 }).nextBatch(); // default preprocessing: xception
  assert.deepEqual(
    Array.from(b.x),
    [0, 255, 51, 102].map((v) => Math.fround(v / 127.5 - 1)),
  );
  assert.throws(() => new DataLoader(ds, { batchSize: 1, preprocessing: 'caffe' as 'none' }), /unknown preprocessing 'caffe'/);
});

test('random crop with zero padding shifts by at most the padding and fills with zero pixels; flip mirrors', () => {
  const h = 7,
    w = 6,
    pad = 2;
  const ds = toy(30, h, w, 1, 3);
  const l = new DataLoader(ds, {
    batchSize: 30,
    seed: 5,
    shuffle: false,
    preprocessing: 'none',
    augment: { randomCrop: { padding: pad }, horizontalFlip: true },
  });
  const b = l.nextBatch();
  const seen = new Set<string>();
  let flips = 0;
  for (let n = 0; n < 30; n++) {
    const out = b.x.subarray(n * h * w, (n + 1) * h * w);
    let match: string | undefined;
    for (let dy = -pad; dy <= pad && !match; dy++)
      for (let dx = -pad; dx <= pad && !match; dx++)
        for (const flip of [false, true]) {
          let ok = true;
          for (let y = 0; y < h && ok; y++)
            for (let x = 0; x < w && ok; x++) {
              const sy = y + dy,
                sx = (flip ? w - 1 - x : x) + dx;
              const want = sy < 0 || sy >= h || sx < 0 || sx >= w ? 0 : pixel(n, sy, sx);
              ok = out[y * w + x] === want;
            }
          if (ok) {
            match = `${dy},${dx}`;
            if (flip) flips++;
            break;
          }
        }
    assert.ok(match, `sample ${n} is not a padded shift (±${pad}) of its image, flipped or not`);
    seen.add(match);
  }
  assert.ok(seen.size > 5, `shifts should vary, saw ${[...seen]}`);
  assert.ok(flips > 3 && flips < 27, `about half should be flipped, got ${flips}/30`);
  // With 'xception' preprocessing the padding is a black pixel: −1.
  const x = new DataLoader(ds, { batchSize: 30, seed: 5, shuffle: false, augment: { randomCrop: { padding: pad } } }).nextBatch();
  assert.ok(x.x.includes(-1) && x.x.every((v) => v >= -1 && v <= 1));
});

test('bilinear resize uses half-pixel centers; 1 → 3 channels replicates; 28 → 32', () => {
  const dst = new Float32Array(4);
  resizeBilinear([0, 100], 0, 1, 2, 1, { y: 0, x: 0, height: 1, width: 2 }, dst, 1, 4);
  assert.deepEqual(Array.from(dst), [0, 25, 75, 100]);
  const ds = fromArrays(new Array(28 * 28).fill(200), [0], [1, 28, 28, 1], 1);
  const b = new DataLoader(ds, { batchSize: 1, size: 32, channels: 3, preprocessing: 'none' }).nextBatch();
  assert.deepEqual(b.shape, [1, 32, 32, 3]);
  assert.ok(b.x.every((v) => Math.abs(v - 200) < 1e-4));
  const grad = fromArrays(
    Array.from({ length: 4 }, (_, i) => i * 80),
    [0],
    [1, 1, 4, 1],
    1,
  );
  const up = new DataLoader(grad, { batchSize: 1, size: [2, 8], channels: 3, preprocessing: 'none' }).nextBatch();
  assert.deepEqual(
    Array.from(up.x.subarray(0, 3 * 8)).filter((_, i) => i % 3 === 0),
    [0, 20, 60, 100, 140, 180, 220, 240],
  );
  assert.deepEqual(Array.from(up.x.subarray(3, 6)), [20, 20, 20]);
  assert.throws(() => new DataLoader(toy(2, 4, 4, 3), { batchSize: 1, channels: 1 }), /only equal channels or 1 → 3/);
});

test('random-resized crop boxes stay inside the image with Inception scale and ratio ranges', () => {
  const rng = new Random(9);
  let areaSum = 0;
  for (let i = 0; i < 500; i++) {
    const box = randomResizedCropBox(100, 150, rng);
    assert.ok(box.y >= 0 && box.x >= 0 && box.y + box.height <= 100 && box.x + box.width <= 150, JSON.stringify(box));
    const frac = (box.height * box.width) / (100 * 150);
    const ratio = box.width / box.height;
    assert.ok(frac >= 0.07 && frac <= 1.0001, `area fraction ${frac}`);
    assert.ok(ratio >= 0.7 && ratio <= 1.4, `ratio ${ratio}`);
    areaSum += frac;
  }
  assert.ok(areaSum / 500 > 0.35 && areaSum / 500 < 0.65, `mean area fraction ${areaSum / 500}`);
  // Impossible constraints fall back to the largest centered crop with an allowed ratio.
  assert.deepEqual(randomResizedCropBox(10, 100, new Random(1), { scale: [1, 1], ratio: [1, 2] }), { y: 0, x: 40, height: 10, width: 20 });
  assert.throws(() => new DataLoader(toy(), { batchSize: 1, augment: { randomResizedCrop: { scale: [0.5, 0.2] } } }), /scale/);
  assert.throws(() => new DataLoader(toy(), { batchSize: 1, augment: { mixup: true } as object }), /unknown augmentation 'mixup'/);
});

test('resume: a restored state reproduces exactly the remaining batches (sync, mid-epoch, epoch boundary)', () => {
  const ds = toy(23, 8, 8, 1);
  const opts = {
    batchSize: 5,
    seed: 42,
    size: 10,
    channels: 3,
    augment: { randomCrop: { padding: 2 }, horizontalFlip: true, randomResizedCrop: true },
  };
  const reference = collect(new DataLoader(ds, opts), 14); // 5 batches per epoch: almost 3 epochs
  for (const cut of [0, 2, 5, 7, 13]) {
    const a = new DataLoader(ds, opts);
    collect(a, cut);
    const saved: LoaderState = JSON.parse(JSON.stringify(a.getState()));
    assert.equal(saved.epoch * 5 + saved.batch, cut);
    const b = new DataLoader(ds, { ...opts, seed: 999 }); // the seed is part of the saved state
    collect(b, 3);
    b.setState(saved);
    sameBatches(collect(b, 14 - cut), reference.slice(cut));
  }
});

test('resume during async iteration with prefetch: the state is the consumer position, not the prefetched one', async () => {
  const ds = toy(23, 6, 6, 1);
  const opts = { batchSize: 4, seed: 7, augment: { randomCrop: { padding: 1 }, horizontalFlip: true } };
  const full = new DataLoader(ds, { ...opts, prefetch: false });
  const reference: Batch[] = [];
  for (let e = 0; e < 2; e++) for await (const batch of full.epochBatches()) reference.push(batch);
  assert.equal(reference.length, 12);

  const a = new DataLoader(ds, opts);
  const seen: Batch[] = [];
  let saved: LoaderState | undefined;
  for await (const batch of a) {
    seen.push(batch);
    await new Promise((r) => setImmediate(r)); // let the prefetch of the next batch run
    if (seen.length < 6) assert.ok((a as unknown as { pending: { result: Batch | null } }).pending.result, 'next batch was built ahead');
    if (seen.length === 3) {
      saved = a.getState();
      break;
    }
  }
  assert.deepEqual([saved!.epoch, saved!.batch], [0, 3]);
  assert.equal(a.position, 3);
  // the loader continues where the consumer stopped, using the already-prefetched batch
  for await (const batch of a.epochBatches()) seen.push(batch);
  for await (const batch of a.epochBatches()) seen.push(batch);
  sameBatches(seen, reference);

  const b = new DataLoader(ds, opts);
  b.setState(saved!);
  const rest: Batch[] = [];
  for await (const batch of b) rest.push(batch);
  for await (const batch of b) rest.push(batch);
  sameBatches(rest, reference.slice(3));
});

test('setState rejects a state from a differently configured loader or a bad position', () => {
  const ds = toy(23);
  const s = new DataLoader(ds, { batchSize: 5 }).getState();
  assert.throws(
    () => new DataLoader(ds, { batchSize: 4 }).setState(s),
    (e: unknown) => e instanceof OptionError && /batchSize 5 ≠ 4/.test(e.message),
  );
  assert.throws(() => new DataLoader(toy(22), { batchSize: 5 }).setState(s), /samples 23 ≠ 22/);
  assert.throws(() => new DataLoader(ds, { batchSize: 5 }).setState({ ...s, batch: 5 }), /invalid/);
  assert.throws(() => new DataLoader(ds, { batchSize: 5 }).setState({ ...s, version: 2 as 1 }), /version/);
  assert.throws(() => new DataLoader(ds, { batchSize: 0 }), /batchSize must be a positive integer/);
  assert.throws(() => new DataLoader(ds, { batchSize: 1, shufle: false } as never), /unknown DataLoader option 'shufle'/);
});
