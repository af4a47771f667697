/**
 * Compiled inference (native plan) against the op-by-op path on the same backend and against the
 * reference backend, on Xception and Inception V3 variants with non-trivial batch-norm statistics.
 * fp32 tolerance: max relative error (max |Δ| / max |expected|) and max abs error ≤ 1e-4 on
 * the logits, and on the probabilities. (Measured: ~1e-6; a wrong fold, layout or fused add
 * gives errors of order 1e-3 to 1.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileInference, inceptionV3, noGrad, tensor, xception, type Model } from '../../src/index.js';
import type { Backend } from '../../src/core/backend.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { errors, randomImages, randomizeStatistics, researchVariantXception } from './helpers.js';

const native = loadNativeBackend();
const skip = native ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;
const TOL = 1e-4;

interface Case {
  name: string;
  build: (backend: Backend) => Model;
  batches: number[];
  /** Also compare with the reference backend (slow on large inputs: one batch only). */
  reference: boolean;
}

const CASES: Case[] = [
  {
    name: 'Xception, Keras layout at 71×71',
    build: (backend) => xception({ backend, inputShape: [71, 71, 3], classes: 7, seed: 5 }),
    batches: [1, 3],
    reference: true,
  },
  {
    name: 'Xception, small stem at 32×32 (width 0.5, 2 middle blocks)',
    build: (backend) => xception({ backend, stem: 'small', inputShape: [32, 32, 3], classes: 10, width: 0.5, middleBlocks: 2, seed: 2 }),
    batches: [1, 4],
    reference: true,
  },
  {
    name: 'Xception research variant: 4 segments, pointwise-first, ELU between, no residual',
    build: researchVariantXception,
    batches: [1, 2],
    reference: true,
  },
  {
    name: 'Xception with ReLU between depthwise and pointwise, dropout head',
    build: (backend) =>
      xception({
        backend,
        stem: 'small',
        inputShape: [16, 16, 3],
        classes: 4,
        width: 0.25,
        middleBlocks: 1,
        intermediateActivation: 'relu',
        dropout: 0.5,
        seed: 4,
      }),
    batches: [2],
    reference: true,
  },
  {
    name: 'Inception V3 at 75×75 (width 0.25)',
    build: (backend) => inceptionV3({ backend, inputShape: [75, 75, 3], classes: 6, width: 0.25, seed: 1 }),
    batches: [1, 3],
    reference: true,
  },
  {
    name: 'Inception V3, small stem at 32×32 (width 0.25)',
    build: (backend) => inceptionV3({ backend, stem: 'small', inputShape: [32, 32, 3], classes: 6, width: 0.25, seed: 7 }),
    batches: [2],
    reference: true,
  },
];

for (const c of CASES) {
  test(`compiled = op by op = reference: ${c.name}`, { skip }, () => {
    const model = noGrad(() => c.build(native!));
    randomizeStatistics(model);
    const refModel = c.reference ? noGrad(() => c.build(referenceBackend)) : null;
    if (refModel) randomizeStatistics(refModel);
    const shape = model.inputShape;
    try {
      for (const [i, batch] of c.batches.entries()) {
        const x = randomImages(native!, batch, shape, 10 + batch);
        // Both layouts explicitly at the first batch, the automatic choice at the others.
        for (const [logits, layout] of i === 0
          ? ([
              [true, 'channels-last'],
              [false, 'channels-last'],
              [true, 'blocked'],
              [false, 'blocked'],
            ] as const)
          : ([[false, 'auto']] as const)) {
          const opByOp = noGrad(() => model.forward(x, { logits }).data());
          const plan = compileInference(model, { batch, logits, layout });
          if (layout !== 'auto') assert.equal(plan.layout, layout);
          const y = plan.run(x);
          assert.deepEqual(y.shape, [batch, ...model.outputShape]);
          const compiled = y.data();
          y.dispose();
          plan.dispose();
          const e = errors(compiled, opByOp);
          assert.ok(
            e.rel <= TOL && e.abs <= TOL,
            `batch ${batch}, logits ${logits}, ${layout}: compiled vs op-by-op rel ${e.rel.toExponential(2)} abs ${e.abs.toExponential(2)}`,
          );
          if (refModel && i === 0) {
            const xr = tensor(x.data(), x.shape, { backend: referenceBackend });
            const expected = noGrad(() => refModel.forward(xr, { logits }).data());
            const r = errors(compiled, expected);
            assert.ok(
              r.rel <= TOL && r.abs <= TOL,
              `batch ${batch}, logits ${logits}, ${layout}: compiled vs reference rel ${r.rel.toExponential(2)} abs ${r.abs.toExponential(2)}`,
            );
          }
        }
        x.dispose();
      }
    } finally {
      model.dispose();
      refModel?.dispose();
    }
  });
}

test('the Xception plan fuses what the graph allows: every BN folded, 12 residual adds as sum post-ops', { skip }, () => {
  const model = noGrad(() => xception({ backend: native!, inputShape: [71, 71, 3], classes: 7, seed: 5 }));
  const plan = compileInference(model, { batch: 1 });
  const info = plan.info();
  // 40 BNs (36 after separable convs, 2 in block1, 4 residual); adds: 3 entry + 8 middle + 1 exit.
  assert.deepEqual(info.fusions, { foldedBatchNorms: 40, sumPostOps: 12, eltwisePostOps: 24, standaloneBatchNorms: 0 });
  assert.equal(info.steps.filter((s) => s.startsWith('add')).length, 0);
  assert.equal(info.steps.filter((s) => s.includes('+sum')).length, 12);
  // The ReLUs before the separable convs read a value the residual also needs: they stay.
  assert.equal(info.steps.filter((s) => s.startsWith('relu')).length, 11);
  assert.ok(info.arenaBytes > 0 && info.weightBytes >= model.countParams() * 4 * 0.99);
  // Separable network: the automatic layout is blocked, pointwise and depthwise on jit kernels.
  assert.equal(info.layout, 'blocked');
  assert.ok(
    info.steps.filter((s) => s.startsWith('conv 1×1/1') && s.includes('jit_1x1') && s.includes('nChw16c')).length > 30,
    info.steps.join('\n'),
  );
  assert.ok(info.steps.filter((s) => s.includes(' g') && s.includes('jit_dw') && s.includes('nChw16c')).length > 30, info.steps.join('\n'));
  plan.dispose();
  const inception = noGrad(() => inceptionV3({ backend: native!, inputShape: [75, 75, 3], classes: 6, width: 0.25, seed: 1 }));
  const inceptionPlan = compileInference(inception, { batch: 1 });
  assert.equal(inceptionPlan.info().layout, 'channels-last');
  inceptionPlan.dispose();
  inception.dispose();
  // Without fusions the same plan has every BN and add as its own primitive.
  const unfused = compileInference(model, { batch: 1, fuse: { batchNorm: false, sum: false, eltwise: false } } as never);
  assert.deepEqual(unfused.info().fusions, { foldedBatchNorms: 0, sumPostOps: 0, eltwisePostOps: 0, standaloneBatchNorms: 40 });
  unfused.dispose();
  model.dispose();
});
