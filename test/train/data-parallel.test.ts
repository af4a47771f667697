import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import '../../src/backends/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { backward } from '../../src/core/autograd.js';
import { tensor } from '../../src/core/creation.js';
import { keep, setBackend, tidy, tryBackend } from '../../src/core/engine.js';
import { sigmoidCrossEntropy, softmaxCrossEntropy } from '../../src/core/ops/loss.js';
import { Random } from '../../src/core/random.js';
import type { Batch } from '../../src/data/loader.js';
import { buildModel } from '../../src/models/registry.js';
import type { Model } from '../../src/nn/model.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { clearGrad, Optimizer } from '../../src/train/optimizers.js';
import { DataParallel, ReplicaError } from '../../src/train/parallel/data-parallel.js';
import { Progress } from '../../src/train/progress.js';
import { main } from '../../src/cli/main.js';
import { train, TrainingDivergedError, type TrainConfig } from '../../src/train/trainer.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';
import { assertBitEqual, tinyTrainConfig } from '../helpers/training.js';

setBackend(referenceBackend);
const quiet = new Progress(process.stderr, true);
const MODEL_OPTIONS = { stem: 'small', width: 1 / 16, middleBlocks: 1, inputShape: [8, 8, 1], classes: 10, seed: 3 };
const SGD = { name: 'sgd' as const, options: { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-4 } };

function makeModel(backendName = 'reference'): Model {
  return buildModel('xception', { ...MODEL_OPTIONS, backend: tryBackend(backendName)! });
}

function randomBatch(rows: number, seed: number): Batch {
  const r = new Random(seed);
  const x = Float32Array.from({ length: rows * 64 }, () => r.uniform() * 2 - 1);
  const y = Int32Array.from({ length: rows }, () => Math.floor(r.uniform() * 10));
  return { x, y, size: rows, shape: [rows, 8, 8, 1] };
}

function rowsOf(b: Batch, from: number, to: number): Batch {
  return { x: b.x.slice(from * 64, to * 64), y: b.y.slice(from, to), size: to - from, shape: [to - from, 8, 8, 1] };
}

function snapshot(m: Model): Map<string, Float32Array> {
  return new Map(m.weights.map((v) => [v.name, v.value.data()]));
}

async function start(model: Model, optimizer: Optimizer, labelSmoothing = 0.1): Promise<DataParallel> {
  // The replicas run on the backend `model` lives on.
  return DataParallel.start(
    {
      replicas: 2,
      threadsPerReplica: 1,
      model: 'xception',
      modelOptions: MODEL_OPTIONS,
      optimizer: SGD,
      labelSmoothing,
      ema: 0,
    },
    { model, optimizer, ema: null },
  );
}

test("a data-parallel step is the size-weighted mean of the shards' gradients, applied once, with averaged moving statistics", async () => {
  const main = makeModel();
  const mainOpt = new Optimizer(SGD.name, SGD.options);
  const dp = await start(main, mainOpt);
  const check = makeModel(); // the same seed: the same initial weights
  const checkOpt = new Optimizer(SGD.name, SGD.options);
  try {
    for (const [step, rows] of [
      [0, 7],
      [1, 6],
      [2, 5],
    ] as const) {
      const batch = randomBatch(rows, 10 + step);
      const sizes = dp.shardSizes(rows);
      assert.equal(sizes[0]! + sizes[1]!, rows);
      const got = await dp.step(batch, 0.05, step);
      assert.equal(got.applied, true);

      // The same step by hand, on one model: each shard from the same starting moving statistics.
      const trainable = check.weights.filter((v) => v.trainable);
      const state = check.weights.filter((v) => !v.trainable);
      const state0 = state.map((v) => v.value.data());
      const grads: Float32Array[][] = [];
      const states: Float32Array[][] = [];
      const losses: number[] = [];
      let row = 0;
      for (const n of sizes) {
        state.forEach((v, i) => v.setData(state0[i]!));
        const shard = rowsOf(batch, row, row + n);
        row += n;
        losses.push(
          tidy(() => {
            const out = check.forward(tensor(shard.x, shard.shape), { training: true, logits: true });
            const l = softmaxCrossEntropy(out, shard.y, { labelSmoothing: 0.1 });
            backward(l);
            return l.item();
          }),
        );
        grads.push(trainable.map((v) => v.value.grad!.data()));
        states.push(state.map((v) => v.value.data()));
        for (const v of check.weights) clearGrad(v);
      }
      const share = sizes.map((n) => n / rows);
      const mix = (parts: Float32Array[][], i: number): Float32Array =>
        Float32Array.from(parts[0]![i]!, (_, j) => share[0]! * parts[0]![i]![j]! + share[1]! * parts[1]![i]![j]!);
      trainable.forEach((v, i) => {
        v.value.grad = keep(tensor(mix(grads, i), v.shape));
      });
      checkOpt.lr = 0.05;
      checkOpt.apply(check.weights);
      state.forEach((v, i) => v.setData(mix(states, i)));
      assert.ok(Math.abs(got.loss - (share[0]! * losses[0]! + share[1]! * losses[1]!)) < 1e-6, `loss ${got.loss} vs ${losses}`);

      await dp.pullInto({ model: main, optimizer: mainOpt, ema: null }, true);
      assertBitEqual(snapshot(main), snapshot(check), `step ${step}`);
    }
    // Every replica holds the same weights.
    const other = makeModel();
    await dp.pullInto({ model: other, optimizer: new Optimizer(SGD.name, SGD.options), ema: null }, false, 1);
    assertBitEqual(snapshot(main), snapshot(other), 'replica 1 vs replica 0');
    // The optimizer state came along: the main thread continues exactly where the replicas are.
    assert.equal(mainOpt.step, 3);
    other.dispose();
  } finally {
    await dp.close();
    main.dispose();
    check.dispose();
  }
});

