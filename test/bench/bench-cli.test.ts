import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../../src/core/engine.js';
import { OptionError } from '../../src/core/errors.js';
import { referenceBackend } from '../../src/backends/index.js';
import { CASES, caseModelOptions, selectCases } from '../../src/bench/cases.js';
import { forwardFlops } from '../../src/bench/flops.js';
import { median, timeSteps } from '../../src/bench/timing.js';
import { medianRow, type BenchRow } from '../../src/bench/run.js';
import { benchCommand } from '../../src/cli/commands/bench.js';
import { main } from '../../src/cli/main.js';
import { xception } from '../../src/models/xception/xception.js';

// A tiny Xception (71×71, width 1/16, one middle block): the whole pipeline in seconds.
const TINY = ['--size', '71', '--width', '0.0625', '--middle-blocks', '1', '--repeats', '2', '--warmup', '1', '--min-time', '0'];

test('bench --json runs an inference and a training case end to end: one well-formed line each, ONNX Runtime beside inference', async () => {
  let out = '';
  const code = await main(['bench', '--json', '--cases', 'train-b8-299,infer-b1-299', ...TINY], (s) => (out += s));
  assert.equal(code, 0);
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 2, out);
  const rows = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  // Rows follow the table's order, whatever the order given.
  assert.deepEqual(
    rows.map((r) => r['case']),
    ['infer-b1-299', 'train-b8-299'],
  );
  const tiny = noGrad(() =>
    xception({ ...caseModelOptions(CASES[0]!, { size: 71, width: 0.0625, middleBlocks: 1 }), backend: referenceBackend }),
  );
  const flops = forwardFlops(tiny);
  tiny.dispose();
  for (const r of rows) {
    assert.ok(['native', 'wasm', 'reference'].includes(r['backend'] as string), String(r['backend']));
    assert.equal(r['precision'], 'fp32');
    const ips = r['imagesPerSec'] as number,
      gflops = r['gflops'] as number,
      sec = r['secondsPerStep'] as number;
    assert.ok(Number.isFinite(ips) && ips > 0, `imagesPerSec ${ips}`);
    assert.ok((r['peakRssMB'] as number) > 10, `peak RSS ${r['peakRssMB']}`);
    const batch = r['case'] === 'infer-b1-299' ? 1 : 8;
    assert.equal(r['batch'], batch);
    assert.equal(r['imageSize'], 71);
    assert.ok(Math.abs(ips - batch / sec) < 1e-9 * ips);
    // Achieved GFLOP/s is the counted FLOPs of one step over its median time; training counts 3×.
    const stepFlops = flops * batch * (r['case'] === 'train-b8-299' ? 3 : 1);
    assert.ok(Math.abs(gflops - stepFlops / sec / 1e9) < 1e-9 * gflops, `gflops ${gflops}`);
  }
  assert.equal(rows[0]!['path'], rows[0]!['backend'] === 'native' ? 'compiled' : 'op-by-op', 'native inference runs the compiled plan');
  assert.equal(rows[1]!['path'], 'op-by-op', 'training runs op by op');
  const peer = rows[0]!['peer'] as { name: string; imagesPerSec: number } | null;
  assert.ok(peer, 'the inference case has ONNX Runtime beside it');
  assert.match(peer.name, /^onnxruntime \d+\.\d+/);
  assert.ok(Number.isFinite(peer.imagesPerSec) && peer.imagesPerSec > 0);
  assert.ok(Math.abs((rows[0]!['ratio'] as number) - (rows[0]!['imagesPerSec'] as number) / peer.imagesPerSec) < 1e-9);
  assert.equal(rows[1]!['peer'], null, 'no peer for training without --pytorch');
  assert.equal(rows[1]!['ratio'], null);
});

