/**
 * Batch norm and ReLU on the main job's shapes: the contract kernels (native/kernels_bn.cc,
 * kernels_loops.cc) against oneDNN's (registered as `<kernel>.dnnl`), same run, same buffers;
 * fastest ms per call and the ratio. Run: `npm run build && node dist/src/bench/scripts/own-vs-dnnl.js`
 * (and with OMP_NUM_THREADS=1 on a shared machine, where the second thread is often descheduled).
 */
import { loadAddon, type NativeBuffer } from '../../backends/onednn/binding.js';
import { Random } from '../../core/random.js';

const load = loadAddon();
if (load.addon === null) throw new Error(load.reason);
const addon = load.addon;
const rng = new Random(1);
const upload = (n: number, lo = -1, hi = 1): NativeBuffer => addon.upload(Float32Array.from({ length: n }, () => rng.uniform(lo, hi)));

function time(f: () => void): number {
  for (let i = 0; i < 3; i++) f();
  // The fastest of 15: on a shared 2-core machine a descheduled OpenMP thread stalls a whole
  // call by a scheduler tick, which medians of a few calls do not filter out.
  const reps = 15,
    times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    times.push(performance.now() - t);
  }
  return Math.min(...times);
}

// [rows, channels]: rows = 128·H·W of the main job's model.
const SHAPES: Array<[number, number]> = [
  [128 * 28 * 28, 8],
  [128 * 28 * 28, 16],
  [128 * 14 * 14, 32],
  [128 * 7 * 7, 64],
  [128 * 7 * 7, 182],
  [128 * 4 * 4, 182],
  [128 * 2 * 2, 256],
  [128 * 2 * 2, 512],
];
console.log('rows×channels'.padEnd(16), 'kernel'.padEnd(20), 'own ms'.padStart(8), 'dnnl ms'.padStart(8), 'dnnl/own'.padStart(9));
for (const [rows, ch] of SHAPES) {
  const x = upload(rows * ch, -1, 3),
    dy = upload(rows * ch);
  const gamma = upload(ch, 0.5, 1.5),
    beta = upload(ch),
    mean = upload(ch),
    variance = upload(ch, 0.5, 2);
  const nums = [rows, ch, 1e-3];
  const run = (op: string, inputs: NativeBuffer[]) => () => {
    for (const h of addon.run(op, inputs, nums, undefined)) if (typeof h !== 'number') addon.free(h);
  };
  const cases: Array<[string, NativeBuffer[]]> = [
    ['batchNormTrain', [x, gamma, beta]],
    ['batchNormBackward', [dy, x, gamma, mean, variance]],
    ['batchNormInference', [x, gamma, beta, mean, variance]],
  ];
  for (const [op, inputs] of cases) {
    const own = time(run(op, inputs)),
      dnnl = time(run(`${op}.dnnl`, inputs));
    console.log(
      `${rows}×${ch}`.padEnd(16),
      op.padEnd(20),
      own.toFixed(3).padStart(8),
      dnnl.toFixed(3).padStart(8),
      (dnnl / own).toFixed(2).padStart(9),
    );
  }
  for (const h of [x, dy, gamma, beta, mean, variance]) addon.free(h);
}

for (const size of [128 * 28 * 28 * 16, 128 * 14 * 14 * 32, 128 * 4 * 4 * 182, 128 * 2 * 2 * 512]) {
  const x = upload(size),
    dy = upload(size);
  const run = (op: string, inputs: NativeBuffer[]) => () => {
    for (const h of addon.run(op, inputs, [size], undefined)) if (typeof h !== 'number') addon.free(h);
  };
  for (const [op, inputs] of [
    ['relu', [x]],
    ['reluBackward', [dy, x]],
  ] as Array<[string, NativeBuffer[]]>) {
    const own = time(run(op, inputs)),
      dnnl = time(run(`${op}.dnnl`, inputs));
    console.log(
      `${size}`.padEnd(16),
      op.padEnd(20),
      own.toFixed(3).padStart(8),
      dnnl.toFixed(3).padStart(8),
      (dnnl / own).toFixed(2).padStart(9),
    );
  }
  for (const h of [x, dy]) addon.free(h);
}
