/**
 * Seeded mutation fuzzing of image reading (readImagePixels, the one path training, evaluation
 * and prediction use): mutated PNG, JPEG and WebP files must decode or throw an ImageError —
 * never another error, a crash or a hang. Counts asserted (test/helpers/fuzz.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { Random } from '../../src/core/random.js';
import { DatasetError, ImageError } from '../../src/data/errors.js';
import { readImagePixels } from '../../src/data/image-file.js';
import { kerasPreprocessing, trainingPreprocessing } from '../../src/data/image-preprocessing.js';
import {
  assertAtLeast,
  hasEnoughCases,
  fuzzTimeout,
  fixPngCrcs,
  fuzzCaseCount,
  type HeaderField,
  mutate,
  type MutationTarget,
  rejectedCount,
  runFuzz,
} from '../helpers/fuzz.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-image-fuzz-'));
const be = (at: number, size: 1 | 2 | 4): HeaderField => ({ at, size, littleEndian: false });
const le = (at: number, size: 1 | 2 | 4): HeaderField => ({ at, size, littleEndian: true });

/** PNG: IHDR width, height, bit depth, colour type, compression, filter, interlace. */
const PNG_FIELDS = [be(16, 4), be(20, 4), be(24, 1), be(25, 1), be(26, 1), be(27, 1), be(28, 1)];

/** JPEG: every marker segment's length, and the frame header's precision, height, width, components. */
function jpegFields(bytes: Uint8Array): HeaderField[] {
  const fields: HeaderField[] = [];
  for (let at = 2; at + 4 <= bytes.length && bytes[at] === 0xff; ) {
    const marker = bytes[at + 1]!;
    if (marker === 0xda) break; // start of scan: entropy-coded data follows
    fields.push(be(at + 2, 2));
    if (marker >= 0xc0 && marker <= 0xc2) fields.push(be(at + 4, 1), be(at + 5, 2), be(at + 7, 2), be(at + 9, 1));
    at += 2 + ((bytes[at + 2]! << 8) | bytes[at + 3]!);
  }
  return fields;
}

/** WebP (lossy VP8): RIFF size, chunk size, frame width and height. */
const WEBP_FIELDS = [le(4, 4), le(16, 4), le(26, 2), le(28, 2)];

async function originals(): Promise<{ name: string; target: MutationTarget }[]> {
  const r = new Random(5);
  const rgb = Buffer.from(Array.from({ length: 16 * 12 * 3 }, () => r.int(256)));
  const raw = { raw: { width: 16, height: 12, channels: 3 as const } };
  const png = await sharp(rgb, raw).png().toBuffer();
  const greyAlpha = await sharp(Buffer.from(Array.from({ length: 10 * 9 * 2 }, () => r.int(256))), {
    raw: { width: 10, height: 9, channels: 2 },
  })
    .png()
    .toBuffer();
  const jpeg = await sharp(rgb, raw).jpeg({ quality: 80 }).toBuffer();
  const progressive = await sharp(rgb, raw).withMetadata({ orientation: 6 }).jpeg({ progressive: true }).toBuffer();
  const webp = await sharp(rgb, raw).webp({ quality: 70 }).toBuffer();
  const lossless = await sharp(rgb, raw).webp({ lossless: true }).toBuffer();
  const pngTarget = (bytes: Buffer): MutationTarget => ({ bytes, fields: PNG_FIELDS, hotEnd: 64, repair: (b) => fixPngCrcs(b) });
  return [
    { name: 'png', target: pngTarget(png) },
    { name: 'png-grey-alpha', target: pngTarget(greyAlpha) },
    { name: 'jpeg', target: { bytes: jpeg, fields: jpegFields(jpeg), hotEnd: 640 } },
    { name: 'jpeg-progressive-exif', target: { bytes: progressive, fields: jpegFields(progressive), hotEnd: 640 } },
    { name: 'webp', target: { bytes: webp, fields: WEBP_FIELDS, hotEnd: 64 } },
    { name: 'webp-lossless', target: { bytes: lossless, fields: WEBP_FIELDS.slice(0, 2), hotEnd: 64 } },
  ];
}

test('fuzz: ≥ 500 mutated PNG, JPEG and WebP files decode or throw ImageError', { timeout: fuzzTimeout(500, 300_000) }, async (t) => {
  const sources = await originals();
  for (const s of sources)
    assert.equal(
      (await readImagePixels(writeCase(s.target.bytes, `intact-${s.name}`), [8, 8, 3], kerasPreprocessing('xception'))).length,
      192,
      s.name,
    );
  const cases = fuzzCaseCount(500);
  const perSource = new Map<string, number>();
  const tally = await runFuzz(t, {
    name: 'images',
    seedOffset: 3,
    cases,
    typed: [ImageError],
    maxCaseMs: 10_000,
    run: async (rng, i) => {
      const source = sources[i % sources.length]!;
      perSource.set(source.name, (perSource.get(source.name) ?? 0) + 1);
      const file = writeCase(mutate(rng, source.target).bytes, `${i}-${source.name}`);
      const channels = rng.int(2) === 0 ? 1 : 3;
      const prep = rng.int(2) === 0 ? kerasPreprocessing('xception') : trainingPreprocessing('xception');
      try {
        // A small pixel limit keeps lying headers cheap; the default limit has its own test.
        const px = await readImagePixels(file, [8, 8, channels], prep, { flip: rng.int(2) === 0 }, { maxPixels: 1 << 21 });
        assert.equal(px.length, 64 * channels);
      } catch (e) {
        if (e instanceof ImageError) assert.equal(e.file, file);
        throw e;
      } finally {
        fs.rmSync(file);
      }
    },
  });
  assertAtLeast(tally, 500, 'images');
  assert.ok(!hasEnoughCases(tally) || (rejectedCount(tally) > 0 && tally.succeeded > 0), 'both outcomes occur');
  assert.ok(
    [...perSource.values()].every((n) => n >= Math.floor(cases / sources.length)),
    'every format fuzzed',
  );
  assert.ok(ImageError.prototype instanceof DatasetError);
});

/** Each case gets its own file name: decoders may cache by name. */
function writeCase(bytes: Uint8Array, name: string): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  return file;
}
