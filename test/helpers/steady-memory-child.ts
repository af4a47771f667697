/**
 * Child process of test/train/steady-memory.test.ts: trains a small model on the native backend
 * for 2,000 steps and prints resident memory after step 100 and step 2,000 as JSON.
 * Run with a capped V8 young generation (--max-semi-space-size) so that RSS reflects native and
 * live JS memory rather than how far V8 chose to grow its nursery under allocation pressure.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { backward, ops, Optimizer, Random, tensor, tidy, tryBackend, xception } from '../../src/index.js';

function collect(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

const backend = tryBackend('native');
if (!backend) {
  process.stdout.write(`${JSON.stringify({ skipped: 'native backend not built' })}\n`);
} else {
  const m = xception({ backend, stem: 'small', inputShape: [8, 8, 1], classes: 4, width: 1 / 16, middleBlocks: 0, dropout: 0.3 });
  const opt = new Optimizer('sgd', { lr: 0.01, momentum: 0.9, nesterov: true });
  const rng = new Random(2);
  const x = tensor(
    Float32Array.from({ length: 8 * 64 }, () => rng.normal()),
    [8, 8, 8, 1],
    { backend },
  );
  const labels = [0, 1, 2, 3, 0, 1, 2, 3];
  // Like the trainer, let the event loop turn between steps: that is when Node runs the
  // finalizers of the (already freed) native handles' small wrappers.
  const turn = () => new Promise((r) => setImmediate(r));
  const sample = () => {
    collect();
    const u = process.memoryUsage();
    return { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal };
  };
  let after100 = sample();
  for (let i = 1; i <= 2000; i++) {
    tidy(() => {
      const l = ops.softmaxCrossEntropy(m.forward(x, { training: true, logits: true }), labels, { labelSmoothing: 0.1 });
      backward(l);
      return l.item();
    });
    opt.apply(m.weights);
    await turn();
    if (i === 100) after100 = sample();
  }
  const after2000 = sample();
  process.stdout.write(`${JSON.stringify({ after100, after2000 })}\n`);
}