test('a non-finite loss in one shard updates nothing anywhere; bad input in one replica fails every replica cleanly, without a hang', async () => {
  const backend = tryBackend('native') ? 'native' : 'reference';
  const main = makeModel(backend);
  const opt = new Optimizer(SGD.name, SGD.options);
  const dp = await start(main, opt);
  try {
    // A learning rate that blows the weights up: the next loss is not finite, and that step
    // changes nothing (the trainer then stops with TrainingDivergedError).
    assert.equal((await dp.step(randomBatch(8, 1), 1e30, 0)).applied, true);
    await dp.pullInto({ model: main, optimizer: opt, ema: null }, false);
    const trainable = (m: Model) => new Map([...snapshot(m)].filter(([name]) => m.weights.find((v) => v.name === name)!.trainable));
    const before = trainable(main);
    const r = await dp.step(randomBatch(8, 2), 0.05, 1);
    assert.equal(r.applied, false);
    assert.ok(!Number.isFinite(r.loss));
    await dp.pullInto({ model: main, optimizer: opt, ema: null }, false);
    assertBitEqual(trainable(main), before, 'after a non-finite loss');
    // (The forward pass moved the moving statistics, as without replicas; they stay equal.)
    const other = makeModel(backend);
    await dp.pullInto({ model: other, optimizer: new Optimizer(SGD.name, SGD.options), ema: null }, false, 1);
    assertBitEqual(snapshot(other), snapshot(main), 'replica 1 vs replica 0');
    other.dispose();

    // A label out of range in the second shard: that replica throws, the first is released from
    // the barrier, and the caller gets one clear error.
    const wrong = randomBatch(8, 3);
    wrong.y[6] = 99;
    await assert.rejects(dp.step(wrong, 0.05, 2), (e: unknown) => e instanceof ReplicaError && /label|class|range/i.test(e.message));
    // The replicas are stopped now: later calls fail at once instead of waiting.
    await assert.rejects(dp.step(randomBatch(8, 4), 0.05, 3), ReplicaError);
  } finally {
    await dp.close();
    main.dispose();
  }
});

test('a NaN batch-norm gamma stops the step in every replica; no weight, slot or statistic changes', async () => {
  const backend = tryBackend('native') ? 'native' : 'reference';
  const main = makeModel(backend);
  const opt = new Optimizer(SGD.name, SGD.options);
  // A NaN gamma before a max pool: the NaN channel reaches the loss (a window of only NaN gives
  // NaN on every backend), so no replica applies the step.
  const gamma = main.weights.find((v) => v.name === 'block2_sepconv2_bn/gamma')!;
  const g = gamma.value.data();
  g[0] = NaN;
  gamma.setData(g);
  const dp = await start(main, opt);
  try {
    const before = snapshot(main);
    const outcome = await dp.step(randomBatch(8, 1), 0.05, 0).then(
      (r) => r,
      (e: unknown) => e,
    );
    assert.equal((outcome as { applied: boolean }).applied, false, String(outcome));
    for (const rank of [0, 1]) {
      const pulled = makeModel(backend);
      const pulledOpt = new Optimizer(SGD.name, SGD.options);
      await dp.pullInto({ model: pulled, optimizer: pulledOpt, ema: null }, true, rank);
      assertBitEqual(snapshot(pulled), before, `replica ${rank}: every weight, moving statistics included`);
      assert.equal(pulledOpt.step, 0);
      pulled.dispose();
    }
  } finally {
    await dp.close();
    main.dispose();
  }
});

