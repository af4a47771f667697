/**
 * The graph interpreter, int8 calibration and simulated int8 (src/infer/interpret.ts,
 * calibrate.ts, simulate-int8.ts) on small Xceptions on the reference backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, xception, type Model } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { tensor } from '../../src/core/creation.js';
import { Random } from '../../src/core/random.js';
import { AbsHistogram, calibrate, int8Values } from '../../src/infer/calibrate.js';
import { CalibrationError, checkCalibrationFits, parseInt8Calibration } from '../../src/infer/calibration-check.js';
import { GraphInterpreter, int8Graph } from '../../src/infer/interpret.js';
import { valueKey, type Int8Calibration } from '../../src/infer/quant-types.js';
import { simulateInt8 } from '../../src/infer/simulate-int8.js';
import { errors, randomizeStatistics } from './helpers.js';

const backend = referenceBackend;

function smallModel(seed = 6, classes = 8): Model {
  const m = noGrad(() => xception({ backend, stem: 'small', inputShape: [16, 16, 3], classes, width: 0.125, middleBlocks: 1, seed }));
  randomizeStatistics(m);
  return m;
}

function images(n: number, shape: readonly number[], seed: number): Float32Array {
  const r = new Random(seed);
  return Float32Array.from({ length: n * shape.reduce((a, b) => a * b, 1) }, () => r.uniform(-1, 1));
}

function* batches(x: Float32Array, per: number, size: number): Generator<Float32Array> {
  for (let i = 0; i < x.length; i += per * size) yield x.subarray(i, Math.min(x.length, i + per * size));
}

const argmax = (a: Float32Array, row: number, k: number) => {
  let best = 0;
  for (let j = 1; j < k; j++) if (a[row * k + j]! > a[row * k + best]!) best = j;
  return best;
};

test('the graph interpreter equals model.forward within 1e-4', () => {
  const m = smallModel();
  const x = images(3, m.inputShape, 1);
  const want = noGrad(() => m.forward(tensor(x, [3, ...m.inputShape], { backend })).data());
  for (const logits of [false, true]) {
    const interp = new GraphInterpreter(int8Graph(m, logits), backend);
    const got = interp.run(x, 3);
    interp.dispose();
    if (!logits) assert.ok(errors(got, want).abs < 1e-4, `abs ${errors(got, want).abs}`);
    else assert.ok(errors(got, want).abs > 1e-3, 'logits differ from probabilities');
  }
  m.dispose();
});

test('minmax scales are the true max |x| seen; percentile ≤ minmax; entropy finite', async () => {
  const m = smallModel();
  const x = images(10, m.inputShape, 2);
  const per = x.length / 10;
  const g = int8Graph(m);
  const maxAbs = new Map<string, number>();
  const interp = new GraphInterpreter(g, backend);
  interp.run(x, 10, {
    onValue: (n, v) => {
      let mx = 0;
      for (const e of v) mx = Math.max(mx, Math.abs(e));
      maxAbs.set(valueKey(n), mx);
      return undefined;
    },
  });
  interp.dispose();
  const minmax = await calibrate(m, batches(x, per, 3), { method: 'minmax', allInt8: true });
  const pct = await calibrate(m, batches(x, per, 4), { method: 'percentile', percentile: 99, allInt8: true });
  const ent = await calibrate(m, batches(x, per, 10), { method: 'entropy', allInt8: true });
  assert.equal(minmax.images, 10);
  assert.equal(pct.percentile, 99);
  const keys = int8Values(g, {}).map(valueKey);
  assert.deepEqual(Object.keys(minmax.values).sort(), [...keys].sort());
  for (const k of keys) {
    const q = minmax.values[k]!;
    const top = q.unsigned ? 255 : 127;
    assert.equal(q.scale, Math.fround(maxAbs.get(k)! / top), `${k}: ${q.scale * top} vs ${maxAbs.get(k)}`);
    assert.ok(pct.values[k]!.scale <= q.scale * (1 + 1e-12), `${k}: percentile above minmax`);
    assert.ok(Number.isFinite(ent.values[k]!.scale) && ent.values[k]!.scale > 0 && ent.values[k]!.scale <= q.scale * (1 + 1e-12));
    assert.equal(q.unsigned, pct.values[k]!.unsigned);
  }
  // Post-ReLU values are unsigned; the image is not.
  assert.equal(minmax.values[valueKey(g.input)]?.unsigned, false);
  assert.ok(Object.values(minmax.values).some((q) => q.unsigned));
  assert.ok(pct.values[keys[3]!]!.scale < minmax.values[keys[3]!]!.scale, 'the 99th percentile clips something');
  m.dispose();
});

test('the histogram keeps every value while it grows its range', () => {
  const h = new AbsHistogram();
  h.add(Float32Array.from([0.1, -0.2]));
  h.add(Float32Array.from([5, -40, 3]));
  assert.equal(h.total, 5);
  assert.equal(h.max, 40);
  assert.equal(h.min, -40);
  assert.ok(h.range > 40);
  assert.equal(
    h.counts.reduce((a, b) => a + b, 0),
    5,
  );
  assert.equal(h.percentile(100), 40);
  assert.ok(h.percentile(50) <= 5 + h.range / 2048);
  assert.throws(() => h.add(Float32Array.from([Number.NaN])), /not finite/);
});

test('simulated int8 stays close to fp32 and keeps the top class on most images', async () => {
  const m = smallModel(9, 10);
  const n = 24;
  const x = images(n, m.inputShape, 5);
  const cal = await calibrate(m, batches(x, x.length / n, 8), { method: 'minmax' });
  for (const k of Object.keys(cal.fp32Nodes)) assert.match(cal.fp32Nodes[k]!, /output error/);
  const test8 = images(16, m.inputShape, 6);
  const sim = simulateInt8(m, cal, test8, { batch: 16, logits: true });
  const interp = new GraphInterpreter(int8Graph(m, true), backend);
  const fp32 = interp.run(test8, 16);
  interp.dispose();
  const e = errors(sim, fp32);
  assert.ok(e.rel < 0.15, `int8 vs fp32 rel ${e.rel}`);
  assert.ok(e.rel > 1e-5, 'int8 really rounds');
  let same = 0;
  for (let i = 0; i < 16; i++) if (argmax(sim, i, 10) === argmax(fp32, i, 10)) same++;
  assert.ok(same >= 12, `top-1 agrees on ${same}/16`);
  // Deterministic: the reference gives the same numbers twice.
  assert.deepEqual(simulateInt8(m, cal, test8, { batch: 16, logits: true }), sim);
  m.dispose();
});

test('a calibration that does not fit the model is a CalibrationError', async () => {
  const m = smallModel();
  const x = images(2, m.inputShape, 7);
  const cal = await calibrate(m, [x], { method: 'minmax', allInt8: true });
  const other = noGrad(() =>
    xception({ backend, stem: 'small', inputShape: [16, 16, 3], classes: 8, width: 0.25, middleBlocks: 2, seed: 1 }),
  );
  assert.throws(() => simulateInt8(other, cal, x, { batch: 2 }), CalibrationError);
  const g = int8Graph(m);
  const key = Object.keys(cal.values)[2]!;
  const missing: Int8Calibration = { ...cal, values: { ...cal.values } };
  delete missing.values[key];
  assert.throws(() => checkCalibrationFits(g, missing), /has no scale/);
  assert.throws(
    () => checkCalibrationFits(g, { ...cal, values: { ...cal.values, 'nope/conv': { scale: 1, unsigned: false } } }),
    /not a value/,
  );
  assert.throws(() => checkCalibrationFits(g, { ...cal, fp32Nodes: { 'nope/conv': 'x' } }), /not a convolution/);
  for (const bad of [
    null,
    { ...cal, method: 'max' },
    { ...cal, images: 0 },
    { ...cal, values: { [key]: { scale: 0, unsigned: false } } },
    { ...cal, values: { [key]: { scale: Number.NaN, unsigned: false } } },
    { ...cal, values: { [key]: { scale: 1, unsigned: 'yes' } } },
    { ...cal, fp32Nodes: { [key]: 3 } },
    JSON.parse('{"method":"minmax","images":1,"values":{"__proto__":{"scale":1,"unsigned":false}},"fp32Nodes":{}}'),
  ]) {
    assert.throws(() => parseInt8Calibration(bad), CalibrationError, JSON.stringify(bad));
  }
  assert.deepEqual(parseInt8Calibration(JSON.parse(JSON.stringify(cal))), cal);
  await assert.rejects(calibrate(m, [], {}), /no images/);
  await assert.rejects(calibrate(m, [x.subarray(1)], {}), /whole number/);
  await assert.rejects(calibrate(m, [x], { method: 'kl' as never }), /method/);
  other.dispose();
  m.dispose();
});
