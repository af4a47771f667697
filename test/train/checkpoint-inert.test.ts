/**
 * Names read from a checkpoint never reach Object.prototype: a tensor named after prototype
 * machinery is a CheckpointError, and nothing global changes on the way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSafetensorsFileSync } from '../../src/io/safetensors.js';
import { CHECKPOINT_FILE, CHECKPOINT_FORMAT, CheckpointError, readCheckpoint } from '../../src/train/checkpoint.js';

const state: Record<string, unknown> = {
  step: 1,
  epochsDone: 0,
  loader: { version: 1 },
  modelRandom: { s: [1, 2, 3, 4], spareNormal: null },
  optimizer: { name: 'adam', step: 1 },
  ema: null,
  wallSeconds: 0.5,
  history: [],
  config: {},
  model: { name: 'xception', options: {} },
};

function checkpointWith(names: string[], runState: unknown = state): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-inert-'));
  const tensors = names.map((name) => ({ name, shape: [2], data: new Float32Array([1, 2]) }));
  writeSafetensorsFileSync(path.join(dir, CHECKPOINT_FILE), tensors, { format: CHECKPOINT_FORMAT, state: JSON.stringify(runState) });
  return dir;
}

const prototypeKeys = () => Object.getOwnPropertyNames(Object.prototype).sort();

for (const bad of ['optimizer/0/__proto__', 'optimizer/1/constructor', 'ema/__proto__', 'ema/prototype', 'model/constructor']) {
  test(`a checkpoint tensor named '${bad}' is a CheckpointError and Object.prototype is unchanged`, () => {
    const before = prototypeKeys();
    const dir = checkpointWith(['model/w', bad]);
    assert.throws(
      () => readCheckpoint(dir),
      (e: unknown) => e instanceof CheckpointError && /reserved/.test((e as Error).message),
    );
    assert.equal(({} as Record<number, unknown>)[0], undefined);
    assert.equal(({} as Record<number, unknown>)[1], undefined);
    assert.deepEqual(prototypeKeys(), before);
  });
}

test('optimizer slot indices must be small integers numbered from 0 without holes', () => {
  for (const names of [['optimizer/x/w'], ['optimizer/99999999/w'], ['optimizer/1/w'], ['optimizer/-1/w'], ['optimizer//w']]) {
    assert.throws(() => readCheckpoint(checkpointWith(['model/w', ...names])), CheckpointError, names[0]);
  }
});

test('a well-formed checkpoint reads into prototype-free records', () => {
  const ck = readCheckpoint(checkpointWith(['model/w', 'optimizer/0/w', 'optimizer/1/w', 'ema/w']));
  assert.equal(ck.optimizerSlots['w']!.length, 2);
  assert.equal(ck.optimizerSlots['toString'], undefined);
  assert.equal(ck.ema['constructor' as string], undefined);
  assert.ok(ck.ema['w'] instanceof Float32Array);
});

test('a damaged run state is a CheckpointError naming the field, not a TypeError later in a resume', () => {
  const damaged: [string, unknown][] = [
    ['loader', 5],
    ['loader', undefined],
    ['modelRandom', { s: [1, 2, 3] }],
    ['modelRandom', { s: [1, 2, 3, 4], spareNormal: 'x' }],
    ['optimizer', undefined],
    ['optimizer', { name: 'adam' }],
    ['ema', 'x'],
    ['ema', { decay: 0.9 }],
    ['step', -1],
    ['step', 1.5],
    ['epochsDone', '1'],
    ['wallSeconds', null],
    ['history', 'x'],
    ['history', [1]],
    ['config', []],
    ['model', { name: 'xception' }],
    ['evalPoints', {}],
    ['trainSeconds', -1],
    ['phase', 'all'],
    ['classNames', [1]],
    ['preprocessing', 'none'],
  ];
  for (const [field, value] of damaged) {
    const dir = checkpointWith(['model/w'], { ...state, [field]: value });
    assert.throws(
      () => readCheckpoint(dir),
      (e: unknown) => e instanceof CheckpointError && e.message.includes(field),
      `${field}: ${JSON.stringify(value)}`,
    );
  }
  for (const runState of [null, 5, 'x', []]) assert.throws(() => readCheckpoint(checkpointWith(['model/w'], runState)), CheckpointError);
  // Optional fields may be absent (older checkpoints).
  assert.equal(readCheckpoint(checkpointWith(['model/w'], { ...state, phase: 'head', classNames: ['a'], trainSeconds: 2 })).state.step, 1);
});
