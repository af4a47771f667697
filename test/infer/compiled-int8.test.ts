/**
 * precision: 'int8' — convolutions in int8 with a calibration's activation scales and per-channel
 * kernel scales. Checked against a plain-loop fake-quantization reference (int8-reference.ts) that
 * applies the same rules: within two quantization steps of the output value and the same top class.
 * (Measured: the plan and the reference agree to ~1e-7, the integer arithmetic is the same.)
 */
import { simulateInt8 } from '../../src/infer/simulate-int8.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Activation,
  Add,
  BatchNormalization,
  compileInference,
  Conv2D,
  Dense,
  DepthwiseConv2D,
  GlobalAveragePooling2D,
  InputLayer,
  MaxPooling2D,
  Model,
  noGrad,
  OptionError,
  Random,
  SeparableConv2D,
  xception,
} from '../../src/index.js';
import type { Layer, SymbolicTensor } from '../../src/nn/layer.js';
import { BackendError } from '../../src/core/errors.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { compileSpec } from '../../src/infer/compile.js';
import { HEADER } from '../../src/infer/plan-format.js';
import type { Int8Calibration } from '../../src/infer/quant-types.js';
import { randomImages, randomizeStatistics } from './helpers.js';
import { minmaxCalibration, referenceRun } from './int8-reference.js';

const native = loadNativeBackend();
const skip = native ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;

function smallXception(seed = 6): Model {
  const m = noGrad(() =>
    xception({ backend: native!, stem: 'small', inputShape: [24, 24, 3], classes: 8, width: 0.25, middleBlocks: 2, seed }),
  );
  randomizeStatistics(m);
  return m;
}

/** conv+bias+BN+ReLU, depthwise+BN, a separable conv with a residual add, max pool, an ELU conv, a classifier. */
function mixedModel(): Model {
  const ctx = { rng: new Random(4), backend: native! };
  const apply = (l: Layer, x: SymbolicTensor | SymbolicTensor[]) => l.apply(x, ctx);
  const input = new InputLayer({ shape: [12, 12, 3] }).apply([], ctx);
  let x = apply(new Conv2D({ filters: 8, kernelSize: 3, padding: 'same', useBias: true, name: 'c1' }), input);
  x = apply(new BatchNormalization({ name: 'c1_bn' }), x);
  x = apply(new Activation('relu', { name: 'c1_act' }), x);
  const d = apply(new DepthwiseConv2D({ kernelSize: 3, padding: 'same', useBias: false, name: 'dw' }), x);
  const dn = apply(new BatchNormalization({ name: 'dw_bn' }), d);
  const s = apply(new SeparableConv2D({ filters: 8, kernelSize: 3, padding: 'same', useBias: false, name: 'sep' }), dn);
  const sn = apply(new BatchNormalization({ name: 'sep_bn' }), s);
  x = apply(new Add({ name: 'res' }), [sn, x]);
  x = apply(new MaxPooling2D({ poolSize: 2, name: 'pool' }), x);
  x = apply(new Conv2D({ filters: 12, kernelSize: 1, activation: 'elu', name: 'c_elu' }), x);
  x = apply(new GlobalAveragePooling2D({ name: 'gap' }), x);
  const out = apply(new Dense({ units: 5, name: 'predictions' }), x);
  const m = new Model({ inputs: input, outputs: out, seed: 4 });
  randomizeStatistics(m, 9);
  return m;
}

interface Agreement {
  /** max |plan − reference| in output quantization steps. */
  steps: number;
  /** Share of images whose top class is the reference's. */
  top1: number;
  /** max |plan − fp32| (int8 really quantizes: > 0). */
  fromFp32: number;
}

function agreement(m: Model, batch: number, calibration: Int8Calibration, xs: Float32Array, outKey: string): Agreement {
  const plan = compileInference(m, { batch, logits: true, precision: 'int8', calibration });
  try {
    const got = plan.runData(xs);
    const ref = referenceRun(m, xs, batch, { logits: true, calibration }).output;
    const fp32 = referenceRun(m, xs, batch, { logits: true }).output;
    const step = calibration.values[outKey]?.scale ?? 1e-3;
    let steps = 0,
      fromFp32 = 0,
      same = 0;
    for (let i = 0; i < got.length; i++) {
      steps = Math.max(steps, Math.abs(got[i]! - ref[i]!) / step);
      fromFp32 = Math.max(fromFp32, Math.abs(got[i]! - fp32[i]!));
    }
    const k = got.length / batch;
    for (let b = 0; b < batch; b++) if (argmax(got, b * k, k) === argmax(ref, b * k, k)) same++;
    return { steps, top1: same / batch, fromFp32 };
  } finally {
    plan.dispose();
  }
}

function argmax(a: ArrayLike<number>, from: number, n: number): number {
  let k = 0;
  for (let j = 1; j < n; j++) if (a[from + j]! > a[from + k]!) k = j;
  return k;
}