function tinyConfig(dataDir: string, outDir: string, over: Partial<TrainConfig> = {}): TrainConfig {
  return tinyTrainConfig(dataDir, outDir, { replicas: 2, ...over });
}

test('a data-parallel run resumes exactly, and its divergence stops the run like a single-thread one', async () => {
  const tmp = makeTempDir('dp-resume');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 56, testCount: 16, h: 8, w: 8 });
    const full = await train(tinyConfig(data, join(tmp.dir, 'full')), { progress: quiet });
    assert.equal(full.epochs, 2);
    assert.ok(Number.isFinite(full.testTop1) && Number.isFinite(full.testLoss));
    let steps = 0;
    const cut = await train(tinyConfig(data, join(tmp.dir, 'cut')), {
      progress: quiet,
      shouldStop: () => ++steps === 3,
    });
    assert.equal(cut.interrupted, true);
    const resumed = await train(tinyConfig(data, join(tmp.dir, 'cut')), { progress: quiet, resume: true });
    assert.equal(resumed.interrupted, false);
    const a = readCheckpoint(join(tmp.dir, 'full'));
    const b = readCheckpoint(join(tmp.dir, 'cut'));
    assertBitEqual(a.model, b.model, 'resumed weights');
    assertBitEqual(new Map(Object.entries(a.ema)), new Map(Object.entries(b.ema)), 'resumed weight average');
    assert.ok(Object.keys(a.ema).length > 0);
    assert.equal(resumed.testTop1, full.testTop1);

    // A learning rate that blows up: the same typed error as without replicas, the checkpoint kept.
    await assert.rejects(
      train(tinyConfig(data, join(tmp.dir, 'nan'), { lr: 1e30, schedule: 'constant', ema: 0, epochs: 3 }), {
        progress: quiet,
      }),
      TrainingDivergedError,
    );
    // More replicas than images in a batch cannot be split.
    await assert.rejects(
      train(tinyConfig(data, join(tmp.dir, 'x'), { replicas: 17 }), { progress: quiet }),
      /replicas \(17\) cannot exceed the batch size/,
    );
  } finally {
    tmp.cleanup();
  }
});

test('xception train --replicas 2 trains from the command line and says so; bad counts are clear errors', async () => {
  const tmp = makeTempDir('dp-cli');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 32, testCount: 8, h: 8, w: 8 });
    const args = [
      'train',
      '--dataset',
      `mnist:${data}`,
      '--stem',
      'small',
      '--width',
      '0.0625',
      '--middle-blocks',
      '1',
      '--batch-size',
      '8',
      '--epochs',
      '1',
      '--backend',
      'reference',
      '--out',
      join(tmp.dir, 'run'),
    ];
    let out = '';
    assert.equal(await main([...args, '--replicas', '2'], (s) => (out += s)), 0);
    assert.match(out, /test top-1 [\d.]+%/);
    assert.equal(JSON.parse(readFileSync(join(tmp.dir, 'run', 'config.json'), 'utf8')).replicas, 2);
    const fail = async (extra: string[], pattern: RegExp) => {
      let err = '';
      const write = process.stderr.write.bind(process.stderr);
      process.stderr.write = ((s: string) => {
        err += s;
        return true;
      }) as typeof process.stderr.write;
      try {
        assert.equal(await main([...args, '--out', join(tmp.dir, 'bad'), ...extra], () => {}), 2);
      } finally {
        process.stderr.write = write;
      }
      assert.match(err, pattern);
    };
    await fail(['--replicas', '0'], /--replicas must be an integer ≥ 1, got '0'/);
    await fail(['--replicas', 'two'], /--replicas must be an integer/);
    await fail(['--replicas', '9'], /replicas \(9\) cannot exceed the batch size \(8\)/);
  } finally {
    tmp.cleanup();
  }
});

