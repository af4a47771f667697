/**
 * One thread team vs data-parallel replicas, side by side: the main job's network (small-stem
 * Xception, 28×28×1, width 0.25, 2 middle blocks) trains the same batch in interleaved rounds —
 * `local` runs the step in this thread with OpenMP's default threads, `dp×N` splits it between N
 * replicas (src/train/parallel). Prints ms per step and the ratio per round.
 * Run: `npm run build && node dist/src/bench/scripts/data-parallel.js [batch=128] [steps=20] [rounds=4] [replicas=2]`.
 * On a shared machine the figures move: compare the ratios within a round.
 */
import * as X from '../../index.js';
import type { Batch } from '../../data/loader.js';

const batchSize = Number(process.argv[2] ?? 128);
const steps = Number(process.argv[3] ?? 20);
const rounds = Number(process.argv[4] ?? 4);
const replicas = Number(process.argv[5] ?? 2);
const backend = X.tryBackend('native');
if (!backend) throw new Error('native backend unavailable');
const modelOptions = { stem: 'small', inputShape: [28, 28, 1], classes: 10, width: 0.25, middleBlocks: 2, seed: 0 };
const sgd = { lr: 0.01, momentum: 0.9, nesterov: true };
const model = X.buildModel('xception', { ...modelOptions, backend });
const optimizer = new X.Optimizer('sgd', sgd);
const rng = new X.Random(1);
const xs = Float32Array.from({ length: batchSize * 784 }, () => rng.uniform() * 2 - 1);
const ys = Int32Array.from({ length: batchSize }, (_, i) => i % 10);
const x = X.tensor(xs, [batchSize, 28, 28, 1], { backend });
const local = (): void => {
  X.tidy(() => {
    const loss = X.ops.softmaxCrossEntropy(model.forward(x, { training: true, logits: true }), ys);
    X.backward(loss, { release: true });
    return loss.item();
  });
  optimizer.apply(model.weights);
};
const dp = await X.DataParallel.start(
  { replicas, model: 'xception', modelOptions, optimizer: { name: 'sgd', options: sgd }, labelSmoothing: 0, ema: 0 },
  { model, optimizer, ema: null },
);
const batch: Batch = { x: xs, y: ys, size: batchSize, shape: [batchSize, 28, 28, 1] };
try {
  for (let i = 0; i < 3; i++) {
    local();
    await dp.step(batch, sgd.lr, i);
  }
  for (let r = 0; r < rounds; r++) {
    let t = performance.now();
    for (let i = 0; i < steps; i++) {
      local();
      await new Promise((resolve) => setImmediate(resolve)); // as the trainer does
    }
    const a = (performance.now() - t) / steps;
    t = performance.now();
    for (let i = 0; i < steps; i++) await dp.step(batch, sgd.lr, i);
    const b = (performance.now() - t) / steps;
    const ips = (ms: number) => ((batchSize * 1000) / ms).toFixed(0);
    console.log(
      `round ${r}: local ${a.toFixed(1)} ms/step (${ips(a)} img/s)  dp×${replicas} ${b.toFixed(1)} ms/step (${ips(b)} img/s)  ratio ${(a / b).toFixed(2)}`,
    );
  }
} finally {
  await dp.close();
}
