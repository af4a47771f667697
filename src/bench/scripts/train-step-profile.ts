/**
 * One training step of the main-job model (Xception, small stem, 28×28×1, 10 classes, width 0.25,
 * batch 128, SGD + Nesterov) on the native backend, with every backend method timed.
 * Prints ms per step and a per-kernel table (ms per step, calls per step); 1×1 / depthwise
 * convolutions are listed separately. Run: `npm run build && node dist/src/bench/scripts/train-step-profile.js [steps] [batch] [dnnl|own] [middleBlocks] [xception|inception_v3|bench-299|bench-64]`;
 * (inception_v3: the recipes' width-0.2475 small-stem network instead; bench-299 / bench-64: the
 * networks of `xception bench`'s training cases, e.g. `… 3 8 own 8 bench-299`).
 * with `dnnl` the batch norm and ReLU kernels run on oneDNN (`<kernel>.dnnl`) instead of the
 * addon's own loops, for a before/after comparison in one build.
 * PROFILE_PRECISION=bf16 runs the convolutions in mixed precision (as `train --precision bf16`);
 * PROFILE_BACKEND=wasm times the wasm backend's kernels instead.
 * On a shared machine compare runs side by side, as ratios.
 */
import type { Backend } from '../../core/backend.js';
import * as X from '../../index.js';

const steps = Number(process.argv[2] ?? 5);
const batch = Number(process.argv[3] ?? 128);
// The main job uses 2 middle blocks; Keras's Xception (and the recipes' baseline) 8.
const middleBlocks = Number(process.argv[5] ?? 2);

const backendName = process.env.PROFILE_BACKEND ?? 'native';
const native = X.tryBackend(backendName) as import('../../backends/onednn/index.js').NativeBackend | undefined;
if (!native) throw new Error(`${backendName} backend unavailable`);
if (process.argv[4] === 'dnnl') {
  // The backend's private addon object: route the kernels that have a oneDNN twin to it.
  type Run = (op: string, ...rest: unknown[]) => unknown;
  const holder = native as unknown as { addon: { run: Run } };
  const addon = holder.addon;
  const twins = new Set(['batchNormTrain', 'batchNormInference', 'batchNormBackward', 'relu', 'reluBackward']);
  const run: Run = (op, ...rest) => addon.run(twins.has(op) ? `${op}.dnnl` : op, ...rest);
  // The addon's own properties are read-only: give the backend a copy with `run` replaced.
  holder.addon = { ...addon, run };
}

if (process.env.PROFILE_PRECISION === 'bf16') native.setConvPrecision('bf16');

// key → [wall ms, calls, process CPU ms]. On a shared machine wall time includes time spent
// descheduled; with OMP_NUM_THREADS=1 the CPU time is the steadier measure of work.
const times = new Map<string, [number, number, number]>();
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
// Every method of the backend, wrapped with a timer; the key names conv kernels by window and kind.
const wrapped = Object.create(native) as Record<string, unknown>;
const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(native)).concat(Object.keys(native));
for (const k of methods) {
  const f = (native as unknown as Record<string, unknown>)[k];
  if (typeof f !== 'function' || k === 'constructor') continue;
  wrapped[k] = (...args: unknown[]) => {
    const t = performance.now(),
      c0 = cpuMs();
    const r = (f as (...a: unknown[]) => unknown).apply(native, args);
    const cpu = cpuMs() - c0;
    let key = k;
    const p = args.find(
      (v): v is { kernelHeight: number; kernelWidth: number; groups: number; inChannels: number } =>
        typeof v === 'object' && v !== null && 'kernelHeight' in v,
    );
    if (p) key += ` ${p.kernelHeight}x${p.kernelWidth}${p.groups > 1 ? (p.groups === p.inChannels ? ' dw' : ` g${p.groups}`) : ''}`;
    if (p && process.env.PROFILE_SHAPES) {
      const q = p as unknown as Record<string, number>;
      key += ` ${q.inChannels}→${q.outChannels}@${q.inHeight}/${q.strideHeight}`;
    }
    const rows = args.find(
      (v): v is { rows: number; channels: number } => typeof v === 'object' && v !== null && 'rows' in v && 'channels' in v,
    );
    if (rows && process.env.PROFILE_SHAPES) key += ` ${rows.rows}×${rows.channels}`;
    const e = times.get(key) ?? [0, 0, 0];
    e[0] += performance.now() - t;
    e[1]++;
    e[2] += cpu;
    times.set(key, e);
    return r;
  };
}
X.setBackend(wrapped as unknown as Backend);

