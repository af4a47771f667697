/**
 * Divergence is caught where it starts: a non-finite activation, batch-norm gamma or gradient
 * stops the step with TrainingDivergedError and leaves every weight bit-equal to before it, on
 * the reference and the native backend; the optimizer refuses non-finite gradients (clipping
 * or not) and a checkpoint is never written with a non-finite tensor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import type { Backend } from '../../src/core/backend.js';
import { tensor } from '../../src/core/creation.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import type { Batch } from '../../src/data/loader.js';
import { buildModel } from '../../src/models/registry.js';
import type { Model } from '../../src/nn/model.js';
import { CheckpointError, type RunState, saveCheckpoint } from '../../src/train/checkpoint.js';
import { ExponentialMovingAverage } from '../../src/train/ema.js';
import { Optimizer } from '../../src/train/optimizers.js';
import { TrainingDivergedError, trainingStep } from '../../src/train/trainer.js';
import { makeTempDir } from '../data/fixtures.js';
import { assertBitEqual } from '../helpers/training.js';

const native = loadNativeBackend();
const BACKENDS: [string, Backend | null][] = [
  ['reference', referenceBackend],
  ['native', native],
];

function eachBackend(name: string, body: (b: Backend) => void): void {
  for (const [label, b] of BACKENDS) {
    test(`${name} (${label})`, (t) => {
      if (!b) {
        t.skip(nativeBackendStatus().reason);
        return;
      }
      body(b);
    });
  }
}

function tinyModel(backend: Backend): Model {
  return buildModel('xception', {
    stem: 'small',
    width: 1 / 16,
    middleBlocks: 1,
    inputShape: [8, 8, 1],
    classes: 10,
    seed: 3,
    backend,
  });
}

function batchOf(size: number, seed: number): Batch {
  const x = Float32Array.from({ length: size * 64 }, (_, i) => Math.sin(i * 0.37 + seed));
  const y = Int32Array.from({ length: size }, (_, i) => (i * 7 + seed) % 10);
  return { x, y, size, shape: [size, 8, 8, 1] };
}

const snapshot = (m: Model) => new Map(m.weights.map((v) => [v.name, v.value.data() as Float32Array]));

/** Sets one value of a weight; returns the undo. */
function poke(model: Model, name: string, index: number, value: number): () => void {
  const v = model.weights.find((w) => w.name === name)!;
  const data = v.value.data() as Float32Array;
  const old = data[index]!;
  data[index] = value;
  v.setData(data);
  return () => {
    data[index] = old;
    v.setData(data);
  };
}

/** A model a few good steps into training (optimizer and average have state), ready for a bad one. */
function trainedParts(backend: Backend) {
  const model = tinyModel(backend);
  const optimizer = new Optimizer('sgd', { lr: 0.05, momentum: 0.9, nesterov: true, clipNorm: 5 });
  const ema = new ExponentialMovingAverage(0.9);
  const parts = { model, optimizer, ema, labelSmoothing: 0.1, classes: 10, backend };
  for (let s = 0; s < 2; s++) assert.ok(Number.isFinite(trainingStep(parts, batchOf(8, s)).loss));
  return parts;
}

/** The bad step throws TrainingDivergedError and changes no weight, slot, average or count. */
function assertStopsUnchanged(parts: ReturnType<typeof trainedParts>, batch: Batch, message: RegExp, repair: () => Batch): void {
  const { model, optimizer, ema } = parts;
  const before = snapshot(model);
  const slots = optimizer.getState();
  const shadow = ema.getState();
  assert.throws(
    () => trainingStep(parts, batch),
    (e: unknown) => e instanceof TrainingDivergedError && message.test(e.message),
  );
  assertBitEqual(snapshot(model), before, 'weights after the refused step');
  assert.equal(optimizer.getState().step, slots.step);
  assertBitEqual(
    new Map(Object.entries(optimizer.getState().slots).map(([k, v]) => [k, v[0]!])),
    new Map(Object.entries(slots.slots).map(([k, v]) => [k, v[0]!])),
    'optimizer slots',
  );
  assert.equal(ema.getState().updates, shadow.updates);
  assert.ok(
    model.weights.every((v) => v.value.grad === null),
    'no gradient left behind',
  );
  // And training goes on from there once the cause is repaired.
  assert.ok(Number.isFinite(trainingStep(parts, repair()).loss));
  model.dispose();
}

