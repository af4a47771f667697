/**
 * The int8 QDQ ONNX export (src/io/onnx-qdq.ts) run by ONNX Runtime's own int8 kernels, against
 * the simulated int8 reference (src/infer/simulate-int8.ts) and the fp32 export.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { referenceBackend } from '../../src/backends/reference/index.js';
import type { Backend } from '../../src/core/backend.js';
import { noGrad, tryBackend } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import { calibrate } from '../../src/infer/calibrate.js';
import { GraphInterpreter, int8Graph } from '../../src/infer/interpret.js';
import { Model } from '../../src/nn/model.js';
import { Dense, Flatten, InputLayer } from '../../src/nn/layers/core.js';
import { compileInference } from '../../src/infer/compiled.js';
import { CalibrationError } from '../../src/infer/calibration-check.js';
import { fakeQuantize, simulateInt8 } from '../../src/infer/simulate-int8.js';
import { type Int8Calibration, type ValueQuant, valueKey } from '../../src/infer/quant-types.js';
import { OnnxGraphBuilder } from '../../src/io/onnx.js';
import { exportOnnx, OnnxEmitter } from '../../src/io/onnx-model.js';
import { QdqWriter } from '../../src/io/onnx-qdq.js';
import { xception } from '../../src/models/xception/xception.js';
import { randomizeStatistics } from '../infer/helpers.js';

const backend = referenceBackend;
const shape: [number, number, number] = [24, 24, 3];
const classes = 10;

/** Noise around a per-image, per-channel colour, so images differ in what a global pool sees. */
function images(n: number, seed: number): Float32Array {
  const r = new Random(seed);
  const x = new Float32Array(n * 24 * 24 * 3);
  for (let i = 0; i < n; i++) {
    const colour = [r.uniform(-0.7, 0.7), r.uniform(-0.7, 0.7), r.uniform(-0.7, 0.7)];
    for (let p = 0; p < 24 * 24 * 3; p++) x[i * 24 * 24 * 3 + p] = colour[p % 3]! + r.uniform(-0.3, 0.3);
  }
  return x;
}

async function runOrt(bytes: Uint8Array, x: Float32Array, batch: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ input: new ort.Tensor('float32', x, [batch, ...shape]) });
    return out['output']!.data as Float32Array;
  } finally {
    await session.release();
  }
}

const top1 = (a: Float32Array, i: number) => {
  let b = 0;
  for (let j = 1; j < classes; j++) if (a[i * classes + j]! > a[i * classes + b]!) b = j;
  return b;
};

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * A "trained-ish" classifier: random directions over the centred pooled features of `x`, so that
 * images reach different classes (with random weights every image lands in one class).
 */
function spreadClasses(m: Model, x: Float32Array): void {
  const g = int8Graph(m);
  const n = x.length / (24 * 24 * 3);
  let f: Float32Array = new Float32Array(0);
  const interp = new GraphInterpreter(g, backend);
  interp.run(x, n, { onValue: (node, v) => void (node.op === 'gpool' && (f = v)) });
  interp.dispose();
  const d = f.length / n;
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (let i = 0; i < f.length; i++) mean[i % d]! += f[i]! / n;
  for (let i = 0; i < f.length; i++) std[i % d]! += (f[i]! - mean[i % d]!) ** 2 / n;
  const r = new Random(5);
  const w = new Float32Array(d * classes);
  const b = new Float32Array(classes);
  for (let j = 0; j < d; j++) {
    for (let c = 0; c < classes; c++) {
      const v = r.uniform(-1, 1) / Math.sqrt(std[j]! * d + 1e-12);
      w[j * classes + c] = v;
      b[c]! -= mean[j]! * v;
    }
  }
  const [kernel, bias] = m.getLayer('predictions').weights;
  kernel!.setData(w);
  bias!.setData(b);
}

test('the QDQ export run by ONNX Runtime agrees with simulated int8 and stays near fp32', async () => {
  const m = noGrad(() =>
    xception({ backend, stem: 'small', inputShape: shape, classes, width: 0.25, middleBlocks: 2, seed: 3, classifierActivation: 'linear' }),
  );
  randomizeStatistics(m);
  spreadClasses(m, images(32, 4));
  const cal = await calibrate(m, [images(8, 1), images(8, 2)], { method: 'minmax' });
  const int8 = exportOnnx(m, { int8: cal, inputLayout: 'nhwc' });
  const fp32 = exportOnnx(m, { inputLayout: 'nhwc' });
  assert.ok(int8.length < fp32.length * 0.5, `int8 weights take a quarter of the bytes: ${int8.length} vs ${fp32.length}`);
  assert.ok(Buffer.from(int8).includes('QuantizeLinear') && Buffer.from(int8).includes('DequantizeLinear'));
  const n = 32;
  const x = images(n, 9);
  const ortInt8 = await runOrt(int8, x, n);
  const ortFp32 = await runOrt(fp32, x, n);
  const sim = simulateInt8(m, cal, x, { batch: n });
  let sameSim = 0;
  for (let i = 0; i < n; i++) if (top1(ortInt8, i) === top1(sim, i)) sameSim++;
  // Logit differences as a share of the logits' spread.
  const spread = Math.max(...ortFp32) - Math.min(...ortFp32);
  const dSim = maxAbsDiff(ortInt8, sim) / spread;
  assert.ok(new Set(Array.from({ length: n }, (_, i) => top1(ortFp32, i))).size >= 4, 'the images reach several classes');
  assert.ok(sameSim >= n - 2, `ORT int8 vs simulated int8 top-1 agree on ${sameSim}/${n}`);
  assert.ok(dSim < 0.02, `ORT int8 vs simulated int8 logits differ by ${dSim} of their spread`);
  // ORT's int8 is as faithful to fp32 as the reference (a random network is not a trained one:
  // its pooled features differ between images by less than a quantization step).
  const ortErr = maxAbsDiff(ortInt8, ortFp32);
  const simErr = maxAbsDiff(sim, ortFp32);
  assert.ok(ortErr > 0 && ortErr <= simErr * 1.25, `ORT int8 vs fp32 ${ortErr}, simulated int8 vs fp32 ${simErr}`);
  m.dispose();
});