test('a replica stalled past the timeout ends the run with ReplicaError naming it, and the others are released', async () => {
  const main = makeModel();
  const mainOpt = new Optimizer(SGD.name, SGD.options);
  // Replica 1 blocks for 10 minutes in every step; the run must end after the 300 ms timeout instead.
  const dp = await DataParallel.start(
    {
      replicas: 2,
      threadsPerReplica: 1,
      model: 'xception',
      modelOptions: MODEL_OPTIONS,
      optimizer: SGD,
      labelSmoothing: 0,
      ema: 0,
      stallMs: 300,
      injectStall: { rank: 1, ms: 600_000 },
    },
    { model: main, optimizer: mainOpt, ema: null },
  );
  const started = Date.now();
  try {
    await assert.rejects(dp.step(randomBatch(4, 7), 0.05, 1), (e: Error) => {
      assert.ok(e instanceof ReplicaError, `expected ReplicaError, got ${e.name}: ${e.message}`);
      assert.match(e.message, /replica 1 stalled: no progress for 0\.3 s/);
      return true;
    });
    assert.ok(Date.now() - started < 30_000, 'the stall is detected within seconds, not after the stalled replica returns');
    await assert.rejects(dp.step(randomBatch(4, 8), 0.05, 2), ReplicaError); // the run stays failed
  } finally {
    await dp.close();
  }
  // The timeout is an option or XCEPTION_REPLICA_STALL_MS; nonsense is refused before any worker starts.
  await assert.rejects(
    DataParallel.start(
      {
        replicas: 2,
        threadsPerReplica: 1,
        model: 'xception',
        modelOptions: MODEL_OPTIONS,
        optimizer: SGD,
        labelSmoothing: 0,
        ema: 0,
        stallMs: -1,
      },
      { model: main, optimizer: mainOpt, ema: null },
    ),
    /stall timeout must be a positive number/,
  );
});

test('a multi-label data-parallel step: each replica gets its rows of the multi-hot targets; the loss is the shards’ sigmoid cross-entropy', async () => {
  const opts = { ...MODEL_OPTIONS, classifierActivation: 'sigmoid' };
  const main = buildModel('xception', { ...opts, backend: referenceBackend });
  const dp = await DataParallel.start(
    {
      replicas: 2,
      threadsPerReplica: 1,
      model: 'xception',
      modelOptions: opts,
      optimizer: SGD,
      labelSmoothing: 0,
      multiLabel: true,
      ema: 0,
    },
    { model: main, optimizer: new Optimizer(SGD.name, SGD.options), ema: null },
  );
  const check = buildModel('xception', { ...opts, backend: referenceBackend });
  try {
    const batch = randomBatch(7, 21);
    const r = new Random(5);
    batch.targets = Float32Array.from({ length: 7 * 10 }, () => (r.uniform() < 0.3 ? 1 : 0));
    const sizes = dp.shardSizes(7);
    const state = check.weights.filter((v) => !v.trainable);
    const state0 = state.map((v) => v.value.data());
    let row = 0;
    const losses = sizes.map((n) => {
      state.forEach((v, i) => v.setData(state0[i]!));
      const shard = rowsOf(batch, row, row + n);
      const targets = batch.targets!.slice(row * 10, (row + n) * 10);
      row += n;
      return tidy(() => sigmoidCrossEntropy(check.forward(tensor(shard.x, shard.shape), { training: true, logits: true }), targets).item());
    });
    const got = await dp.step(batch, 0.05, 0);
    assert.equal(got.applied, true);
    const expected = (sizes[0]! * losses[0]! + sizes[1]! * losses[1]!) / 7;
    assert.ok(Math.abs(got.loss - expected) < 1e-6, `loss ${got.loss} vs ${expected} (shards ${losses})`);
    // Softmax cross-entropy of the same logits would be a different number: the targets were used.
    const softmax = tidy(() => softmaxCrossEntropy(check.forward(tensor(batch.x, batch.shape), { logits: true }), batch.y).item());
    assert.ok(Math.abs(got.loss - softmax) > 0.1, `sigmoid ${got.loss} vs softmax ${softmax}`);
  } finally {
    await dp.close();
    main.dispose();
    check.dispose();
  }
});