test('bench --inference both: op-by-op and compiled rows for one inference case, against one peer run', async (t) => {
  let out = '';
  let progress = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => ((progress += s), true)) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(['bench', '--json', '--cases', 'infer-b1-299', '--inference', 'both', ...TINY], (s) => (out += s));
  } finally {
    process.stderr.write = write;
  }
  assert.equal(code, 0);
  const rows = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  if (rows[0]!['backend'] !== 'native') {
    t.skip('native backend unavailable: both rows run op by op');
    return;
  }
  assert.deepEqual(
    rows.map((r) => r['path']),
    ['op-by-op', 'compiled'],
  );
  assert.deepEqual(rows[0]!['peer'], rows[1]!['peer'], 'the same peer measurement');
  assert.equal(progress.match(/onnxruntime…/g)?.length, 1, 'ONNX Runtime ran once');
  for (const r of rows) {
    const peer = r['peer'] as { imagesPerSec: number };
    assert.ok(Math.abs((r['ratio'] as number) - (r['imagesPerSec'] as number) / peer.imagesPerSec) < 1e-9);
  }
  await assert.rejects(
    benchCommand(['--inference', 'fused'], () => {}),
    (e: Error) => e instanceof OptionError && /--inference/.test(e.message),
  );
  await assert.rejects(
    benchCommand(['--precision', 'fp16'], () => {}),
    (e: Error) => e instanceof OptionError && /--precision/.test(e.message),
  );
});

test('bench --replicas 1,2: one training row per replica count, data-parallel rows marked', async () => {
  let out = '';
  const code = await main(
    [
      'bench',
      '--json',
      '--cases',
      'train-b32-64',
      '--replicas',
      '1,2',
      '--no-peer',
      '--size',
      '16',
      '--width',
      '0.0625',
      '--middle-blocks',
      '1',
      '--repeats',
      '1',
      '--warmup',
      '1',
      '--min-time',
      '0',
    ],
    (s) => (out += s),
  );
  assert.equal(code, 0);
  const rows = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    rows.map((r) => r['replicas']),
    [1, 2],
  );
  for (const r of rows) assert.ok((r['imagesPerSec'] as number) > 0 && r['case'] === 'train-b32-64');
  await assert.rejects(
    benchCommand(['--replicas', '0'], () => {}),
    (e: Error) => e instanceof OptionError && /--replicas must be an integer ≥ 1/.test(e.message),
  );
});

test("bench --rounds 2: each case measured twice beside its peer, medians and every round's ratio reported", async () => {
  let out = '';
  const code = await main(['bench', '--json', '--cases', 'infer-b1-299', '--rounds', '2', ...TINY], (s) => (out += s));
  assert.equal(code, 0);
  const rows = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(rows.length, 1);
  const r = rows[0]!;
  assert.equal(r['rounds'], 2);
  const ratios = r['ratios'] as number[];
  assert.equal(ratios.length, 2);
  assert.ok(ratios.every((x) => Number.isFinite(x) && x > 0));
  assert.ok(Math.abs((r['ratio'] as number) - (ratios[0]! + ratios[1]!) / 2) < 1e-12, 'the median of two is their mean');
  await assert.rejects(
    benchCommand(['--rounds', '0'], () => {}),
    (e: Error) => e instanceof OptionError && /--rounds must be an integer ≥ 1/.test(e.message),
  );
});

test('medianRow: medians of speeds and ratios, the largest peak memory', () => {
  const row = (ips: number, peerIps: number, rss: number): BenchRow => ({
    case: 'infer-b1-299',
    backend: 'native',
    path: 'compiled',
    precision: 'fp32',
    imagesPerSec: ips,
    gflops: ips * 2,
    peer: { name: 'onnxruntime 1', imagesPerSec: peerIps, gflops: peerIps * 2, peakRssMB: rss + 1 },
    ratio: ips / peerIps,
    batch: 1,
    imageSize: 71,
    peakRssMB: rss,
    secondsPerStep: 1 / ips,
    replicas: 1,
    rounds: 1,
    ratios: [ips / peerIps],
  });
  const m = medianRow([row(10, 10, 100), row(12, 8, 300), row(11, 11, 200)]);
  assert.equal(m.imagesPerSec, 11);
  assert.equal(m.peer!.imagesPerSec, 10);
  assert.equal(m.ratio, 1); // median of 1, 1.5, 1
  assert.equal(m.peakRssMB, 300);
  assert.equal(m.peer!.peakRssMB, 301);
  assert.deepEqual(m.ratios, [1, 1.5, 1]);
  assert.equal(m.rounds, 3);
});

