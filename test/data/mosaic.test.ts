/** The fashion-mosaic generator: seeded, its labels what it drew, its spec checked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { FASHION_MNIST_CLASS_NAMES, fromArrays } from '../../src/data/dataset.js';
import { FASHION_MNIST_DIR } from '../../src/data/idx.js';
import { makeMosaic, parseMosaicSpec } from '../../src/data/mosaic.js';
import { parseDatasetSpec } from '../../src/data/spec.js';
import { OptionError } from '../../src/core/errors.js';

/** 20 items of 4×4 with distinct pixels, 5 classes: item i is class i % 5. */
function source() {
  const n = 20;
  const images = new Uint8Array(n * 16);
  for (let i = 0; i < n; i++) for (let p = 0; p < 16; p++) images[i * 16 + p] = (i * 13 + p * 7) % 251;
  return fromArrays(
    images,
    Array.from({ length: n }, (_, i) => i % 5),
    [n, 4, 4, 1],
    5,
    { name: 'items' },
  );
}

const OPTIONS = { size: 10, minItems: 1, maxItems: 3, seed: 4, count: 50 };

test('the same seed gives the same canvases; another seed gives others', () => {
  const a = makeMosaic(source(), OPTIONS, 'a').dataset;
  const b = makeMosaic(source(), OPTIONS, 'b').dataset;
  const c = makeMosaic(source(), { ...OPTIONS, seed: 5 }, 'c').dataset;
  assert.deepEqual(a.images, b.images);
  assert.deepEqual(a.targets, b.targets);
  assert.notDeepEqual(a.images, c.images);
  assert.equal(a.height, 10);
  assert.equal(a.targets!.length, 50 * 5);
});

test('each canvas is labelled with exactly the classes it drew, and shows every item it drew', () => {
  const src = source();
  const { dataset, placements } = makeMosaic(src, OPTIONS, 'm');
  const counts = new Set<number>();
  for (let i = 0; i < dataset.count; i++) {
    const drawn = placements[i]!;
    counts.add(drawn.length);
    assert.ok(drawn.length >= 1 && drawn.length <= 3);
    const classes = new Set(drawn.map((p) => p.label));
    for (let k = 0; k < 5; k++) assert.equal(dataset.targets![i * 5 + k], classes.has(k) ? 1 : 0, `canvas ${i} class ${k}`);
    assert.equal(dataset.labels[i], Math.min(...classes));
    for (const p of drawn) {
      assert.equal(p.label, src.labels[p.source]);
      // Brighter pixel wins: the canvas is at least the item everywhere the item lies.
      for (let y = 0; y < 4; y++)
        for (let x = 0; x < 4; x++)
          assert.ok(dataset.images[i * 100 + (p.top + y) * 10 + p.left + x]! >= src.images[p.source * 16 + y * 4 + x]!);
    }
  }
  assert.deepEqual([...counts].sort(), [1, 2, 3]);
});

test('the spec: options parsed, bad ones a typed error before anything is loaded', () => {
  assert.deepEqual(parseMosaicSpec('size=56,items=2-3,seed=9,train=100,test=10'), {
    size: 56,
    minItems: 2,
    maxItems: 3,
    seed: 9,
    train: 100,
    test: 10,
  });
  assert.equal(parseMosaicSpec('').size, 64);
  assert.equal(parseDatasetSpec('fashion-mosaic').kind, 'fashion-mosaic');
  const fails = (spec: string, pattern: RegExp) =>
    assert.throws(
      () => parseDatasetSpec(spec),
      (e: Error) => e instanceof OptionError && pattern.test(e.message),
      spec,
    );
  fails('fashion-mosaic:size=20', /size must be an integer in \[28, 1024\]/);
  fails('fashion-mosaic:items=3-2', /maxItems must be an integer in \[3, 16\]/);
  fails('fashion-mosaic:items=0', /minItems must be an integer in \[1, 16\]/);
  fails('fashion-mosaic:colour=red', /unknown option 'colour'/);
  fails('fashion-mosaic:size', /expected key=value/);
  fails('fashion-mosaic:train=0', /count must be an integer in \[1, 1000000\]/);
  fails('fashion-mosaic:seed=-1', /seed must be a non-negative integer/);
});

test('fashion-mosaic loads from Fashion-MNIST: 64×64 grey canvases, its 10 class names, splits from their own items', async (t) => {
  if (!existsSync(FASHION_MNIST_DIR)) {
    t.skip(`Fashion-MNIST is not installed at ${FASHION_MNIST_DIR}`);
    return;
  }
  const spec = parseDatasetSpec('fashion-mosaic:train=40,test=30,seed=3');
  const [train, test2, again] = await Promise.all([spec.load('train'), spec.load('test'), spec.load('train')]);
  assert.deepEqual([train.count, train.height, train.width, train.channels, train.classes], [40, 64, 64, 1, 10]);
  assert.equal(test2.count, 30);
  assert.deepEqual(train.classNames, FASHION_MNIST_CLASS_NAMES);
  assert.deepEqual(train.images, again.images);
  assert.notDeepEqual(train.images.subarray(0, 30 * 4096), test2.images);
});