// bench-299 / bench-64: the networks of `xception bench`'s training cases (1000 classes).
const which = process.argv[6] ?? 'xception';
const model =
  which === 'inception_v3'
    ? X.inceptionV3({ stem: 'small', inputShape: [28, 28, 1], classes: 10, width: 0.2475 })
    : which === 'bench-299'
      ? X.xception({ inputShape: [299, 299, 3], classes: 1000 })
      : which === 'bench-64'
        ? X.xception({ stem: 'small', inputShape: [64, 64, 3], classes: 1000 })
        : X.xception({ stem: 'small', inputShape: [28, 28, 1], classes: 10, width: 0.25, middleBlocks });
const [ih, iw, ic] = model.inputShape as [number, number, number];
const classes = model.outputShape[0]!;
const opt = new X.Optimizer('sgd', { lr: 0.01, momentum: 0.9, nesterov: true });
const rng = new X.Random(1);
const x = X.tensor(
  Float32Array.from({ length: batch * ih * iw * ic }, () => rng.uniform() * 2 - 1),
  [batch, ih, iw, ic],
);
const labels = Array.from({ length: batch }, (_, i) => i % classes);
const step = (): void => {
  X.tidy(() => {
    const loss = X.ops.softmaxCrossEntropy(model.forward(x, { training: true, logits: true }), labels);
    X.backward(loss, { release: true });
    return loss.item();
  });
  opt.apply(model.weights);
};

for (let i = 0; i < 2; i++) step();
times.clear();
const faults0 = process.resourceUsage().minorPageFault;
const cpu0 = cpuMs();
const t0 = performance.now();
for (let i = 0; i < steps; i++) step();
const total = (performance.now() - t0) / steps;
const totalCpu = (cpuMs() - cpu0) / steps;
const faults = (process.resourceUsage().minorPageFault - faults0) / steps;
const rows = [...times].sort((a, b) => b[1][0] - a[1][0]);
const inKernels = rows.reduce((s, [, [t]]) => s + t, 0) / steps;
console.log(
  `batch ${batch}: ${total.toFixed(1)} ms/step (${((batch * 1000) / total).toFixed(0)} images/s), ` +
    `${totalCpu.toFixed(1)} CPU ms/step, ` +
    `${inKernels.toFixed(1)} ms in backend calls, ${faults.toFixed(0)} minor page faults/step`,
);
const st = backendName === 'native' ? native.stats() : { buffers: 0, bytes: 0, pooledBytes: 0 };
console.log(
  `native memory: ${st.buffers} live buffers, ${(st.bytes / 2 ** 20).toFixed(1)} MiB live, ` +
    `${(st.pooledBytes / 2 ** 20).toFixed(1)} MiB pooled`,
);
console.log(`${'kernel'.padEnd(30)} ${'wall ms'.padStart(8)} ${'CPU ms'.padStart(8)} ${'calls'.padStart(6)}`);
for (const [k, [t, c, cpu]] of rows.slice(0, 30)) {
  console.log(
    `${k.padEnd(30)} ${(t / steps).toFixed(2).padStart(8)} ${(cpu / steps).toFixed(2).padStart(8)} ${String(c / steps).padStart(6)}`,
  );
}
