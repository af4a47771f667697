/** `--precision int8 --calibration FILE` on predict: a calibrated int8 plan, and clear errors for every bad combination. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { noGrad } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import { buildModel } from '../../src/models/registry.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { minmaxCalibration } from '../infer/int8-reference.js';
import { saveWeights } from '../../src/io/model-weights.js';
import { writeIdxDataset } from '../data/fixtures.js';
import { runCli } from './helpers.js';

const native = loadNativeBackend();
const skip = native ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-precision-'));
const MODEL_ARGS = ['--stem', 'small', '--input-shape', '32,32,3', '--width', '0.25', '--middle-blocks', '1', '--classes', '10'];

const image = path.join(tmp, 'a.png');
const rng = new Random(3);
await sharp(Buffer.from(Array.from({ length: 32 * 32 * 3 }, () => Math.floor(rng.uniform() * 256))), {
  raw: { width: 32, height: 32, channels: 3 },
})
  .png()
  .toFile(image);

/** A min–max calibration of the model the flags build, on random images. */
function writeCalibration(file: string): void {
  const m = noGrad(() =>
    buildModel('xception', { stem: 'small', inputShape: [32, 32, 3], width: 0.25, middleBlocks: 1, classes: 10, backend: native! }),
  );
  const x = Float32Array.from({ length: 2 * 32 * 32 * 3 }, () => rng.uniform(-1, 1));
  fs.writeFileSync(file, JSON.stringify(minmaxCalibration(m, x, 2, false)));
  m.dispose();
}

const predict = (...args: string[]) => runCli(['predict', image, '--backend', 'native', '--json', ...MODEL_ARGS, ...args]);

test('predict --precision int8 --calibration FILE runs the int8 plan', { skip }, async () => {
  const cal = path.join(tmp, 'cal.json');
  writeCalibration(cal);
  const r = await predict('--precision', 'int8', '--calibration', cal, '--top', '3');
  assert.equal(r.code, 0, r.err);
  const line = JSON.parse(r.out.trim().split('\n').at(-1)!) as { predictions: Array<{ probability: number }> };
  assert.equal(line.predictions.length, 3);
  assert.ok(line.predictions.every((p) => p.probability >= 0 && p.probability <= 1));
});

test('bad --precision / --calibration combinations are clear errors', { skip }, async () => {
  const notJson = path.join(tmp, 'bad.json');
  fs.writeFileSync(notJson, '{ nope');
  const other = path.join(tmp, 'other.json');
  fs.writeFileSync(
    other,
    JSON.stringify({ method: 'minmax', images: 1, values: { 'inception_mixed9/conv': { scale: 1, unsigned: false } }, fp32Nodes: {} }),
  );
  const cases: Array<[string[], RegExp]> = [
    [['--precision', 'int8'], /needs activation scales: no --weights given/],
    [['--calibration', other], /with --precision int8 only/],
    [['--precision', 'int4'], /precision/],
    [['--precision', 'int8', '--calibration', path.join(tmp, 'missing.json')], /cannot read it/],
    [['--precision', 'int8', '--calibration', notJson], /not JSON/],
    [['--precision', 'int8', '--calibration', other], /another model/],
  ];
  for (const [args, why] of cases) {
    const r = await predict(...args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.err + r.out, why, args.join(' '));
  }
});

test('eval --precision int8 --calibration FILE scores the int8 plan', { skip }, async () => {
  const data = path.join(tmp, 'mnist');
  writeIdxDataset(data, { trainCount: 4, testCount: 8, h: 28, w: 28 });
  const options = { stem: 'small' as const, inputShape: [28, 28, 1], width: 0.25, middleBlocks: 1, classes: 10, backend: native! };
  const m = noGrad(() => buildModel('xception', options));
  const weights = path.join(tmp, 'mnist.safetensors');
  await saveWeights(m, weights, 'safetensors');
  const cal = path.join(tmp, 'mnist-cal.json');
  const x = Float32Array.from({ length: 4 * 28 * 28 }, () => rng.uniform(-1, 1));
  fs.writeFileSync(cal, JSON.stringify(minmaxCalibration(m, x, 4, true)));
  m.dispose();
  const args = ['eval', '--weights', weights, '--dataset', `mnist:${data}`, '--backend', 'native', '--json'];
  const fp32 = await runCli(args);
  const int8 = await runCli([...args, '--precision', 'int8', '--calibration', cal]);
  assert.equal(fp32.code, 0, fp32.err);
  assert.equal(int8.code, 0, int8.err);
  const a = JSON.parse(fp32.out.trim()) as { testTop1: number; testLoss: number };
  const b = JSON.parse(int8.out.trim()) as { testTop1: number; testLoss: number };
  assert.ok(Number.isFinite(b.testLoss) && b.testTop1 >= 0 && b.testTop1 <= 1);
  assert.notEqual(a.testLoss, b.testLoss, 'the int8 plan ran');
  assert.ok(Math.abs(a.testLoss - b.testLoss) < 0.1 * Math.max(1, a.testLoss), `loss fp32 ${a.testLoss} vs int8 ${b.testLoss}`);
});
