/**
 * Multi-label training end to end on a tiny fashion-mosaic: MAP rises, the run records `evalMap`,
 * an interrupted run resumes to the same weights, and a softmax head on multi-label data is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import '../../src/index.js';
import { Progress } from '../../src/train/progress.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { type TrainConfig, train } from '../../src/train/trainer.js';
import { OptionError } from '../../src/core/errors.js';
import { idxBytes, makeTempDir, writeFile } from '../data/fixtures.js';
import { assertBitEqual, tinyTrainConfig } from '../helpers/training.js';
import { runCli } from '../cli/helpers.js';
import type { Batch } from '../../src/data/loader.js';
import { multiLabelTargets, resolveMultiLabel } from '../../src/train/multilabel.js';

const quiet = new Progress(process.stderr, true);

/**
 * Fashion-MNIST-format files of 8×8 items whose class shows in the picture: class k lights
 * row k % 8 (k < 8) or column k − 8 (k ≥ 8), with a little per-item noise.
 */
function writeItems(dir: string, counts: { train: number; test: number }): void {
  mkdirSync(dir, { recursive: true });
  for (const [prefix, n] of [
    ['train', counts.train],
    ['t10k', counts.test],
  ] as const) {
    const images = new Uint8Array(n * 64);
    const labels = Array.from({ length: n }, (_, i) => i % 10);
    for (let i = 0; i < n; i++) {
      const k = labels[i]!;
      for (let y = 0; y < 8; y++)
        for (let x = 0; x < 8; x++) {
          const on = k < 8 ? y === k : x === k - 8 || x === k - 6;
          images[i * 64 + y * 8 + x] = on ? 200 + ((i * 7 + x) % 50) : (i * 13 + y * 5 + x) % 30;
        }
    }
    writeFile(join(dir, `${prefix}-images-idx3-ubyte`), idxBytes([n, 8, 8], images));
    writeFile(join(dir, `${prefix}-labels-idx1-ubyte`), idxBytes([n], labels));
  }
}

function mosaicConfig(items: string, outDir: string, over: Partial<TrainConfig> = {}): TrainConfig {
  return tinyTrainConfig(items, outDir, {
    dataset: `fashion-mosaic:dir=${items},size=12,items=1-2,train=192,test=96,seed=1`,
    modelOptions: { stem: 'small', width: 1 / 8, middleBlocks: 1, bnMomentum: 0.5 },
    optimizer: 'adam',
    momentum: undefined,
    nesterov: undefined,
    lr: 0.01,
    labelSmoothing: 0,
    ema: 0,
    epochs: 4,
    batchSize: 32,
    schedule: 'constant',
    ...over,
  });
}

test('a tiny multi-label run: sigmoid head implied, MAP@100 rises, metrics.jsonl carries evalMap', async () => {
  const tmp = makeTempDir('multilabel');
  try {
    const items = join(tmp.dir, 'items');
    writeItems(items, { train: 200, test: 100 });
    const out = join(tmp.dir, 'run');
    // An evaluation after every step: the first, after one step, is of a nearly untrained model.
    const r = await train(mosaicConfig(items, out, { evalsPerEpoch: 6 }), { progress: quiet });
    const maps = r.history.map((h) => h.evalMap!);
    assert.equal(maps.length, 4);
    for (const m of maps) assert.ok(m >= 0 && m <= 1, `map ${m}`);
    const first = r.evalPoints[0]!.evalMap!;
    assert.ok(
      maps.at(-1)! > first + 0.05,
      `MAP@100 after step 1: ${first.toFixed(3)}, by epoch: ${maps.map((m) => m.toFixed(3)).join(' ')}`,
    );
    // Chance is the share of positives per class (~0.15 here).
    assert.ok(r.testMap! > 0.3, `final MAP@100 ${r.testMap}`);
    assert.equal(r.testPerClassAP!.length, 10);
    assert.ok(Number.isNaN(r.testTop1));
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    assert.equal(JSON.parse(lines.at(-1)!).evalMap, maps.at(-1));
    assert.match(readFileSync(join(out, 'curves.svg'), 'utf8'), />MAP@100</);
    assert.equal(readCheckpoint(out).state.model.options['classifierActivation'], 'sigmoid');
    // `eval --json` of the run reports MAP@100 (the same figure: the same test canvases, no weight average).
    const ev = await runCli(['eval', '--weights', out, '--json']);
    assert.equal(ev.code, 0, ev.err);
    const printed = JSON.parse(ev.out) as { map: number; perClassAP: number[] };
    assert.ok(Math.abs(printed.map - r.testMap!) < 1e-6, `${printed.map} vs ${r.testMap}`);
    assert.equal(printed.perClassAP.length, 10);
  } finally {
    tmp.cleanup();
  }
});

