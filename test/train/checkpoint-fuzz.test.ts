/**
 * Seeded mutation fuzzing of checkpoints, read as `predict --weights RUN_DIR` reads them
 * (readCheckpoint, then openWeights and loadInto): byte mutations, edits of the safetensors
 * header's tokens (names, shapes, offsets) and of the run state's fields. Every case must read
 * or throw CheckpointError / WeightFileError, and Object.prototype must stay as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { noGrad } from '../../src/core/engine.js';
import type { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { openWeights } from '../../src/io/weights-source.js';
import { xception } from '../../src/models/xception/xception.js';
import { CHECKPOINT_FILE, CheckpointError, readCheckpoint, saveCheckpoint, type RunState } from '../../src/train/checkpoint.js';
import { ExponentialMovingAverage } from '../../src/train/ema.js';
import { Optimizer } from '../../src/train/optimizers.js';
import {
  assertAtLeast,
  hasEnoughCases,
  fuzzTimeout,
  editSafetensorsHeader,
  fuzzCaseCount,
  mutate,
  rejectedCount,
  runFuzz,
} from '../helpers/fuzz.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-ckfuzz-'));
const options = { inputShape: [71, 71, 3] as [number, number, number], width: 1 / 32, middleBlocks: 0, classes: 2, seed: 1 };
const build = () => noGrad(() => xception({ ...options, backend: referenceBackend }));

/** A real checkpoint of a tiny model with Adam slots and an EMA. */
function writeOriginal(): Uint8Array {
  const model = build();
  const optimizer = new Optimizer('adam', { lr: 1e-3 });
  optimizer.setState(
    {
      name: 'adam',
      step: 3,
      slots: Object.fromEntries(
        model.weights.map((v) => [v.name, [new Float32Array(v.size).fill(0.1), new Float32Array(v.size).fill(0.2)]]),
      ),
    },
    model.weights,
  );
  const ema = new ExponentialMovingAverage(0.9);
  ema.setState(
    { updates: 2, shadow: Object.fromEntries(model.weights.map((v) => [v.name, new Float32Array(v.size).fill(0.3)])) },
    model.weights,
  );
  const state = {
    step: 3,
    epochsDone: 1,
    loader: { epoch: 1, position: 0 },
    modelRandom: model.rng.getState(),
    optimizer: { name: 'adam', step: 3 },
    ema: { decay: 0.9, updates: 2 },
    wallSeconds: 1.5,
    history: [{ epoch: 1, loss: 0.5 }],
    config: { dataset: 'fashion-mnist', model: 'xception' },
    model: { name: 'xception', options: { ...options } },
    classNames: ['a', 'b'],
  } as unknown as RunState;
  const dir = path.join(tmp, 'original');
  fs.mkdirSync(dir);
  saveCheckpoint(dir, model, optimizer, ema, state);
  model.dispose();
  return fs.readFileSync(path.join(dir, CHECKPOINT_FILE));
}

const STATE_VALUES: unknown[] = [null, -1, 0, 1e308, 'x', '', [], {}, [1, 2], { __proto__: 1 }, 'constructor', true];

/** The run state's JSON with one field (at any depth) replaced or removed. */
function editRunState(rng: Random, bytes: Uint8Array): Uint8Array {
  const { weights, metadata } = readSafetensors(bytes);
  const state = JSON.parse(metadata['state']!) as Record<string, unknown>;
  let node: Record<string, unknown> = state;
  for (let depth = 0; depth < 3; depth++) {
    const keys = Object.keys(node);
    const key = keys[rng.int(keys.length)]!;
    const child = node[key];
    if (child !== null && typeof child === 'object' && Object.keys(child).length > 0 && rng.next() < 0.5)
      node = child as Record<string, unknown>;
    else {
      if (rng.next() < 0.2) delete node[key];
      else node[key] = STATE_VALUES[rng.int(STATE_VALUES.length)];
      break;
    }
  }
  return writeSafetensors(weights, {
    ...metadata,
    state: rng.next() < 0.1 ? '{"__proto__":{"polluted":1},"step":1}' : JSON.stringify(state),
  });
}

function mutateCheckpoint(rng: Random, original: Uint8Array): Uint8Array {
  const headerEnd = 8 + Number(new DataView(original.buffer, original.byteOffset).getBigUint64(0, true));
  const how = rng.int(3);
  if (how === 0) return editRunState(rng, original);
  if (how === 1) return editSafetensorsHeader(rng, original);
  return mutate(rng, { bytes: original, hotEnd: headerEnd, fields: [{ at: 0, size: 8, littleEndian: true }] }).bytes;
}

test('fuzz: ≥ 500 mutated checkpoints read (readCheckpoint, openWeights, loadInto) or throw CheckpointError/WeightFileError', {
  timeout: fuzzTimeout(500, 300_000),
}, async (t) => {
  const original = writeOriginal();
  const model = build();
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();
  const dir = path.join(tmp, 'run');
  fs.mkdirSync(dir);
  let loaded = 0;
  const cases = fuzzCaseCount(500);
  const tally = await runFuzz(t, {
    name: 'checkpoints',
    seedOffset: 4,
    cases,
    typed: [CheckpointError, WeightFileError],
    maxCaseMs: 10_000,
    run: async (rng) => {
      fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), mutateCheckpoint(rng, original));
      readCheckpoint(dir);
      const source = await openWeights(dir);
      await source.loadInto(model, { useEma: rng.int(2) === 0 });
      loaded++;
    },
  });
  assertAtLeast(tally, 500, 'checkpoints');
  assert.ok(!hasEnoughCases(tally) || (rejectedCount(tally) > cases / 4 && loaded > 0), `${loaded} loaded`);
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), protoBefore);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  assert.equal(({} as Record<number, unknown>)[0], undefined);
  model.dispose();
});
