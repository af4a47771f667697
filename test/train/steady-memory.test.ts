import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { backward, ops, Optimizer, Random, tensor, tidy, tryBackend, xception } from '../../src/index.js';

const native = tryBackend('native');

/** A full garbage collection, so that RSS reflects live memory rather than collector timing. */
function collect(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

test('2,000 training steps keep resident memory within 5% of where it was after the first 100', { skip: native ? false : 'native backend not built', timeout: 300_000 }, async () => {
  const backend = native!;
  const m = xception({ backend, stem: 'small', inputShape: [8, 8, 1], classes: 4, width: 1 / 16, middleBlocks: 0, dropout: 0.3 });
  const opt = new Optimizer('sgd', { lr: 0.01, momentum: 0.9, nesterov: true });
  const rng = new Random(2);
  const x = tensor(Float32Array.from({ length: 8 * 64 }, () => rng.normal()), [8, 8, 8, 1], { backend });
  const labels = [0, 1, 2, 3, 0, 1, 2, 3];
  const step = () => {
    tidy(() => {
      const l = ops.softmaxCrossEntropy(m.forward(x, { training: true, logits: true }), labels, { labelSmoothing: 0.1 });
      backward(l);
      return l.item();
    });
    opt.apply(m.weights);
  };
  // Like the trainer, let the event loop turn between steps: that is when Node runs the
  // finalizers of the (already freed) native handles' small wrappers.
  const turn = () => new Promise((r) => setImmediate(r));
  for (let i = 0; i < 100; i++) {
    step();
    await turn();
  }
  collect();
  const after100 = process.memoryUsage().rss;
  for (let i = 100; i < 2000; i++) {
    step();
    await turn();
  }
  collect();
  const after2000 = process.memoryUsage().rss;
  const growth = after2000 / after100 - 1;
  assert.ok(growth < 0.05, `RSS grew ${(100 * growth).toFixed(1)}% (${(after100 / 2 ** 20).toFixed(1)} → ${(after2000 / 2 ** 20).toFixed(1)} MiB)`);
  m.dispose();
  opt.disposeSlots();
});
