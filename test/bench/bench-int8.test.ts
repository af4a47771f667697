/**
 * bench --precision int8: int8 inference rows with ONNX Runtime on the QDQ export as their peer and
 * our fp32 plan beside it, with `hardware` in --json; training is refused as int8.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { OptionError } from '../../src/core/errors.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { CASES, caseModelOptions } from '../../src/bench/cases.js';
import { timingCalibration } from '../../src/bench/int8.js';
import { medianRow, type BenchRow, type PeerResult } from '../../src/bench/run.js';
import { benchCommand } from '../../src/cli/commands/bench.js';
import { main } from '../../src/cli/main.js';
import { tensor } from '../../src/core/creation.js';
import { noGrad } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import { compileInference } from '../../src/infer/compiled.js';
import { int8Hardware } from '../../src/infer/int8-hardware.js';
import { exportOnnx } from '../../src/io/onnx-model.js';
import { xception } from '../../src/models/xception/xception.js';
import { randomizeStatistics } from '../infer/helpers.js';

const skip = loadNativeBackend() ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;
const TINY = ['--size', '71', '--width', '0.0625', '--middle-blocks', '1', '--repeats', '1', '--warmup', '1', '--min-time', '0'];

test('bench --precision int8 --json: an int8 row, ONNX Runtime on the QDQ export as its peer, our fp32 plan, the hardware', {
  skip,
}, async () => {
  let out = '';
  const code = await main(['bench', '--json', '--precision', 'int8', '--cases', 'infer-b1-299', ...TINY], (s) => (out += s));
  assert.equal(code, 0);
  const rows = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(rows.length, 1, out);
  const r = rows[0]!;
  assert.equal(r['precision'], 'int8');
  assert.equal(r['path'], 'compiled');
  assert.equal(r['hardware'], int8Hardware());
  const peer = r['peer'] as { name: string; imagesPerSec: number };
  assert.match(peer.name, /^onnxruntime \d/);
  assert.ok(peer.imagesPerSec > 0);
  assert.ok(Math.abs((r['ratio'] as number) - (r['imagesPerSec'] as number) / peer.imagesPerSec) < 1e-9);
  const fp32 = r['fp32Plan'] as { name: string; imagesPerSec: number };
  assert.equal(fp32.name, 'xception fp32 plan');
  assert.ok(fp32.imagesPerSec > 0);
  assert.ok(Math.abs((r['fp32Ratio'] as number) - (r['imagesPerSec'] as number) / fp32.imagesPerSec) < 1e-9);
});

test('bench --precision int8 prints our fp32 plan on a second line under the ONNX Runtime peer', { skip }, async () => {
  let out = '';
  const code = await main(['bench', '--precision', 'int8', '--cases', 'infer-b1-299', ...TINY], (s) => (out += s));
  assert.equal(code, 0);
  const [, row, fp32, ...rest] = out.trim().split('\n');
  assert.match(row!, /^infer-b1-299\s+native\s+compiled\s+int8\s+[\d.]+\s+[\d.]+\s+\d+\s+onnxruntime \d\S*\s+[\d.]+\s+\d+\s+[\d.]+×$/);
  assert.match(fp32!, /^\s+xception fp32 plan\s+[\d.]+\s+\d+\s+[\d.]+×$/);
  assert.equal(rest.length, 0);
});

test('medianRow: int8 rows take the median of the fp32 plan and of its per-round ratios', () => {
  const peer = (name: string, ips: number, rss: number): PeerResult => ({ name, imagesPerSec: ips, gflops: ips * 2, peakRssMB: rss });
  const row = (ips: number, ortIps: number, fp32Ips: number, rss: number): BenchRow => ({
    case: 'infer-b8-299',
    backend: 'native',
    path: 'compiled',
    precision: 'int8',
    imagesPerSec: ips,
    gflops: ips * 2,
    peer: peer('onnxruntime 1', ortIps, rss),
    ratio: ips / ortIps,
    batch: 8,
    imageSize: 71,
    peakRssMB: rss,
    secondsPerStep: 8 / ips,
    replicas: 1,
    rounds: 1,
    ratios: [ips / ortIps],
    fp32Plan: peer('xception fp32 plan', fp32Ips, rss + 1),
    fp32Ratio: ips / fp32Ips,
  });
  const m = medianRow([row(20, 10, 10, 100), row(24, 12, 8, 300), row(22, 11, 11, 200)]);
  assert.equal(m.ratio, 2);
  assert.equal(m.fp32Plan!.name, 'xception fp32 plan');
  assert.equal(m.fp32Plan!.imagesPerSec, 10);
  assert.equal(m.fp32Plan!.peakRssMB, 301);
  assert.equal(m.fp32Ratio, 2); // median of 2, 3, 2
  const noPeers = medianRow([{ ...row(20, 10, 10, 100), peer: null, ratio: null, ratios: [], fp32Plan: null, fp32Ratio: null }]);
  assert.equal(noPeers.fp32Plan, null);
  assert.equal(noPeers.fp32Ratio, null);
});

/**
 * The bench's peer runs the same quantized model as our int8 plan: the tiny bench model with the
 * bench's timing calibration, exported as QDQ NCHW (as the bench worker does), run by ONNX Runtime
 * with all graph optimizations (its fused int8 kernels, as timed). The classifier is linear and the
 * batch norms have random statistics: with a fresh model's statistics every image's int8 logits are
 * 0 at the timing scale, and any two executors would agree. Tolerance: both compute the same integer
 * contract, and differ only where a value lands within rounding of a step boundary (ORT's fused
 * requantization rounds in its own order and its bias is int32), so they must agree
 * far better than either agrees with fp32 — under half of the int8-vs-fp32 error (measured: 0.24
 * of it, 0.5% of the logits' spread), and within 2% of the spread as in test/io/onnx-qdq.test.ts.
 */
