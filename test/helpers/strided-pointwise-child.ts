/**
 * Child process of test/backends/native-strided-pointwise.test.ts. oneDNN 2.6 corrupted the heap
 * on strided 1×1 filter gradients with fewer than 16 input channels (SIGSEGV or a hang), which
 * would take the test runner down with it, so these checks run here and print JSON:
 *   kernels        → [{ label, impl, errors: [forward, backward input, backward filter] }]
 *   model W S B    → one training step of a small Xception on both backends: losses and
 *                    gradient errors (see native-xception.test.ts for why gradients are in L2)
 *   skipped        → { skipped: reason } when the addon is not built
 */
import { backward, ops, Random, tensor, tidy, xception } from '../../src/index.js';
import type { Backend, Conv2DParams } from '../../src/core/backend.js';
import { referenceBackend as R } from '../../src/backends/reference/index.js';
import { type NativeBackend, loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { randomArray } from './arrays.js';
import { type ConvSpec, convFilterSize, convInputSize, convOutputSize, convParams } from './params.js';

/** max |actual − expected| / max |expected|, as the kernel tests measure. */
function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let err = 0,
    scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return scale === 0 ? err : err / scale;
}

/** The residual shortcut of an Xception block: 1×1, stride 2, 'same' (no padding for 1×1). */
function shortcut(batch: number, size: number, inChannels: number, outChannels: number): ConvSpec {
  return { batch, height: size, width: size, inChannels, outChannels, kernel: [1, 1], stride: [2, 2], padding: 'same' };
}

const KERNEL_CASES: Array<[string, ConvSpec]> = [
  // The shapes that crashed: block2's shortcut of width 0.125 (8 → 16) and 0.0625 (4 → 8) at 64×64.
  ['8→16 at 64×64, batch 1', shortcut(1, 64, 8, 16)],
  ['8→16 at 64×64, batch 16', shortcut(16, 64, 8, 16)],
  ['4→8 at 64×64, batch 16', shortcut(16, 64, 4, 8)],
  ['8→16 at 32×32, batch 2 (hung in isolation)', shortcut(2, 32, 8, 16)],
  ...[1, 2, 3, 7, 9, 12, 15].map((c): [string, ConvSpec] => [`${c}→16 at 40×40, batch 4`, shortcut(4, 40, c, 16)]),
  ['15→45 at 33×33, batch 3 (odd size)', shortcut(3, 33, 15, 45)],
  [
    '8→16, strides 2×1',
    { batch: 2, height: 20, width: 21, inChannels: 8, outChannels: 16, kernel: [1, 1], stride: [2, 1], padding: 'valid' },
  ],
  [
    '8→12, stride 3, explicit padding (the gather writes zero rows)',
    {
      batch: 2,
      height: 17,
      width: 16,
      inChannels: 8,
      outChannels: 12,
      kernel: [1, 1],
      stride: [3, 3],
      padding: { height: [1, 2], width: [2, 0] },
    },
  ],
  // From 16 input channels on, oneDNN's own kernels run (and are correct).
  ['16→32 at 64×64, batch 2', shortcut(2, 64, 16, 32)],
];

function pairOf(n: NativeBackend, rng: Random, size: number) {
  const f32 = Float32Array.from(randomArray(rng, size));
  return { n: n.upload(f32), r: R.upload(Float64Array.from(f32)) };
}

function checkKernels(n: NativeBackend) {
  const rng = new Random(16);
  return KERNEL_CASES.map(([label, spec]) => {
    const p: Conv2DParams = convParams(spec);
    const x = pairOf(n, rng, convInputSize(p)),
      w = pairOf(n, rng, convFilterSize(p)),
      dy = pairOf(n, rng, convOutputSize(p));
    const compare = (native: ReturnType<NativeBackend['upload']>, reference: ReturnType<typeof R.upload>, size: number) => {
      const e = relError(n.download(native, size, 'float32'), R.download(reference, size, 'float64'));
      n.dispose(native);
      return e;
    };
    const errors = [
      compare(n.conv2d(x.n, w.n, p), R.conv2d(x.r, w.r, p), convOutputSize(p)),
      compare(n.conv2dBackwardInput(dy.n, w.n, p), R.conv2dBackwardInput(dy.r, w.r, p), convInputSize(p)),
      compare(n.conv2dBackwardFilter(x.n, dy.n, p), R.conv2dBackwardFilter(x.r, dy.r, p), convFilterSize(p)),
    ];
    for (const h of [x.n, w.n, dy.n]) n.dispose(h);
    return { label, inChannels: spec.inChannels, impl: n.describeConv(p, 'backwardFilter'), errors };
  });
}

/** The reproducer's model and step: forward in training mode, softmax cross-entropy, backward. */
function trainingStep(backend: Backend, width: number, size: number, batch: number) {
  const m = xception({ backend, stem: 'small', width, middleBlocks: 1, inputShape: [size, size, 3], classes: 3, seed: 5 });
  const rng = new Random(1);
  const x = tensor(
    Float32Array.from({ length: batch * size * size * 3 }, () => rng.normal()),
    [batch, size, size, 3],
    { backend },
  );
  const loss = tidy(() => {
    const l = ops.softmaxCrossEntropy(
      m.forward(x, { training: true, logits: true }),
      Array.from({ length: batch }, (_, i) => i % 3),
    );
    backward(l);
    return l.item();
  });
  const grads = new Map(m.trainableWeights.map((w) => [w.name, w.value.grad!.data()]));
  m.dispose();
  return { loss, grads };
}

function compareModel(n: NativeBackend, width: number, size: number, batch: number) {
  const a = trainingStep(n, width, size, batch),
    b = trainingStep(R, width, size, batch);
  let diff2 = 0,
    ref2 = 0,
    worst = 0,
    worstName = '';
  for (const [name, g] of b.grads) {
    const h = a.grads.get(name)!;
    let d = 0,
      q = 0;
    for (let i = 0; i < g.length; i++) {
      d += (h[i]! - g[i]!) ** 2;
      q += g[i]! ** 2;
    }
    diff2 += d;
    ref2 += q;
    const e = q === 0 ? Math.sqrt(d) : Math.sqrt(d / q);
    if (!(e <= worst)) [worst, worstName] = [e, name];
  }
  return { loss: a.loss, referenceLoss: b.loss, weights: b.grads.size, total: Math.sqrt(diff2 / ref2), worst, worstName };
}

function main(mode: string, rest: string[]): unknown {
  const native = loadNativeBackend();
  if (!native) return { skipped: nativeBackendStatus().reason };
  if (mode === 'kernels') return checkKernels(native);
  if (mode === 'model') return compareModel(native, Number(rest[0]), Number(rest[1]), Number(rest[2]));
  throw new Error(`unknown mode ${mode}`);
}

const [mode, ...rest] = process.argv.slice(2);
// `node --test dist/test/` runs every file of the folder, this one without arguments: nothing to do.
if (mode !== undefined) process.stdout.write(`${JSON.stringify(main(mode, rest))}\n`);