eachBackend('an Inf in one input pixel (so in the first activation) stops the step with nothing changed', (b) => {
  const parts = trainedParts(b);
  const bad = batchOf(8, 5);
  bad.x[77] = Infinity;
  assertStopsUnchanged(parts, bad, /the loss became NaN|gradient of .* holds NaN or infinite/, () => batchOf(8, 5));
});

eachBackend('an Inf batch-norm gamma stops the step with nothing changed', (b) => {
  const parts = trainedParts(b);
  const undo = poke(parts.model, 'block1_conv2_bn/gamma', 1, Infinity);
  assertStopsUnchanged(parts, batchOf(8, 5), /the loss became NaN|gradient of .* holds NaN or infinite/, () => {
    undo();
    return batchOf(8, 5);
  });
});

eachBackend('a NaN batch-norm gamma before a max pool stops the step with nothing changed', (b) => {
  const parts = trainedParts(b);
  // The NaN channel reaches the loss through the pool on every backend: a window holding only NaN
  // gives its first value (NaN), as the reference does. (Before 2026-12-03 the native pool gave
  // −3.4e38 there, so its loss stayed finite and only the gradient check stopped the step.)
  const undo = poke(parts.model, 'block2_sepconv2_bn/gamma', 0, NaN);
  assertStopsUnchanged(parts, batchOf(8, 5), /the loss became NaN/, () => {
    undo();
    return batchOf(8, 5);
  });
});

eachBackend('the optimizer refuses a non-finite gradient, clipping or not, before touching any weight', (b) => {
  for (const clipNorm of [0, 1]) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const model = tinyModel(b);
      const opt = new Optimizer('adam', { lr: 0.1, clipNorm });
      const live = model.trainableWeights;
      for (const v of live) v.read().grad = tensor(new Float32Array(v.size).fill(0.5), v.shape, { backend: b });
      const target = live[live.length - 2]!;
      const g = new Float32Array(target.size).fill(0.5);
      g[target.size - 1] = bad;
      target.value.grad = tensor(g, target.shape, { backend: b });
      const before = snapshot(model);
      assert.throws(
        () => opt.apply(model.weights),
        (e: unknown) => e instanceof TrainingDivergedError && e.message.includes(target.name),
      );
      assertBitEqual(snapshot(model), before, `weights (clip ${clipNorm}, ${bad})`);
      assert.equal(opt.step, 0);
      assert.deepEqual(opt.getState().slots, {});
      assert.ok(model.weights.every((v) => v.value.grad === null));
      model.dispose();
    }
  }
});

test('a checkpoint is never written with a NaN or infinite tensor (weights, optimizer slots or average)', () => {
  const tmp = makeTempDir('ck-finite');
  try {
    const state = { step: 0, config: {}, model: { name: 'xception', options: {} } } as unknown as RunState;
    for (const where of ['weight', 'slot', 'average'] as const) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const model = tinyModel(referenceBackend);
        const opt = new Optimizer('sgd', { lr: 0.1, momentum: 0.9 });
        const ema = new ExponentialMovingAverage(0.5);
        const v = model.trainableWeights[0]!;
        v.read().grad = tensor(new Float32Array(v.size).fill(0.1), v.shape, { backend: referenceBackend });
        opt.apply([v]);
        if (where === 'slot') opt.setState({ ...opt.getState(), slots: { [v.name]: [new Float32Array(v.size).fill(bad)] } }, model.weights);
        ema.update(model.trainableWeights);
        if (where === 'average')
          ema.setState({ updates: 1, shadow: { ...ema.getState().shadow, [v.name]: new Float32Array(v.size).fill(bad) } }, model.weights);
        if (where === 'weight') {
          const w = v.value.data() as Float32Array;
          w[2] = bad;
          v.setData(w);
        }
        assert.throws(
          () => saveCheckpoint(tmp.dir, model, opt, ema, state),
          (e: unknown) => e instanceof CheckpointError && /refusing to write a checkpoint/.test(e.message),
          `${where} ${bad}`,
        );
        assert.deepEqual(readdirSync(tmp.dir), [], 'nothing written');
        model.dispose();
      }
    }
    assert.ok(!existsSync(`${tmp.dir}/checkpoint.safetensors`));
  } finally {
    tmp.cleanup();
  }
});