test('ONNX Runtime on the bench QDQ export agrees with our int8 plan on the tiny bench model', { skip }, async () => {
  const backend = loadNativeBackend()!;
  const c = CASES.find((k) => k.name === 'infer-b8-299')!;
  const size = 71;
  const options = { ...caseModelOptions(c, { size, width: 0.0625, middleBlocks: 1 }), classifierActivation: 'linear' as const };
  const model = noGrad(() => xception({ ...options, backend }));
  randomizeStatistics(model);
  const calibration = timingCalibration(model, c.batch);
  const rng = new Random(1);
  const pixels = size * size * 3;
  const x = Float32Array.from({ length: c.batch * pixels }, () => rng.uniform(-1, 1));
  const run = (precision: 'int8' | 'fp32') => {
    const plan = compileInference(model, { batch: c.batch, precision, ...(precision === 'int8' ? { calibration } : {}) });
    const y = plan.run(tensor(x, [c.batch, size, size, 3], { backend }));
    const data = Float32Array.from(y.data() as Float32Array);
    y.dispose();
    plan.dispose();
    return data;
  };
  const ours = run('int8');
  const fp32 = run('fp32');
  const nchw = new Float32Array(x.length);
  for (let b = 0; b < c.batch; b++)
    for (let p = 0; p < size * size; p++)
      for (let ch = 0; ch < 3; ch++) nchw[b * pixels + ch * size * size + p] = x[b * pixels + p * 3 + ch]!;
  const session = await ort.InferenceSession.create(exportOnnx(model, { inputLayout: 'nchw', int8: calibration }), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
  });
  const out = await session.run({ input: new ort.Tensor('float32', nchw, [c.batch, 3, size, size]) });
  const theirs = out['output']!.data as Float32Array;
  await session.release();
  model.dispose();
  assert.equal(theirs.length, ours.length);
  const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  const spread = Math.max(...ours) - Math.min(...ours);
  const quantError = maxAbsDiff(ours, fp32);
  const d = maxAbsDiff(ours, theirs);
  assert.ok(spread > 0.1 && quantError > 0, `the int8 logits carry information: spread ${spread}, int8 vs fp32 ${quantError}`);
  assert.ok(d < 0.5 * quantError, `ORT int8 vs our int8 plan ${d}, int8 vs fp32 ${quantError}`);
  assert.ok(d < 0.02 * spread, `ORT int8 vs our int8 plan ${d}, logits' spread ${spread}`);
});

test('bench --precision int8 refuses the op-by-op path and the reference backend', async () => {
  for (const flags of [
    ['--inference', 'op-by-op'],
    ['--inference', 'both'],
    ['--backend', 'reference'],
  ]) {
    await assert.rejects(
      benchCommand(['--precision', 'int8', '--cases', 'infer-b1-299', ...flags], () => {}),
      (e: Error) => e instanceof OptionError && /int8/.test(e.message),
      flags.join(' '),
    );
  }
});