test('bench prints a table without --json; --no-peer leaves the peer out', async () => {
  let out = '';
  const code = await main(['bench', '--cases', 'infer-b1-299', '--no-peer', ...TINY], (s) => (out += s));
  assert.equal(code, 0);
  const [head, row, ...rest] = out.trim().split('\n');
  assert.match(head!, /^case\s+backend\s+path\s+prec\s+img\/s\s+GFLOP\/s/);
  assert.match(row!, /^infer-b1-299\s+(native\s+compiled|reference\s+op-by-op)\s+fp32\s+[\d.]+\s+[\d.]+\s+\d+\s+—/);
  assert.equal(rest.length, 0);
});

test('bad flags are clear errors, before anything runs', async () => {
  const run = (args: string[]) => benchCommand(args, () => {});
  await assert.rejects(
    run(['--cases', 'infer-b2-299']),
    (e: Error) => e instanceof OptionError && /unknown case 'infer-b2-299'.*known: infer-b1-299/.test(e.message),
  );
  await assert.rejects(run(['--cases', ',']), (e: Error) => e instanceof OptionError && /--cases needs/.test(e.message));
  await assert.rejects(
    run(['--repeats', '0']),
    (e: Error) => e instanceof OptionError && /--repeats must be an integer ≥ 1/.test(e.message),
  );
  await assert.rejects(run(['--repeats', 'many']), (e: Error) => e instanceof OptionError && /--repeats/.test(e.message));
  await assert.rejects(
    run(['--backend', 'gpu']),
    (e: Error) => e instanceof OptionError && /--backend must be one of native, reference/.test(e.message),
  );
  await assert.rejects(run(['--size', '64']), (e: Error) => e instanceof OptionError && /ImageNet stem.*at least 71/.test(e.message));
  await assert.rejects(run(['--pytorch', '--no-peer']), (e: Error) => e instanceof OptionError && /contradict/.test(e.message));
  await assert.rejects(run(['--fast']), (e: Error) => e instanceof OptionError && /bench: Unknown option '--fast'/.test(e.message));
  await assert.rejects(run(['extra']), (e: Error) => e instanceof OptionError && /positional/i.test(e.message));
  let err = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    assert.equal(await main(['bench', '--repeats=-1'], () => {}), 2);
  } finally {
    process.stderr.write = write;
  }
  assert.match(err, /xception bench: error: --repeats must be an integer ≥ 1, got '-1'/);
});

test('bench --help names every case and flag', async () => {
  let out = '';
  assert.equal(await benchCommand(['--help'], (s) => (out += s)), 0);
  for (const c of CASES) assert.ok(out.includes(c.name), c.name);
  for (const f of ['--json', '--cases', '--repeats', '--no-peer', '--backend', '--pytorch', '--replicas', '--rounds'])
    assert.ok(out.includes(f), f);
});

test('case selection keeps the table order; timing takes the median after the warm-up', async () => {
  assert.deepEqual(
    selectCases(['train-b32-64', 'infer-b1-299']).map((c) => c.name),
    ['infer-b1-299', 'train-b32-64'],
  );
  assert.equal(selectCases(undefined).length, 4);
  assert.throws(() => selectCases([]), OptionError);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  let calls = 0;
  const t = await timeSteps(() => void calls++, { warmup: 2, repeats: 3, minSeconds: 0 });
  assert.equal(t.stepsPerRepeat, 1);
  assert.equal(calls, 2 + 3);
  assert.equal(t.repeatSeconds.length, 3);
  assert.equal(t.secondsPerStep, median(t.repeatSeconds));
});
