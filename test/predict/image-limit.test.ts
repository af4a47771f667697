/**
 * The pixel limit of readImagePixels: a header claiming more pixels than the limit is refused
 * before decoding, quickly, and the limit is an option of the function.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { OptionError } from '../../src/core/errors.js';
import { ImageError } from '../../src/data/errors.js';
import { MAX_IMAGE_PIXELS, readImagePixels } from '../../src/data/image-file.js';
import { kerasPreprocessing } from '../../src/data/image-preprocessing.js';
import { fixPngCrcs } from '../helpers/fuzz.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-image-limit-'));
const prep = kerasPreprocessing('xception');

/** A valid 4×4 PNG whose header is rewritten to claim width×height (CRCs fixed). */
async function pngClaiming(file: string, width: number, height: number): Promise<string> {
  const png = Buffer.from(
    await sharp(Buffer.alloc(48, 128), { raw: { width: 4, height: 4, channels: 3 } })
      .png()
      .toBuffer(),
  );
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  fs.writeFileSync(file, fixPngCrcs(png));
  return file;
}

test('a header claiming 1,000,000 × 1,000,000 pixels is refused in under a second (default limit)', async () => {
  const file = await pngClaiming(path.join(tmp, 'tera.png'), 1_000_000, 1_000_000);
  const start = performance.now();
  await assert.rejects(
    readImagePixels(file, [8, 8, 3], prep),
    (e: unknown) => e instanceof ImageError && e.file === file && /larger than 100,000,000 pixels/.test(e.message),
  );
  const ms = performance.now() - start;
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
  assert.ok(1e12 > MAX_IMAGE_PIXELS);
});

test('maxPixels sets the limit: a 50×40 image passes at 2,000 pixels and is refused at 1,999', async () => {
  const file = path.join(tmp, 'small.png');
  await sharp(Buffer.alloc(50 * 40 * 3, 7), { raw: { width: 50, height: 40, channels: 3 } })
    .png()
    .toFile(file);
  assert.equal((await readImagePixels(file, [4, 4, 3], prep, undefined, { maxPixels: 2000 })).length, 48);
  const start = performance.now();
  await assert.rejects(
    readImagePixels(file, [4, 4, 3], prep, undefined, { maxPixels: 1999 }),
    (e: unknown) => e instanceof ImageError && /larger than 1,999 pixels/.test(e.message),
  );
  assert.ok(performance.now() - start < 1000);
  // A lying header under a small limit: refused by the limit, not by decoding.
  const liar = await pngClaiming(path.join(tmp, 'liar.png'), 3000, 3000);
  await assert.rejects(readImagePixels(liar, [4, 4, 3], prep, undefined, { maxPixels: 1_000_000 }), /larger than 1,000,000 pixels/);
});

test('maxPixels must be a positive integer', async () => {
  const file = path.join(tmp, 'any.png');
  await sharp(Buffer.alloc(12, 1), { raw: { width: 2, height: 2, channels: 3 } })
    .png()
    .toFile(file);
  for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) {
    await assert.rejects(readImagePixels(file, [2, 2, 3], prep, undefined, { maxPixels: bad }), OptionError, String(bad));
  }
});
