/**
 * What catching divergence costs per training step of the main-job model (Xception, small stem,
 * 28×28×1, 10 classes, width 0.25, 2 middle blocks, batch 128): the gradient check (one Σ g² per
 * gradient, Optimizer.gradNorm's reductions) and the snapshot of the batch-norm moving statistics,
 * each the fastest of 50, against the fastest of 5 whole steps (trainingStep, which includes both).
 * Run: `npm run build && node dist/src/bench/scripts/divergence-check-cost.js [native|reference]`.
 */
import '../../backends/index.js';
import { tensor } from '../../core/creation.js';
import { keep, tryBackend } from '../../core/engine.js';
import type { Batch } from '../../data/loader.js';
import { buildModel } from '../../models/registry.js';
import { Optimizer } from '../../train/optimizers.js';
import { trainingStep } from '../../train/trainer.js';

const backend = tryBackend(process.argv[2] ?? 'native');
if (!backend) throw new Error(`backend ${process.argv[2]} is not available`);
const model = buildModel('xception', {
  stem: 'small',
  width: 0.25,
  bnMomentum: 0.99,
  middleBlocks: 2,
  inputShape: [28, 28, 1],
  classes: 10,
  seed: 0,
  backend,
});
const trainable = model.trainableWeights;
const statistics = model.weights.filter((v) => !v.trainableByNature);

function fastest(f: () => void, reps: number): number {
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

for (const v of trainable)
  v.value.grad = keep(
    tensor(
      Float32Array.from({ length: v.size }, (_, i) => Math.sin(i)),
      v.shape,
      { backend },
    ),
  );
const check = fastest(() => Optimizer.gradNorm(trainable), 50);
const snapshot = fastest(() => statistics.map((v) => v.value.data()), 50);
for (const v of trainable) {
  v.value.grad?.dispose();
  v.value.grad = null;
}

const B = 128;
const batch: Batch = {
  x: Float32Array.from({ length: B * 784 }, (_, i) => Math.sin(i * 0.1)),
  y: Int32Array.from({ length: B }, (_, i) => i % 10),
  size: B,
  shape: [B, 28, 28, 1],
};
const optimizer = new Optimizer('sgd', { lr: 0.01, momentum: 0.9, nesterov: true });
const parts = { model, optimizer, ema: null, labelSmoothing: 0.1, classes: 10, backend };
trainingStep(parts, batch);
const step = fastest(() => trainingStep(parts, batch), 5);
const share = (ms: number) => `${ms.toFixed(3)} ms (${((100 * ms) / step).toFixed(2)}% of a step)`;
const params = trainable.reduce((a, v) => a + v.size, 0).toLocaleString('en-US');
console.log(`${backend.name}: ${params} trainable parameters, ${statistics.length} statistics vectors; step ${step.toFixed(1)} ms`);
console.log(`gradient check ${share(check)}; moving-statistics snapshot ${share(snapshot)}`);
model.dispose();