test('an interrupted multi-label run resumes to exactly the weights of an uninterrupted one', async () => {
  const tmp = makeTempDir('multilabel-resume');
  try {
    const items = join(tmp.dir, 'items');
    writeItems(items, { train: 100, test: 40 });
    const over = { epochs: 2, dataset: `fashion-mosaic:dir=${items},size=12,items=1-2,train=64,test=32,seed=2` };
    const full = await train(mosaicConfig(items, join(tmp.dir, 'full'), over), { progress: quiet });
    let steps = 0;
    const cut = await train(mosaicConfig(items, join(tmp.dir, 'cut'), over), { progress: quiet, shouldStop: () => ++steps === 3 });
    assert.equal(cut.interrupted, true);
    const resumed = await train(mosaicConfig(items, join(tmp.dir, 'cut'), over), { progress: quiet, resume: true });
    assertBitEqual(readCheckpoint(join(tmp.dir, 'full')).model, readCheckpoint(join(tmp.dir, 'cut')).model);
    assert.equal(resumed.testMap, full.testMap);
  } finally {
    tmp.cleanup();
  }
});

test('a softmax head on multi-label data, or multiLabel false, is a clear error', async () => {
  const tmp = makeTempDir('multilabel-softmax');
  try {
    const items = join(tmp.dir, 'items');
    writeItems(items, { train: 20, test: 10 });
    const over = { dataset: `fashion-mosaic:dir=${items},size=12,train=16,test=8` };
    const softmax = mosaicConfig(items, join(tmp.dir, 'a'), over);
    softmax.modelOptions = { ...softmax.modelOptions, classifierActivation: 'softmax' };
    await assert.rejects(
      train(softmax, { progress: quiet }),
      (e: Error) => e instanceof OptionError && /needs a sigmoid head/.test(e.message),
    );
    await assert.rejects(
      train(mosaicConfig(items, join(tmp.dir, 'b'), { ...over, multiLabel: false }), { progress: quiet }),
      (e: Error) => e instanceof OptionError && /this dataset is multi-label/.test(e.message),
    );
  } finally {
    tmp.cleanup();
  }
});

test('multiLabel is implied by the data or a sigmoid head; a softmax head with it is refused', () => {
  assert.equal(resolveMultiLabel(undefined, true, 'sigmoid'), true);
  assert.equal(resolveMultiLabel(undefined, false, 'sigmoid'), true);
  assert.equal(resolveMultiLabel(undefined, false, 'softmax'), false);
  assert.equal(resolveMultiLabel(true, false, 'linear'), true);
  assert.throws(() => resolveMultiLabel(true, false, 'softmax'), /needs a sigmoid head/);
  assert.throws(() => resolveMultiLabel(undefined, true, 'softmax'), /multi-label data needs a sigmoid head/);
  assert.throws(() => resolveMultiLabel(false, true, 'sigmoid'), /this dataset is multi-label/);
});

test('targets: multi-hot as given, one-hot from single-label batches, Keras binary label smoothing', () => {
  const single: Batch = { x: new Float32Array(0), y: Int32Array.of(2, 0), size: 2, shape: [2, 1, 1, 0] };
  assert.deepEqual([...multiLabelTargets(single, 3, 0)], [0, 0, 1, 1, 0, 0]);
  const multi: Batch = { ...single, targets: Float32Array.of(1, 0, 1, 0, 1, 0) };
  assert.deepEqual([...multiLabelTargets(multi, 3, 0)], [1, 0, 1, 0, 1, 0]);
  assert.deepEqual([...multiLabelTargets(multi, 3, 0.2)], [0.9, 0.1, 0.9, 0.1, 0.9, 0.1].map(Math.fround));
});

test('a 2-replica multi-label run follows the 1-replica run: the same losses within tolerance, MAP@100 alike', async () => {
  const tmp = makeTempDir('multilabel-replicas');
  try {
    const items = join(tmp.dir, 'items');
    writeItems(items, { train: 100, test: 40 });
    const over = { epochs: 2, dataset: `fashion-mosaic:dir=${items},size=12,items=1-2,train=128,test=64,seed=3` };
    const one = await train(mosaicConfig(items, join(tmp.dir, 'one'), over), { progress: quiet });
    const two = await train(mosaicConfig(items, join(tmp.dir, 'two'), { ...over, replicas: 2 }), { progress: quiet });
    assert.equal(JSON.parse(readFileSync(join(tmp.dir, 'two', 'config.json'), 'utf8')).replicas, 2);
    // Each replica normalizes with its own half-batch statistics, so the runs agree closely, not bit
    // for bit (the moving statistics drift apart most: evaluation losses differ more than training ones).
    assert.equal(two.history.length, 2);
    two.history.forEach((h, i) => {
      const ref = one.history[i]!.trainLoss;
      assert.ok(Math.abs(h.trainLoss - ref) < 0.05 * ref, `epoch ${i + 1} training loss: 2 replicas ${h.trainLoss} vs 1 replica ${ref}`);
    });
    assert.ok(Math.abs(two.testMap! - one.testMap!) < 0.1, `MAP@100: 2 replicas ${two.testMap} vs 1 replica ${one.testMap}`);
  } finally {
    tmp.cleanup();
  }
});