test('an int8 plan of a small Xception agrees with the fake-quantization reference', { skip }, () => {
  const m = smallXception();
  const batch = 4;
  const x = randomImages(native!, batch, m.inputShape, 2);
  const xs = x.data() as Float32Array;
  const calibration = minmaxCalibration(m, xs, batch, true);
  const plan = compileInference(m, { batch, logits: true, precision: 'int8', calibration });
  const info = plan.info();
  assert.equal(plan.precision, 'int8');
  assert.ok(info.int8 && info.int8.nodes === info.int8.of && info.int8.of > 30, JSON.stringify(info.int8));
  assert.ok(
    info.steps.some((s) => /^int8 dense/.test(s)),
    'the classifier runs in int8',
  );
  assert.ok(['native', 'emulated'].includes(info.int8.hardware));
  assert.ok(
    info.steps.some((s) => /^int8 conv 3×3\/1 g\d+/.test(s)),
    'depthwise convolutions run in int8',
  );
  assert.ok(
    info.steps.some((s) => /^int8 conv 1×1\/2 .*\+sum/.test(s)),
    'residual convolutions add in int8',
  );
  assert.ok(
    info.steps.some((s) => /u8/.test(s)),
    'post-ReLU values are unsigned',
  );
  assert.ok(
    info.steps.some((s) => /^relu \(requantize to u8\)/.test(s)),
    'a ReLU after a residual add is one requantizing reorder',
  );
  assert.ok(info.weightBytes < compileInference(m, { batch, logits: true }).info().weightBytes * 0.5, 'kernels are stored in 1 byte');
  plan.dispose();
  const a = agreement(m, batch, calibration, xs, 'predictions/dense');
  assert.ok(a.steps <= 2, `int8 plan vs reference: ${a.steps.toFixed(3)} output steps`);
  assert.ok(a.top1 >= 0.75, `top-1 agreement ${a.top1}`);
  assert.ok(a.fromFp32 > 1e-5, 'int8 really quantizes');
  x.dispose();
  m.dispose();
});

test('int8 on conv, depthwise, separable with residual add, folded BN, ReLU and ELU; fp32Nodes stay fp32', { skip }, () => {
  const m = mixedModel();
  const batch = 3;
  const x = randomImages(native!, batch, m.inputShape, 8);
  const xs = x.data() as Float32Array;
  const calibration = minmaxCalibration(m, xs, batch, true);
  calibration.fp32Nodes['sep/depthwise'] = 'kept fp32 by the test';
  const plan = compileInference(m, { batch, logits: true, precision: 'int8', calibration });
  const steps = plan.info().steps;
  // c1, dw, sep/pointwise, c_elu and the classifier in int8; sep/depthwise (fp32Nodes) in fp32.
  assert.deepEqual(plan.info().int8 && [plan.info().int8!.nodes, plan.info().int8!.of], [5, 6], steps.join('\n'));
  assert.ok(steps.some((s) => /^int8 conv 1×1.*\+elu/.test(s)));
  assert.ok(steps.some((s) => /^conv 3×3\/1 g8/.test(s)));
  plan.dispose();
  const a = agreement(m, batch, calibration, xs, 'predictions/dense');
  assert.ok(a.steps <= 2, `int8 plan vs reference: ${a.steps.toFixed(3)} output steps`);
  // A value without a scale stays fp32: its readers run fp32.
  const partial = structuredClone(calibration);
  delete partial.values['dw/depthwise'];
  const b = agreement(m, batch, partial, xs, 'predictions/dense');
  assert.ok(b.steps <= 2, `partial calibration: ${b.steps.toFixed(3)} output steps`);
  x.dispose();
  m.dispose();
});

test('an int8 plan re-reads changed weights by building itself again', { skip }, () => {
  const m = mixedModel();
  const x = randomImages(native!, 2, m.inputShape, 1);
  const xs = x.data() as Float32Array;
  const calibration = minmaxCalibration(m, xs, 2, true);
  const plan = compileInference(m, { batch: 2, logits: true, precision: 'int8', calibration });
  const before = plan.runData(xs);
  const k = m.getLayer('c1').weights[0]!;
  k.setData((k.value.data() as Float32Array).map((v) => v * 0.5));
  const after = plan.runData(xs);
  assert.equal(plan.info().weightRefreshes, 1);
  const ref = referenceRun(m, xs, 2, { logits: true, calibration }).output;
  const step = calibration.values['predictions/dense']!.scale;
  for (let i = 0; i < after.length; i++) assert.ok(Math.abs(after[i]! - ref[i]!) <= 2 * step, `value ${i}`);
  assert.ok(after.some((v, i) => v !== before[i]));
  plan.dispose();
  x.dispose();
  m.dispose();
});

