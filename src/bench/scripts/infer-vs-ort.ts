/**
 * Xception inference at 299×299, our compiled plan and ONNX Runtime interleaved in one process:
 * each round times a few runs of each, so both see the same machine state (`xception bench` runs
 * them in separate processes, one after the other). Prints the median time of each and the median
 * of the rounds' speed ratios (> 1: ours faster).
 * Run: `npm run build && node dist/src/bench/scripts/infer-vs-ort.js [batch] [rounds] [layout]`
 * (layout: auto | channels-last | blocked).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compileInference, exportOnnx, tensor, xception, type PlanLayout } from '../../index.js';

const batch = Number(process.argv[2] ?? 1);
const rounds = Number(process.argv[3] ?? 9);
const layout = (process.argv[4] ?? 'auto') as PlanLayout;
const ort = await import('onnxruntime-node');

const model = xception();
const n = batch * 299 * 299 * 3;
const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
const x = tensor(data, [batch, 299, 299, 3]);
const plan = compileInference(model, { batch, layout });
const dir = mkdtempSync(path.join(tmpdir(), 'xception-ort-'));
const onnxPath = path.join(dir, 'xception.onnx');
writeFileSync(onnxPath, exportOnnx(model, { inputLayout: 'nchw' }));
const session = await ort.InferenceSession.create(onnxPath, {
  executionProviders: ['cpu'],
  intraOpNumThreads: 2,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
});
rmSync(dir, { recursive: true, force: true });
// The same pixels in NCHW for ONNX Runtime (the values only matter for timing).
const input = new ort.Tensor('float32', data.slice(), [batch, 3, 299, 299]);

for (let i = 0; i < 2; i++) {
  plan.run(x).dispose();
  await session.run({ input });
}
const perRound = batch === 1 ? 8 : 2;
const ours: number[] = [],
  theirs: number[] = [];
for (let r = 0; r < rounds; r++) {
  let t0 = performance.now();
  for (let i = 0; i < perRound; i++) plan.run(x).dispose();
  ours.push((performance.now() - t0) / perRound);
  t0 = performance.now();
  for (let i = 0; i < perRound; i++) await session.run({ input });
  theirs.push((performance.now() - t0) / perRound);
}
const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
const ratios = ours.map((o, i) => theirs[i]! / o);
console.log(
  `batch ${batch}, ${plan.layout} plan: ours ${median(ours).toFixed(1)} ms, ONNX Runtime ${median(theirs).toFixed(1)} ms; ` +
    `speed ratio (median of ${rounds} rounds) ${median(ratios).toFixed(3)}; rounds ${ratios.map((r) => r.toFixed(2)).join(' ')}`,
);
await session.release();
plan.dispose();