test('a stored value: ONNX Runtime QuantizeLinear → DequantizeLinear gives exactly the contract (ties, saturation)', async () => {
  const scale = Math.fround(0.05);
  // Steps, ties between steps and values beyond the range on both sides (−128 saturates as int8 does).
  const steps = [-300, -140, -128.5, -128, -127.5, -127, -2.5, -1.5, -0.5, 0, 0.5, 1.5, 2.5, 126.5, 127, 127.5, 200, 255.5, 256, 400];
  const x = Float32Array.from([...steps.map((k) => k * scale), ...steps.map((k) => k * scale * 1.0001), -0, 1e-9, -1e-9]);
  for (const unsigned of [false, true]) {
    const q: ValueQuant = { scale, unsigned };
    const g = new OnnxGraphBuilder('qdq', { opset: 13 });
    const e = new OnnxEmitter(g, true, ['x', 'y']);
    g.addInput('x', [x.length]);
    e.node('Identity', [new QdqWriter({ method: 'minmax', images: 1, values: {}, fp32Nodes: {} }).value(e, 'x', q)], 'y');
    g.addOutput('y', [x.length]);
    const session = await ort.InferenceSession.create(g.toBytes());
    const got = (await session.run({ x: new ort.Tensor('float32', x, [x.length]) }))['y']!.data as Float32Array;
    await session.release();
    // (+ 0: a zero is a zero, whatever its sign)
    assert.deepEqual(
      Array.from(got, (v) => v + 0),
      Array.from(fakeQuantize(x, q), (v) => v + 0),
      unsigned ? 'uint8' : 'int8',
    );
  }
});

test('a QDQ export with a calibration of another model is a CalibrationError', async () => {
  const a = noGrad(() => xception({ backend, stem: 'small', inputShape: shape, classes, width: 0.25, middleBlocks: 1, seed: 3 }));
  const b = noGrad(() => xception({ backend, stem: 'small', inputShape: shape, classes, width: 0.25, middleBlocks: 2, seed: 3 }));
  const cal = await calibrate(a, [images(2, 1)], { method: 'minmax', allInt8: true });
  assert.throws(() => exportOnnx(b, { int8: cal }), CalibrationError);
  a.dispose();
  b.dispose();
});

/** Dense 4 → 3 on a 1×1×4 image, its weights and bias set (see the test below). */
function biasModel(b: Backend): Model {
  const ctx = { rng: new Random(1), backend: b };
  const input = new InputLayer({ shape: [1, 1, 4], name: 'image' }).apply([], ctx);
  const out = new Dense({ units: 3, name: 'predictions' }).apply(new Flatten({ name: 'flat' }).apply(input, ctx), ctx);
  const m = new Model({ inputs: input, outputs: out, seed: 1 });
  const [kernel, bias] = m.getLayer('predictions').weights;
  kernel!.setData(Float32Array.from({ length: 12 }, (_, i) => (i < 3 ? 2.54 : ((i % 5) - 2) * 0.5)));
  bias!.setData(Float32Array.from([0.3049, -0.3151, 0.0126]));
  return m;
}

test("an int8 node's bias is ONNX's int32 one: a bias off the accumulator grid gives the same logits in ONNX Runtime, the simulation and the native plan", async () => {
  // Input scale 0.5 and weight scales 0.02 make the accumulator step 0.01; the output scale is
  // 0.004, so a bias between steps lands on another output step than its int32 form does (0.3049,
  // −0.3151, 0.0126: 76, −79, 3 output steps as fp32; 75, −80, 2 as 30, −32, 1 accumulator steps).
  const m = biasModel(backend);
  // The image, its flattening (the dense node's input) and the logits are stored quantized.
  const scaleOf = { input: 0.5, flatten: 0.5, dense: 0.004 } as Record<string, number>;
  const values: Record<string, ValueQuant> = {};
  for (const node of int8Graph(m).nodes) if (node.op in scaleOf) values[valueKey(node)] = { scale: scaleOf[node.op]!, unsigned: false };
  const cal: Int8Calibration = { method: 'minmax', images: 1, values, fp32Nodes: {} };
  const n = 6;
  const r = new Random(2);
  const x = Float32Array.from({ length: n * 4 }, (_, i) => (i < 4 ? 0 : r.int(9) - 4) * 0.5);
  const session = await ort.InferenceSession.create(exportOnnx(m, { int8: cal, inputLayout: 'nhwc' }));
  const viaOrt = (await session.run({ input: new ort.Tensor('float32', x, [n, 1, 1, 4]) }))['output']!.data as Float32Array;
  await session.release();
  const sim = simulateInt8(m, cal, x, { batch: n, logits: true });
  const steps = (a: ArrayLike<number>) => Array.from(a, (v) => Math.round(v / 0.004));
  assert.deepEqual(steps(sim.subarray(0, 3)), [75, -80, 2], 'the bias alone (input 0): in whole accumulator steps');
  assert.deepEqual(steps(sim), steps(viaOrt));
  const native = tryBackend('native');
  if (native) {
    const plan = compileInference(biasModel(native), { batch: n, logits: true, precision: 'int8', calibration: cal });
    assert.deepEqual(steps(plan.runData(x)), steps(sim), 'the native int8 plan');
    plan.dispose();
  }
  m.dispose();
});
