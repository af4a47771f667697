/**
 * --max-image-pixels on predict, eval and train: the commands that read image files state the
 * limit in --help, and an image over it is refused in under a second without stopping the others.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { MAX_IMAGE_PIXELS, setDefaultImagePixelLimit } from '../../src/data/image-file.js';
import { runCli } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-image-limit-flag-'));
after(() => {
  setDefaultImagePixelLimit(MAX_IMAGE_PIXELS);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function png(name: string, side: number): Promise<string> {
  const file = path.join(tmp, name);
  await sharp(Buffer.alloc(side * side * 3, 90), { raw: { width: side, height: side, channels: 3 } })
    .png()
    .toFile(file);
  return file;
}

test('predict, eval and train --help state --max-image-pixels and its default', async () => {
  for (const command of ['predict', 'eval', 'train']) {
    const r = await runCli([command, '--help']);
    assert.equal(r.code, 0);
    assert.match(r.out, /--max-image-pixels N +refuse an image whose header declares more pixels/, command);
    assert.match(r.out, /\(default 100,000,000\)/, command);
  }
});

test('predict --max-image-pixels refuses a larger image by its header and still classifies the rest', async () => {
  const big = await png('big.png', 64);
  const small = await png('small.png', 8);
  const started = performance.now();
  const r = await runCli([
    'predict',
    big,
    small,
    '--max-image-pixels',
    '1000',
    '--json',
    '--stem',
    'small',
    '--input-shape',
    '8,8,3',
    '--classes',
    '3',
    '--width',
    '0.25',
    '--middle-blocks',
    '0',
  ]);
  assert.ok(performance.now() - started < 5000, 'refused without decoding (the time includes building the model)');
  assert.equal(r.code, 1, 'an unreadable image makes the exit code 1');
  assert.match(r.err, /big\.png.*larger than 1,000 pixels/);
  const lines = r.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { file: string; predictions?: unknown[] });
  assert.deepEqual(
    lines.filter((l) => l.predictions).map((l) => path.basename(l.file)),
    ['small.png'],
  );
});

test('--max-image-pixels must be a positive integer', async () => {
  for (const bad of ['0', '-5', '1e9', 'many']) {
    const r = await runCli(['predict', 'x.png', '--max-image-pixels', bad]);
    assert.equal(r.code, 2, bad);
    assert.match(r.err, /--max-image-pixels must be an integer ≥ 1/, bad);
  }
});
