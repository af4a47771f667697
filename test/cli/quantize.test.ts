/**
 * `xception quantize` (calibration from an image folder or a dataset spec, one self-contained
 * file) and `xception export --format onnx --int8`, with the typed errors before any heavy work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { tryBackend } from '../../src/index.js';
import { readInt8Calibration } from '../../src/io/quantized-file.js';
import { readSafetensorsFile } from '../../src/io/safetensors.js';
import { openWeights } from '../../src/io/weights-source.js';
import { WeightFileError } from '../../src/io/errors.js';
import { writeIdxDataset, writeImageFolder } from '../data/fixtures.js';
import { runCli } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-quantize-'));
const at = (f: string) => path.join(tmp, f);
const SMALL = [
  '--stem',
  'small',
  '--input-shape',
  '16,16,3',
  '--classes',
  '4',
  '--width',
  '0.0625',
  '--middle-blocks',
  '1',
  '--backend',
  'reference',
];

test('quantize writes weights + calibration that predict reads and export turns into QDQ ONNX', async () => {
  assert.equal((await runCli(['export', '--format', 'safetensors', '--out', at('w.safetensors'), ...SMALL])).code, 0);
  await writeImageFolder(at('imgs'), { a: 10, b: 10 }, 12);
  const r = await runCli([
    'quantize',
    '--weights',
    at('w.safetensors'),
    '--calibrate',
    at('imgs'),
    '--out',
    at('q.safetensors'),
    '--method',
    'percentile',
    '--calibration-images',
    '18',
    '--backend',
    'reference',
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /int8 calibration \(percentile 99\.99, 18 images\)/);
  assert.match(r.err, /calibrated on 18 images/);
  const cal = await readInt8Calibration(at('q.safetensors'));
  assert.ok(cal && cal.images === 18 && cal.method === 'percentile' && Object.keys(cal.values).length > 5);
  // An ordinary weights file too: same weights, same record.
  const [a, b] = await Promise.all([readSafetensorsFile(at('w.safetensors')), readSafetensorsFile(at('q.safetensors'))]);
  assert.deepEqual(
    b.weights.map((w) => w.name),
    a.weights.map((w) => w.name),
  );
  assert.equal(b.metadata['model_config'], a.metadata['model_config']);
  const src = await openWeights(at('q.safetensors'));
  const model = src.buildModel();
  await src.loadInto(model);
  assert.ok(await readInt8Calibration(at('q.safetensors'), model));
  model.dispose();
  const e = await runCli([
    'export',
    '--format',
    'onnx',
    '--int8',
    '--weights',
    at('q.safetensors'),
    '--out',
    at('q.onnx'),
    '--backend',
    'reference',
  ]);
  assert.equal(e.code, 0, e.err);
  assert.match(e.out, /int8 QDQ \(percentile, 18 images\)/);
  const session = await ort.InferenceSession.create(fs.readFileSync(at('q.onnx')));
  const out = await session.run({ input: new ort.Tensor('float32', new Float32Array(2 * 3 * 16 * 16).fill(0.1), [2, 3, 16, 16]) });
  assert.equal(out['output']!.dims.join(','), '2,4');
  await session.release();
  // No calibration in a plain weights file.
  const plain = await runCli(['export', '--format', 'onnx', '--int8', '--weights', at('w.safetensors'), '--out', at('x.onnx')]);
  assert.equal(plain.code, 2);
  assert.match(plain.err, /holds no int8 calibration/);
});

test('quantize from a dataset spec; errors come before any calibration', async () => {
  writeIdxDataset(at('mnist'), { trainCount: 20, testCount: 3, h: 16, w: 16 });
  if (!fs.existsSync(at('w.safetensors'))) await runCli(['export', '--format', 'safetensors', '--out', at('w.safetensors'), ...SMALL]);
  const ok = await runCli([
    'quantize',
    '--weights',
    at('w.safetensors'),
    '--calibrate',
    `mnist:${at('mnist')}`,
    '--out',
    at('m.safetensors'),
    '--method',
    'minmax',
    '--backend',
    'reference',
  ]);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /minmax, 20 images/);
  const cases: [string[], RegExp][] = [
    [['--calibrate', `mnist:${at('mnist')}`, '--calibration-images', '4'], /--calibration-images must be an integer ≥ 16/],
    [['--calibrate', at('nowhere')], /unknown dataset|does not exist/],
    [['--calibrate', `folder:${at('nowhere')}`], /nowhere/],
    [['--calibrate', `mnist:${at('mnist')}`, '--method', 'kl'], /--method must be one of/],
    [['--calibrate', `mnist:${at('mnist')}`, '--method', 'minmax', '--percentile', '99'], /only to --method percentile/],
    [[], /needs --calibrate/],
  ];
  await writeImageFolder(at('few'), { a: 3 }, 8);
  cases.push([['--calibrate', at('few')], /3 image\(s\), but calibration needs at least 16/]);
  for (const [extra, want] of cases) {
    const r = await runCli([
      'quantize',
      '--weights',
      at('w.safetensors'),
      '--out',
      at('bad.safetensors'),
      '--backend',
      'reference',
      ...extra,
    ]);
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.err}`);
    assert.match(r.err, want);
    assert.doesNotMatch(r.err, /calibrated on/);
  }
  assert.ok(!fs.existsSync(at('bad.safetensors')));
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('an int8 file for another model, or with a broken calibration, is a WeightFileError', async () => {
  if (!fs.existsSync(at('w.safetensors'))) await runCli(['export', '--format', 'safetensors', '--out', at('w.safetensors'), ...SMALL]);
  if (!fs.existsSync(at('m.safetensors'))) {
    writeIdxDataset(at('mnist'), { trainCount: 20, testCount: 3, h: 16, w: 16 });
    const q = await runCli([
      'quantize',
      '--weights',
      at('w.safetensors'),
      '--calibrate',
      `mnist:${at('mnist')}`,
      '--out',
      at('m.safetensors'),
    ]);
    assert.equal(q.code, 0, q.err);
  }
  const src = await openWeights(at('m.safetensors'));
  const other = src.buildModel({ middleBlocks: 2 });
  await assert.rejects(
    readInt8Calibration(at('m.safetensors'), other),
    (e: unknown) => e instanceof WeightFileError && /does not fit/.test(String(e)),
  );
  other.dispose();
  const { weights, metadata } = await readSafetensorsFile(at('m.safetensors'));
  const { writeSafetensorsFile } = await import('../../src/io/safetensors.js');
  const cal = JSON.parse(metadata['int8_calibration']!);
  const key = Object.keys(cal.values)[0];
  for (const [i, broken] of [
    '{',
    JSON.stringify({ ...cal, values: { ...cal.values, [key]: { scale: -1, unsigned: false } } }),
    JSON.stringify({ ...cal, images: 'many' }),
  ].entries()) {
    await writeSafetensorsFile(at(`broken${i}.safetensors`), weights, { ...metadata, int8_calibration: broken });
    await assert.rejects(readInt8Calibration(at(`broken${i}.safetensors`)), WeightFileError);
  }
  const e = await runCli(['export', '--format', 'onnx', '--int8', '--weights', at('broken1.safetensors'), '--out', at('y.onnx')]);
  assert.equal(e.code, 2);
  assert.match(e.err, /scale -1/);
});

test('predict and eval take a quantized file with --precision int8 (its calibration, no --calibration)', {
  skip: tryBackend('native') ? false : 'native backend not built',
}, async () => {
  if (!fs.existsSync(at('w.safetensors'))) await runCli(['export', '--format', 'safetensors', '--out', at('w.safetensors'), ...SMALL]);
  await writeImageFolder(at('imgs2'), { a: 8, b: 8 }, 16);
  const q = await runCli(['quantize', '--weights', at('w.safetensors'), '--calibrate', at('imgs2'), '--out', at('q2.safetensors')]);
  assert.equal(q.code, 0, q.err);
  const image = path.join(at('imgs2'), 'a', fs.readdirSync(path.join(at('imgs2'), 'a'))[0]!);
  const predict = (weights: string) =>
    runCli(['predict', image, '--weights', weights, '--precision', 'int8', '--backend', 'native', '--json', '--top', '2']);
  const r = await predict(at('q2.safetensors'));
  assert.equal(r.code, 0, r.err);
  const line = JSON.parse(r.out.trim().split('\n').at(-1)!) as { predictions: Array<{ probability: number }> };
  assert.equal(line.predictions.length, 2);
  const plain = await predict(at('w.safetensors'));
  assert.notEqual(plain.code, 0);
  assert.match(plain.err + plain.out, /holds none; write a quantized file with `xception quantize/);
  const evalArgs = ['eval', '--weights', at('q2.safetensors'), '--dataset', `folder:${at('imgs2')}`, '--backend', 'native'];
  const e = await runCli([...evalArgs, '--precision', 'int8', '--json']);
  assert.equal(e.code, 0, e.err);
  type Scores = { testTop1: number; fp32?: { top1: number; top5: number; identical: number } };
  const lastJson = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!) as Scores;
  const scores = lastJson(e.out);
  assert.ok(scores.testTop1 >= 0 && scores.testTop1 <= 1);
  // The fp32 plan beside int8 is the plain fp32 eval, and accuracies can differ only where predictions do.
  const fp32 = lastJson((await runCli([...evalArgs, '--json'])).out);
  assert.equal(fp32.fp32, undefined);
  assert.equal(scores.fp32?.top1, fp32.testTop1);
  assert.ok(scores.fp32!.identical >= 0 && scores.fp32!.identical <= 1);
  assert.ok(Math.abs(scores.testTop1 - scores.fp32!.top1) <= 1 - scores.fp32!.identical + 1e-9);
  const text = await runCli([...evalArgs, '--precision', 'int8']);
  assert.match(
    text.out,
    /fp32 plan on the same images: top-1 [\d.]+%.*int8 top-1 [+−][\d.]+ points; [\d.]+% of predictions identical to fp32/,
  );
  const skipped = lastJson((await runCli([...evalArgs, '--precision', 'int8', '--json', '--no-compare'])).out);
  assert.equal(skipped.fp32, undefined);
  assert.equal(skipped.testTop1, scores.testTop1);
});
