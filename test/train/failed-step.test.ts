/**
 * A training step that fails part-way (here: an allocation past the wasm memory limit, as on a
 * small device) leaves nothing behind: its tensors freed, no gradients, batch-norm statistics as
 * they were; the next step that fits runs normally.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import { OutOfMemoryError } from '../../src/core/errors.js';
import { Optimizer, xception } from '../../src/index.js';
import { trainingStep } from '../../src/train/step.js';

const MODULE = fileURLToPath(new URL('../../../wasm/xception.wasm', import.meta.url));
const MiB = 2 ** 20;

function batch(size: number) {
  return {
    x: Float32Array.from({ length: size * 28 * 28 }, (_, i) => Math.sin(i)),
    y: Int32Array.from({ length: size }, (_, i) => i % 10),
    size,
    shape: [size, 28, 28, 1] as [number, number, number, number],
  };
}

test('a step that runs out of memory frees its tensors, clears gradients, restores batch-norm statistics', {
  skip: existsSync(MODULE) ? false : 'wasm/xception.wasm is not built',
}, () => {
  const backend = createWasmBackend(new WebAssembly.Module(readFileSync(MODULE)), { memoryLimitBytes: 40 * MiB });
  const model = xception({ backend, stem: 'small', inputShape: [28, 28, 1], classes: 10, width: 0.25, middleBlocks: 2 });
  const parts = { model, optimizer: new Optimizer('sgd', { lr: 0.01 }), ema: null, labelSmoothing: 0, classes: 10, backend };
  const statistics = () => model.weights.filter((v) => !v.trainableByNature).map((v) => Array.from(v.value.data()));
  const before = statistics();
  const live = backend.heap.stats().liveBytes;
  assert.throws(() => trainingStep(parts, batch(512)), OutOfMemoryError);
  assert.equal(backend.heap.stats().liveBytes, live, 'the failed step left memory allocated');
  assert.deepEqual(statistics(), before);
  assert.ok(model.weights.every((v) => v.value.grad === null));
  const r = trainingStep(parts, batch(8));
  assert.ok(Number.isFinite(r.loss));
  assert.notDeepEqual(statistics(), before, 'a step that fits moves the statistics');
  model.dispose();
});
