import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { ShapeError } from '../../src/core/errors.js';
import { Random } from '../../src/core/random.js';
import { DatasetError, ImageError } from '../../src/data/errors.js';
import { centerCropBox, MAX_IMAGE_PIXELS, readImagePixels } from '../../src/data/image-file.js';
import { type ImagePreprocessing, kerasPreprocessing, trainingPreprocessing } from '../../src/data/image-preprocessing.js';
import { resizeLikePil } from '../../src/predict/resize-pil.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-image-file-'));
const CROP_NEAREST: ImagePreprocessing = { resize: 'center-crop', interpolation: 'nearest', scaling: 'xception' };

/** Random HWC pixels written losslessly as PNG; returns the pixels. */
async function writePng(
  file: string,
  width: number,
  height: number,
  channels: 1 | 2 | 3 | 4,
  seed: number,
  metadata?: { orientation: number },
): Promise<Uint8Array> {
  const r = new Random(seed);
  const px = Uint8Array.from({ length: width * height * channels }, () => r.int(256));
  let p = sharp(Buffer.from(px), { raw: { width, height, channels } });
  if (metadata) p = p.withMetadata(metadata);
  await p.png().toFile(file);
  return px;
}

/** Rows y0..y0+h and columns x0..x0+w of HWC pixels. */
function cropOf(px: Uint8Array, width: number, channels: number, box: { y: number; x: number; height: number; width: number }): Uint8Array {
  const out = new Uint8Array(box.height * box.width * channels);
  for (let y = 0; y < box.height; y++) {
    const from = ((box.y + y) * width + box.x) * channels;
    out.set(px.subarray(from, from + box.width * channels), y * box.width * channels);
  }
  return out;
}

test("centerCropBox: the centred box of the target's aspect ratio, so the shorter side fits", () => {
  assert.deepEqual(centerCropBox(6, 12, 6, 6), { y: 0, x: 3, height: 6, width: 6 });
  assert.deepEqual(centerCropBox(12, 6, 6, 6), { y: 3, x: 0, height: 6, width: 6 });
  assert.deepEqual(centerCropBox(7, 12, 3, 3), { y: 0, x: 2, height: 7, width: 7 });
  // Non-square target 30×40 (h×w) from 100×200: width 100·40/30 = 133, centred.
  assert.deepEqual(centerCropBox(100, 200, 30, 40), { y: 0, x: 33, height: 100, width: 133 });
  assert.deepEqual(centerCropBox(50, 50, 1, 1), { y: 0, x: 0, height: 50, width: 50 });
});

test('center-crop keeps the middle of non-square images; stretch squeezes the whole image; both resize with the same Pillow filter', async () => {
  const wide = path.join(tmp, 'wide.png'),
    tall = path.join(tmp, 'tall.png');
  const widePx = await writePng(wide, 12, 6, 3, 1);
  const tallPx = await writePng(tall, 6, 12, 3, 2);
  // Target = the shorter side: the centre crop is copied unchanged.
  assert.deepEqual(await readImagePixels(wide, [6, 6, 3], CROP_NEAREST), cropOf(widePx, 12, 3, { y: 0, x: 3, height: 6, width: 6 }));
  assert.deepEqual(await readImagePixels(tall, [6, 6, 3], CROP_NEAREST), cropOf(tallPx, 6, 3, { y: 3, x: 0, height: 6, width: 6 }));
  for (const interpolation of ['nearest', 'bilinear'] as const) {
    const crop = await readImagePixels(wide, [4, 4, 3], { ...CROP_NEAREST, interpolation });
    assert.deepEqual(
      crop,
      resizeLikePil(cropOf(widePx, 12, 3, { y: 0, x: 3, height: 6, width: 6 }), 6, 6, 3, 4, 4, interpolation),
      interpolation,
    );
    const stretch = await readImagePixels(wide, [4, 4, 3], { ...kerasPreprocessing('xception'), interpolation });
    assert.deepEqual(stretch, resizeLikePil(widePx, 6, 12, 3, 4, 4, interpolation), interpolation);
    assert.notDeepEqual(stretch, crop);
  }
  // The training default (center-crop, bilinear) on a non-square target.
  const px = await readImagePixels(wide, [3, 4, 3], trainingPreprocessing('xception'));
  assert.deepEqual(px, resizeLikePil(cropOf(widePx, 12, 3, { y: 0, x: 2, height: 6, width: 8 }), 6, 8, 3, 3, 4, 'bilinear'));
});

test('EXIF orientation is applied before cropping: a phone photo stored sideways comes out upright', async () => {
  const file = path.join(tmp, 'sideways.png');
  // Stored 6 wide × 4 high; orientation 6 means "rotate 90° clockwise to display": upright it is 4 wide × 6 high.
  const stored = await writePng(file, 6, 4, 3, 3, { orientation: 6 });
  const upright = new Uint8Array(stored.length);
  for (let y = 0; y < 6; y++) {
    for (let x = 0; x < 4; x++) {
      // Clockwise: upright (y, x) is stored (row 3 − x, column y).
      for (let c = 0; c < 3; c++) upright[(y * 4 + x) * 3 + c] = stored[((3 - x) * 6 + y) * 3 + c]!;
    }
  }
  assert.deepEqual(await readImagePixels(file, [6, 4, 3], kerasPreprocessing('none')), upright);
  const seen: [number, number][] = [];
  const top = await readImagePixels(file, [2, 4, 3], kerasPreprocessing('none'), {
    crop: (h, w) => {
      seen.push([h, w]);
      return { y: 0, x: 0, height: 2, width: 4 };
    },
  });
  assert.deepEqual(seen, [[6, 4]], 'the crop callback sees the upright size');
  assert.deepEqual(top, upright.subarray(0, 2 * 4 * 3));
});

