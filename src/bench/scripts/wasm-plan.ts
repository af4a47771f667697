/**
 * Xception inference on wasm, compiled plan (infer/wasm-plan.ts) vs op by op, with the native
 * compiled plan beside them: median ms per run of each, in one process, rounds interleaved so
 * the machine's drift hits all alike. Prints ratios; figures are noisy on a shared machine.
 * Run: `npx tsc -p tsconfig.json && node dist/src/bench/scripts/wasm-plan.js [size=299] [batch=1] [rounds=5]`
 */
import { loadNativeBackend } from '../../backends/onednn/index.js';
import { loadWasmBackend } from '../../backends/wasm/node.js';
import type { Backend } from '../../core/backend.js';
import { compileInference, noGrad, tensor, type Tensor, xception } from '../../index.js';

const size = Number(process.argv[2] ?? 299);
const batch = Number(process.argv[3] ?? 1);
const rounds = Number(process.argv[4] ?? 5);

function images(backend: Backend): Tensor {
  const n = batch * size * size * 3;
  return tensor(
    Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.9),
    [batch, size, size, 3],
    { backend },
  );
}

function timed(run: () => void): number {
  const t0 = performance.now();
  run();
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const wasm = loadWasmBackend();
if (!wasm) throw new Error('the wasm backend is not built (npm run build:wasm)');
const native = loadNativeBackend();
const wasmModel = noGrad(() => xception({ backend: wasm, inputShape: [size, size, 3], seed: 1 }));
const nativeModel = native ? noGrad(() => xception({ backend: native, inputShape: [size, size, 3], seed: 1 })) : null;
const xw = images(wasm);
const xn = native ? images(native) : null;
const wasmPlan = compileInference(wasmModel, { batch });
const nativePlan = nativeModel ? compileInference(nativeModel, { batch }) : null;
const runs: Record<string, () => void> = {
  'wasm compiled': () => wasmPlan.run(xw).dispose(),
  'wasm op by op': () => noGrad(() => wasmModel.forward(xw).dispose()),
  ...(nativePlan && xn ? { 'native compiled': () => nativePlan.run(xn).dispose() } : {}),
};
for (const run of Object.values(runs)) run(); // warm-up
const ms: Record<string, number[]> = Object.fromEntries(Object.keys(runs).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) for (const [k, run] of Object.entries(runs)) ms[k]!.push(timed(run));
const info = wasmPlan.info();
console.log(`Xception ${size}×${size} batch ${batch}, median of ${rounds} (ms):`);
const base = median(ms['wasm compiled']!);
for (const [k, xs] of Object.entries(ms))
  console.log(`  ${k.padEnd(16)} ${median(xs).toFixed(1).padStart(8)}  (${(median(xs) / base).toFixed(2)}× wasm compiled)`);
console.log(
  `wasm plan: arena ${(info.arenaBytes / 2 ** 20).toFixed(1)} MiB (all values ${((info.valueBytes ?? 0) / 2 ** 20).toFixed(1)} MiB), ` +
    `weights ${(info.weightBytes / 2 ** 20).toFixed(1)} MiB, scratch ${(info.scratchpadBytes / 2 ** 20).toFixed(1)} MiB`,
);
wasmPlan.dispose();
nativePlan?.dispose();