test('bad calibrations are OptionErrors before anything native runs', { skip }, () => {
  const m = mixedModel();
  const x = randomImages(native!, 1, m.inputShape, 1);
  const good = minmaxCalibration(m, x.data() as Float32Array, 1, true);
  const created = native!.createPlan;
  let calls = 0;
  native!.createPlan = (...args) => (calls++, created.apply(native, args));
  const bad = (mutate: (c: Record<string, unknown>) => void, why: RegExp) => {
    const c = structuredClone(good) as unknown as Record<string, unknown>;
    mutate(c);
    assert.throws(
      () => compileInference(m, { batch: 1, precision: 'int8', calibration: c as unknown as Int8Calibration }),
      (e: unknown) => e instanceof OptionError && why.test(e.message),
      why.source,
    );
  };
  const values = (c: Record<string, unknown>) => c['values'] as Record<string, { scale: unknown; unsigned: unknown }>;
  try {
    bad((c) => delete c['values'], /values is missing/);
    bad((c) => delete c['fp32Nodes'], /fp32Nodes is missing/);
    bad((c) => (c['method'] = 'guess'), /method/);
    bad((c) => (values(c)['c1/conv']!.scale = Number.NaN), /scale must be a finite number/);
    bad((c) => (values(c)['c1/conv']!.scale = 0), /scale must be a finite number/);
    bad((c) => (values(c)['c1/conv']!.scale = -1), /scale must be a finite number/);
    bad((c) => (values(c)['c1/conv']!.unsigned = 'yes'), /unsigned must be true or false/);
    bad((c) => (values(c)['block7_sepconv1/pointwise'] = { scale: 1, unsigned: false }), /another model.*block7_sepconv1/);
    bad((c) => ((c['fp32Nodes'] as Record<string, string>)['conv2d_9/conv'] = 'x'), /another model/);
    bad((c) => (c['values'] = {}), /no activation scale/);
    assert.throws(() => compileInference(m, { batch: 1, precision: 'int8' }), OptionError);
    assert.throws(() => compileInference(m, { batch: 1, calibration: good }), OptionError);
    assert.equal(calls, 0, 'no native plan was requested');
  } finally {
    native!.createPlan = created;
  }
  x.dispose();
  m.dispose();
});

test('the native int8 plan refuses a spec whose int8 convolution reads an fp32 value', { skip }, () => {
  const m = mixedModel();
  const x = randomImages(native!, 1, m.inputShape, 1);
  const calibration = minmaxCalibration(m, x.data() as Float32Array, 1, true);
  const s = compileSpec(m, { batch: 1, inputShape: m.inputShape, logits: true, precision: 'int8', calibration });
  const spec = Float64Array.from(s.spec);
  spec[HEADER.length] = 0; // the input's scale: fp32, yet the first convolution is int8
  assert.throws(
    () =>
      native!.createPlan(
        spec,
        s.recipes.map((r) => r()),
      ),
    (e: unknown) => e instanceof BackendError && /int8 conv: its input is not quantized/.test(e.message),
  );
  spec[HEADER.length] = -1;
  assert.throws(
    () =>
      native!.createPlan(
        spec,
        s.recipes.map((r) => r()),
      ),
    BackendError,
  );
  x.dispose();
  m.dispose();
});

test('the addon refuses corrupted int8 specs with a BackendError, never a crash', { skip }, () => {
  const m = mixedModel();
  const x = randomImages(native!, 1, m.inputShape, 1);
  const calibration = minmaxCalibration(m, x.data() as Float32Array, 1, true);
  const good = compileSpec(m, { batch: 1, inputShape: m.inputShape, logits: true, precision: 'int8', calibration });
  const weights = good.recipes.map((r) => r());
  let refused = 0,
    built = 0;
  for (let i = 0; i < good.spec.length; i++) {
    for (const bad of [-1, 2, 0.5, Number.NaN]) {
      const spec = Float64Array.from(good.spec);
      spec[i] = bad;
      try {
        const plan = native!.createPlan(spec, weights);
        built++;
        const info = native!.planInfo(plan);
        if (info.inputSize === x.size) native!.dispose(native!.runPlan(plan, x.handle, x.size, info.outputSize));
        native!.freePlan(plan);
      } catch (e) {
        assert.ok(e instanceof BackendError, `position ${i} = ${bad}: ${String(e)}`);
        refused++;
      }
    }
  }
  assert.ok(refused > built, `refused ${refused}, built ${built}`);
  x.dispose();
  m.dispose();
});

test('the int8 plan agrees with simulateInt8, the int8 reference', { skip }, () => {
  const m = smallXception(3);
  const batch = 2;
  const x = randomImages(native!, batch, m.inputShape, 4);
  const xs = x.data() as Float32Array;
  const calibration = minmaxCalibration(m, xs, batch, true);
  const plan = compileInference(m, { batch, logits: true, precision: 'int8', calibration });
  const got = plan.runData(xs);
  const want = simulateInt8(m, calibration, xs, { batch, logits: true });
  const step = calibration.values['predictions/dense']!.scale;
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 2 * step, `value ${i}: ${got[i]} vs ${want[i]}`);
  plan.dispose();
  x.dispose();
  m.dispose();
});