test('augment: the crop box is taken at source resolution and resized, then the result is mirrored; a box outside the image is refused', async () => {
  const file = path.join(tmp, 'aug.png');
  const px = await writePng(file, 10, 8, 3, 4);
  const box = { y: 1, x: 2, height: 6, width: 4 };
  const expected = resizeLikePil(cropOf(px, 10, 3, box), 6, 4, 3, 3, 3, 'bilinear');
  const plain = await readImagePixels(file, [3, 3, 3], trainingPreprocessing('xception'), { crop: () => box });
  assert.deepEqual(plain, expected);
  const flipped = await readImagePixels(file, [3, 3, 3], trainingPreprocessing('xception'), { crop: () => box, flip: true });
  for (let y = 0; y < 3; y++) {
    for (let x = 0; x < 3; x++) {
      for (let c = 0; c < 3; c++) assert.equal(flipped[(y * 3 + x) * 3 + c], expected[(y * 3 + 2 - x) * 3 + c]);
    }
  }
  // Flip alone, grey: mirrors the whole (stretched) image.
  const grey = await readImagePixels(file, [8, 10, 1], kerasPreprocessing('none'));
  const greyFlipped = await readImagePixels(file, [8, 10, 1], kerasPreprocessing('none'), { flip: true });
  for (let y = 0; y < 8; y++)
    assert.deepEqual([...greyFlipped.subarray(y * 10, y * 10 + 10)], [...grey.subarray(y * 10, y * 10 + 10)].reverse());
  await assert.rejects(readImagePixels(file, [3, 3, 3], CROP_NEAREST, { crop: () => ({ y: 4, x: 0, height: 6, width: 4 }) }), ShapeError);
  await assert.rejects(
    readImagePixels(file, [3, 3, 3], CROP_NEAREST, { crop: () => ({ y: 0, x: 0.5, height: 2, width: 2 }) }),
    /not an integer box inside the 8×10 image/,
  );
});

test('grey and grey+alpha PNGs: alpha is dropped (even where fully transparent), grey becomes RGB or stays its own luma', async () => {
  const greyAlpha = path.join(tmp, 'grey-alpha.png');
  const ga = await writePng(greyAlpha, 5, 3, 2, 5);
  const grey = Uint8Array.from({ length: 15 }, (_, i) => ga[2 * i]!);
  const rgb = await readImagePixels(greyAlpha, [3, 5, 3], kerasPreprocessing('none'));
  assert.deepEqual(
    rgb,
    Uint8Array.from({ length: 45 }, (_, i) => grey[Math.floor(i / 3)]!),
  );
  assert.deepEqual(await readImagePixels(greyAlpha, [3, 5, 1], kerasPreprocessing('none')), grey);
  // RGBA → one channel: Pillow's convert('L') luma of the RGB, alpha ignored.
  const rgbaFile = path.join(tmp, 'rgba.png');
  const rgba = await writePng(rgbaFile, 3, 2, 4, 6);
  const luma = Uint8Array.from({ length: 6 }, (_, i) =>
    Math.floor((rgba[4 * i]! * 19595 + rgba[4 * i + 1]! * 38470 + rgba[4 * i + 2]! * 7471 + 0x8000) / 65536),
  );
  assert.deepEqual(await readImagePixels(rgbaFile, [2, 3, 1], CROP_NEAREST), luma);
});

/** CRC-32 as PNG chunks use it. */
function crc32(bytes: Uint8Array): number {
  let crc = ~0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

test('bad files are ImageErrors (DatasetErrors) naming the file: missing, a folder, not an image, a truncated JPEG, a header claiming too many pixels', async () => {
  const r = new Random(7);
  const photo = Buffer.from(Array.from({ length: 96 * 64 * 3 }, () => r.int(256)));
  const jpeg = await sharp(photo, { raw: { width: 96, height: 64, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
  const truncated = path.join(tmp, 'cut.jpg');
  fs.writeFileSync(truncated, jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
  const text = path.join(tmp, 'notes.txt');
  fs.writeFileSync(text, 'not an image');
  // A valid 4×4 PNG whose header is rewritten to claim 20000×20000 (400 M pixels); CRC fixed so only the size is wrong.
  const png = Buffer.from(
    await sharp(Buffer.alloc(48, 128), { raw: { width: 4, height: 4, channels: 3 } })
      .png()
      .toBuffer(),
  );
  png.writeUInt32BE(20000, 16);
  png.writeUInt32BE(20000, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  const huge = path.join(tmp, 'huge.png');
  fs.writeFileSync(huge, png);
  assert.ok(20000 * 20000 > MAX_IMAGE_PIXELS);
  const cases: [string, RegExp][] = [
    [path.join(tmp, 'missing.png'), /no such file/],
    [tmp, /is a directory, not an image/],
    [text, /not a readable image \(JPEG, PNG, WebP, …\)/],
    [truncated, /not a readable image .*premature end/i],
    [huge, /larger than 100,000,000 pixels; shrink it before use/],
  ];
  for (const [file, problem] of cases) {
    const err = await readImagePixels(file, [8, 8, 3], CROP_NEAREST).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ImageError && err instanceof DatasetError, `${file}: ${String(err)}`);
    assert.equal(err.file, file);
    assert.ok(err.message.startsWith(`${file}: `), err.message);
    assert.match(err.message, problem);
  }
  await assert.rejects(readImagePixels(text, [8, 8, 2 as 3], CROP_NEAREST), /1 or 3 channels, not 2/);
});
