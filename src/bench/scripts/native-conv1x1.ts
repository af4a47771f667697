/**
 * GFLOP/s of Xception's middle-flow pointwise convolution (batch 1, 19×19, 728→728, 1×1) through
 * the onednn backend, i.e. including the binding, the handle checks, the per-call filter reorder
 * and the output allocation. Run: `npm run build && node dist/src/bench/scripts/native-conv1x1.js [batch]`.
 */
import type { Conv2DParams } from '../../core/backend.js';
import { Random } from '../../core/random.js';
import { nativeBackendStatus, requireNativeBackend } from '../../backends/onednn/index.js';

const batch = Number(process.argv[2] ?? 1);
const size = 19,
  channels = 728;
const p: Conv2DParams = {
  batch,
  inHeight: size,
  inWidth: size,
  inChannels: channels,
  outHeight: size,
  outWidth: size,
  outChannels: channels,
  kernelHeight: 1,
  kernelWidth: 1,
  strideHeight: 1,
  strideWidth: 1,
  dilationHeight: 1,
  dilationWidth: 1,
  padTop: 0,
  padLeft: 0,
  padBottom: 0,
  padRight: 0,
  groups: 1,
};

const backend = requireNativeBackend();
const rng = new Random(1);
const fill = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
const x = backend.upload(fill(batch * size * size * channels));
const w = backend.upload(fill(channels * channels));
const flop = 2 * batch * size * size * channels * channels;

// Wall time, plus process CPU time and minor page faults per call: on a shared machine the CPU
// time of a single-threaded run (OMP_NUM_THREADS=1) is the steadier measure of work done.
function timeIt(label: string, f: () => void): void {
  for (let i = 0; i < 20; i++) f(); // warm up: primitive creation, page faults, OpenMP threads
  const times: number[] = [],
    cpu: number[] = [];
  const faults0 = process.resourceUsage().minorPageFault;
  const iters = 50,
    reps = 7;
  for (let rep = 0; rep < reps; rep++) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let i = 0; i < iters; i++) f();
    const c = process.cpuUsage(c0);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9 / iters);
    cpu.push((c.user + c.system) / 1e6 / iters);
  }
  const faults = (process.resourceUsage().minorPageFault - faults0) / (iters * reps);
  times.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  const median = times[3]!,
    best = times[0]!,
    cpuMedian = cpu[3]!;
  console.log(
    `${label}: median ${(median * 1e3).toFixed(3)} ms = ${(flop / median / 1e9).toFixed(1)} GFLOP/s ` +
      `(best ${(flop / best / 1e9).toFixed(1)}); CPU ${(cpuMedian * 1e3).toFixed(3)} ms/call = ` +
      `${(flop / cpuMedian / 1e9).toFixed(1)} GFLOP/s per busy core; ${faults.toFixed(1)} page faults/call`,
  );
}

console.log(
  `onednn ${nativeBackendStatus().onednn}; forward impl ${backend.describeConv(p)}; ` +
    `${(flop / 1e6).toFixed(1)} MFLOP per call, batch ${batch}`,
);
timeIt('conv2d forward        ', () => backend.dispose(backend.conv2d(x, w, p)));
const dy = backend.upload(fill(batch * size * size * channels));
console.log(`backward impls: data ${backend.describeConv(p, 'backwardInput')}, filter ${backend.describeConv(p, 'backwardFilter')}`);
timeIt('conv2d backward input ', () => backend.dispose(backend.conv2dBackwardInput(dy, w, p)));
timeIt('conv2d backward filter', () => backend.dispose(backend.conv2dBackwardFilter(x, dy, p)));
