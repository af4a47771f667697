import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { DatasetError, loadImageFolder, scanImageFolder } from '../../src/data/index.js';
import { makeTempDir } from './fixtures.js';

async function rejectsNaming(fn: () => Promise<unknown>, file: string, re: RegExp): Promise<void> {
  await assert.rejects(
    fn,
    (e: unknown) => (e instanceof DatasetError && e.message.includes(file) && re.test(e.message)) || assert.fail(`${e}`),
  );
}

/** A w×h RGB image: columns in the middle `mid` fraction are `inner`, the rest `outer`. */
function stripes(w: number, h: number, inner: number[], outer: number[], mid = 1 / 3): Buffer {
  const buf = Buffer.alloc(w * h * 3);
  const lo = Math.floor(w * (0.5 - mid / 2)),
    hi = Math.ceil(w * (0.5 + mid / 2));
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const c = x >= lo && x < hi ? inner : outer;
      buf.set(c, (y * w + x) * 3);
    }
  return buf;
}

async function writeImage(path: string, raw: Buffer, w: number, h: number): Promise<void> {
  const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } });
  const ext = path.split('.').pop()!.toLowerCase();
  if (ext === 'png') await img.png().toFile(path);
  else if (ext === 'webp') await img.webp({ lossless: true }).toFile(path);
  else await img.jpeg({ quality: 95 }).toFile(path);
}

const RED = [220, 20, 20],
  GREEN = [20, 200, 40],
  BLUE = [30, 40, 210];

async function makeFolder(root: string): Promise<void> {
  // classes are sorted by name: 'apple' → 0, 'banana' → 1, 'cherry' → 2
  for (const c of ['cherry', 'apple', 'banana']) mkdirSync(join(root, c), { recursive: true });
  // 60×20 landscape: the shorter side becomes 8, then the central 8×8 crop is pure `inner`.
  await writeImage(join(root, 'apple', 'a1.png'), stripes(60, 20, RED, BLUE), 60, 20);
  await writeImage(join(root, 'apple', 'a2.JPG'), stripes(60, 20, RED, BLUE), 60, 20);
  await writeImage(join(root, 'banana', 'b1.webp'), stripes(20, 20, GREEN, GREEN), 20, 20);
  await writeImage(join(root, 'cherry', 'c1.jpeg'), stripes(16, 48, BLUE, BLUE), 16, 48);
  await writeImage(join(root, 'cherry', 'c2.png'), stripes(90, 30, BLUE, RED), 90, 30);
  writeFileSync(join(root, 'README.txt'), 'files at the root are not classes');
  writeFileSync(join(root, 'apple', '.DS_Store'), 'hidden files are skipped');
}

function meanColor(images: Uint8Array, index: number, size: number, channels: number): number[] {
  const sums = new Array(channels).fill(0);
  const per = size * size * channels;
  for (let p = 0; p < size * size; p++) for (let c = 0; c < channels; c++) sums[c] += images[index * per + p * channels + c]!;
  return sums.map((s) => s / (size * size));
}

test('image folder: PNG, JPEG and WebP decoded, classes sorted, shorter side resized and center-cropped', async () => {
  const { dir, cleanup } = makeTempDir('folder');
  try {
    await makeFolder(dir);
    const ds = await loadImageFolder(dir, { size: 8 });
    assert.deepEqual(ds.classNames, ['apple', 'banana', 'cherry']);
    assert.deepEqual([ds.count, ds.height, ds.width, ds.channels, ds.classes], [5, 8, 8, 3, 3]);
    assert.deepEqual(Array.from(ds.labels), [0, 0, 1, 2, 2]);
    const expected = [RED, RED, GREEN, BLUE, BLUE];
    for (let i = 0; i < 5; i++) {
      const m = meanColor(ds.images, i, 8, 3);
      // PNG and lossless WebP are exact; JPEG is within a few levels.
      m.forEach((v, c) => assert.ok(Math.abs(v - expected[i]![c]!) < 8, `image ${i} channel ${c}: ${v} vs ${expected[i]![c]}`));
    }
    const gray = await loadImageFolder(dir, { size: 6, channels: 1 });
    assert.deepEqual([gray.height, gray.channels, gray.images.length], [6, 1, 5 * 36]);
    const g = meanColor(gray.images, 2, 6, 1)[0]!; // green → luminance well above blue's
    const b = meanColor(gray.images, 3, 6, 1)[0]!;
    assert.ok(g > b + 40, `green ${g} should be brighter than blue ${b}`);
  } finally {
    cleanup();
  }
});

test('image folder errors name the folder or file', async () => {
  const { dir, cleanup } = makeTempDir('folderbad');
  try {
    await rejectsNaming(() => loadImageFolder(join(dir, 'missing')), join(dir, 'missing'), /does not exist/);
    mkdirSync(join(dir, 'flat'));
    writeFileSync(join(dir, 'flat', 'x.png'), 'x');
    await rejectsNaming(() => loadImageFolder(join(dir, 'flat')), join(dir, 'flat'), /no class folders/);

    const root = join(dir, 'r1');
    await makeFolder(root);
    mkdirSync(join(root, 'date'));
    await rejectsNaming(() => scanImageFolder(root), join(root, 'date'), /empty class folder 'date'/);

    const root2 = join(dir, 'r2');
    await makeFolder(root2);
    writeFileSync(join(root2, 'banana', 'notes.txt'), 'not an image');
    await rejectsNaming(() => loadImageFolder(root2, { size: 4 }), join(root2, 'banana', 'notes.txt'), /not an image file/);

    const root3 = join(dir, 'r3');
    await makeFolder(root3);
    writeFileSync(join(root3, 'cherry', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n garbage that is no PNG'));
    await rejectsNaming(() => loadImageFolder(root3, { size: 4 }), join(root3, 'cherry', 'broken.png'), /not a readable image/);

    const root4 = join(dir, 'r4');
    await makeFolder(root4);
    const full = await sharp(stripes(40, 40, RED, RED), { raw: { width: 40, height: 40, channels: 3 } })
      .jpeg()
      .toBuffer();
    writeFileSync(join(root4, 'apple', 'cut.jpg'), full.subarray(0, full.length >> 1));
    await rejectsNaming(() => loadImageFolder(root4, { size: 4 }), join(root4, 'apple', 'cut.jpg'), /not a readable image/);

    const root5 = join(dir, 'r5');
    await makeFolder(root5);
    symlinkSync(join(dir, 'does-not-exist.png'), join(root5, 'apple', 'dangling.png'));
    await rejectsNaming(() => loadImageFolder(root5, { size: 4 }), join(root5, 'apple', 'dangling.png'), /unreadable entry/);

    await assert.rejects(() => loadImageFolder(root, { size: 0 }), /size must be an integer/);
    await assert.rejects(() => loadImageFolder(root, { channels: 2 as 1 }), /channels must be 1 or 3/);
  } finally {
    cleanup();
  }
});
