import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { Random } from '../../src/core/random.js';
import { loadImage } from '../../src/predict/predict.js';
import { resizeLikePil } from '../../src/predict/resize-pil.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-img-'));

test('Pillow resizing, worked by hand: nearest takes the pixels under the sample centres, bilinear shrinks with a widened triangle', () => {
  const row = Uint8Array.from([0, 70, 140, 210]);
  assert.deepEqual([...resizeLikePil(row, 1, 4, 1, 1, 2, 'nearest')], [70, 210]);
  // Shrinking 4 → 2: taps at distance 0.5 and 1.5 weigh 0.75 and 0.25, cut at the edges and renormalized:
  // (0·.75 + 70·.75 + 140·.25)/1.75 = 50, (70·.25 + 140·.75 + 210·.75)/1.75 = 160.
  assert.deepEqual([...resizeLikePil(row, 1, 4, 1, 1, 2, 'bilinear')], [50, 160]);
  // Enlarging 2 → 4: plain linear interpolation between pixel centres, edges clamped.
  assert.deepEqual([...resizeLikePil(Uint8Array.from([0, 100]), 1, 2, 1, 1, 4, 'bilinear')], [0, 25, 75, 100]);
  assert.deepEqual([...resizeLikePil(Uint8Array.from([0, 100]), 1, 2, 1, 1, 4, 'nearest')], [0, 0, 100, 100]);
  // Channels stay apart; the same size is a copy.
  assert.deepEqual([...resizeLikePil(Uint8Array.from([1, 2, 3, 4, 5, 6]), 1, 2, 3, 1, 1, 'nearest')], [4, 5, 6]);
  const same = Uint8Array.from([9, 8, 7]);
  assert.deepEqual(resizeLikePil(same, 1, 1, 3, 1, 1, 'bilinear'), same);
  assert.throws(() => resizeLikePil(same, 1, 2, 3, 1, 1, 'nearest'), /3 bytes for a 1×2×3 image/);
});

function pillowAvailable(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import PIL'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const PIL_SCRIPT = `
import sys
from PIL import Image
src, out, h, w, mode, interp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
# keras.utils.load_img: open, convert the colour mode, resize to target_size (width, height)
im = Image.open(src).convert('L' if mode == 'grey' else 'RGB')
im = im.resize((w, h), {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR}[interp])
open(out, 'wb').write(im.tobytes())
`;

test("loadImage gives exactly the pixels of Keras's load_img (Pillow) for RGBA/RGB/grey PNGs, shrinking and enlarging", {
  skip: pillowAvailable() ? false : 'needs /usr/bin/python3 with Pillow (Debian python3-pil)',
}, async () => {
  const script = path.join(tmp, 'pil_resize.py');
  fs.writeFileSync(script, PIL_SCRIPT);
  const r = new Random(4);
  const cases: [number, number, number, number, number][] = [
    [1000, 700, 299, 299, 4],
    [50, 40, 299, 299, 3],
    [331, 240, 299, 299, 1],
    [640, 480, 28, 28, 4],
    [97, 301, 71, 150, 3],
  ];
  for (const [sw, sh, ow, oh, channels] of cases) {
    const px = Buffer.from(Array.from({ length: sw * sh * channels }, () => r.int(256)));
    const src = path.join(tmp, `img_${sw}x${sh}x${channels}.png`);
    await sharp(px, { raw: { width: sw, height: sh, channels: channels as 1 | 3 | 4 } })
      .png()
      .toFile(src);
    for (const mode of ['rgb', 'grey'] as const) {
      for (const interp of ['nearest', 'bilinear'] as const) {
        const out = path.join(tmp, 'pil.raw');
        execFileSync('/usr/bin/python3', [script, src, out, String(oh), String(ow), mode, interp]);
        const ours = await loadImage(src, [oh, ow, mode === 'rgb' ? 3 : 1], { interpolation: interp });
        assert.deepEqual(Buffer.from(ours), fs.readFileSync(out), `${sw}×${sh}×${channels} → ${ow}×${oh} ${mode} ${interp}`);
      }
    }
  }
});

test("JPEG and WebP decode too: lossless WebP gives the PNG's pixels, a quality-100 JPEG nearly", async () => {
  const r = new Random(8);
  const w = 64,
    h = 48;
  // Smooth content, so JPEG's error stays small.
  const px = Buffer.from(
    Array.from(
      { length: w * h * 3 },
      (_, i) => Math.round(((i / 3) % w) * 3 + Math.floor(i / 3 / w) * 2 + (i % 3) * 20 + r.uniform() * 4) % 256,
    ),
  );
  const png = path.join(tmp, 'a.png'),
    webp = path.join(tmp, 'a.webp'),
    jpg = path.join(tmp, 'a.jpg');
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(png);
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .webp({ lossless: true })
    .toFile(webp);
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
    .toFile(jpg);
  const a = await loadImage(png, [32, 40, 3], { interpolation: 'bilinear' });
  assert.deepEqual(await loadImage(webp, [32, 40, 3], { interpolation: 'bilinear' }), a);
  const j = await loadImage(jpg, [32, 40, 3], { interpolation: 'bilinear' });
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - j[i]!));
  assert.ok(max <= 8, `JPEG differs by up to ${max}`);
  await assert.rejects(loadImage(path.join(tmp, 'missing.png'), [8, 8, 3]), /missing\.png: no such file/);
  const truncated = path.join(tmp, 'truncated.png');
  fs.writeFileSync(truncated, fs.readFileSync(png).subarray(0, 100));
  await assert.rejects(loadImage(truncated, [8, 8, 3]), /truncated\.png: not a readable image/);
  await assert.rejects(loadImage(png, [8, 8, 2]), /1 or 3 channels, not 2/);
});
