/**
 * Mixed-precision convolutions of the native backend (`setConvPrecision('bf16')`): forward, backward
 * data and backward filter against the float64 reference, within bf16 tolerance.
 *
 * bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3 per operand); products accumulate
 * in float32. The normwise relative error (max |error| / max |reference|) of a sum of K rounded
 * products grows at most like sqrt(K) for random signs, so the bound is max(1e-2, 2e-3·sqrt(K)).
 * The same inputs through the float32 kernels agree to 1e-4: that the bf16 ones differ by more
 * shows they really rounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Conv2DParams, Handle } from '../../src/core/backend.js';
import { OptionError } from '../../src/core/errors.js';
import { Random } from '../../src/core/random.js';
import { referenceBackend as R } from '../../src/backends/reference/index.js';
import { type NativeBackend, loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { randomArray } from '../helpers/arrays.js';
import { type ConvSpec, convFilterSize, convInputSize, convOutputSize, convParams } from '../helpers/params.js';

const N = loadNativeBackend();

/** Runs only where the addon loads and bf16 runs at all (AVX-512), saying why it skipped otherwise. */
function bf16Test(name: string, body: (n: NativeBackend) => void): void {
  test(name, (t) => {
    if (!N) return void t.skip(nativeBackendStatus().reason);
    if (N.bf16Hardware() === 'unsupported') return void t.skip('no AVX-512: oneDNN 2.6 has no bf16 convolutions here');
    const was = N.setConvPrecision('bf16');
    try {
      body(N);
    } finally {
      N.setConvPrecision(was);
    }
  });
}

function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let err = 0,
    scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return scale === 0 ? err : err / scale;
}

const bf16Tolerance = (k: number): number => Math.max(1e-2, 2e-3 * Math.sqrt(k));

/** Reduction lengths of the three passes. */
function reductions(p: Conv2DParams): { forward: number; backwardInput: number; backwardFilter: number } {
  const window = p.kernelHeight * p.kernelWidth;
  return {
    forward: (window * p.inChannels) / p.groups,
    backwardInput: (window * p.outChannels) / p.groups,
    backwardFilter: p.batch * p.outHeight * p.outWidth,
  };
}

interface PassResult {
  bf16: ArrayLike<number>;
  fp32: ArrayLike<number>;
  reference: ArrayLike<number>;
}

/** One pass under bf16 and under fp32 on the native backend, and on the reference. */
function runPass(n: NativeBackend, size: number, native: () => Handle, reference: () => Handle): PassResult {
  const take = (h: Handle) => {
    const v = n.download(h, size, 'float32');
    n.dispose(h);
    return v;
  };
  const bf16 = take(native());
  n.setConvPrecision('fp32');
  const fp32 = take(native());
  n.setConvPrecision('bf16');
  return { bf16, fp32, reference: R.download(reference(), size, 'float64') };
}

function checkBf16Conv(n: NativeBackend, rng: Random, spec: ConvSpec, label: string): void {
  const p = convParams(spec);
  const up = (size: number) => {
    const v = Float32Array.from(randomArray(rng, size));
    return { n: n.upload(v), r: R.upload(Float64Array.from(v)) };
  };
  const x = up(convInputSize(p)),
    w = up(convFilterSize(p)),
    dy = up(convOutputSize(p));
  const k = reductions(p);
  const passes: Array<[keyof typeof k, number, () => Handle, () => Handle]> = [
    ['forward', convOutputSize(p), () => n.conv2d(x.n, w.n, p), () => R.conv2d(x.r, w.r, p)],
    ['backwardInput', convInputSize(p), () => n.conv2dBackwardInput(dy.n, w.n, p), () => R.conv2dBackwardInput(dy.r, w.r, p)],
    ['backwardFilter', convFilterSize(p), () => n.conv2dBackwardFilter(x.n, dy.n, p), () => R.conv2dBackwardFilter(x.r, dy.r, p)],
  ];
  for (const [pass, size, native, reference] of passes) {
    const impl = n.describeConv(p, pass);
    const r = runPass(n, size, native, reference);
    const what = `${label} ${pass} (${impl}, K=${k[pass]})`;
    const e = relError(r.bf16, r.reference);
    assert.ok(
      e <= bf16Tolerance(k[pass]),
      `${what}: bf16 relative error ${e.toExponential(2)} > ${bf16Tolerance(k[pass]).toExponential(2)}`,
    );
    assert.ok(relError(r.fp32, r.reference) <= 1e-4, `${what}: the float32 kernel disagrees with the reference`);
    // A pass that runs another implementation than float32's rounds its operands: its results must differ.
    if (impl !== n.describeConv(p, pass, 'fp32')) assert.ok(e > 1e-5, `${what}: no bf16 rounding visible (error ${e})`);
  }
  for (const h of [x.n, w.n, dy.n]) n.dispose(h);
}

const BF16_CASES: Array<[string, ConvSpec]> = [
  ['3×3 same', { batch: 2, height: 5, width: 7, inChannels: 3, outChannels: 4, kernel: [3, 3], padding: 'same' }],
  [
    '3×3 stride 2 valid (block1_conv1)',
    { height: 15, width: 15, inChannels: 3, outChannels: 8, kernel: [3, 3], stride: [2, 2], padding: 'valid' },
  ],
  [
    'asymmetric padding, dilation',
    {
      batch: 2,
      height: 9,
      width: 8,
      inChannels: 5,
      outChannels: 6,
      kernel: [3, 2],
      dilation: [2, 1],
      padding: { height: [2, 0], width: [0, 1] },
    },
  ],
  ['grouped, 3 groups', { batch: 2, height: 6, width: 6, inChannels: 6, outChannels: 9, kernel: [3, 3], padding: 'same', groups: 3 }],
  ['depthwise 3×3', { batch: 2, height: 9, width: 9, inChannels: 16, outChannels: 16, kernel: [3, 3], padding: 'same', groups: 16 }],
  [
    'depthwise 3×3 stride 2, multiplier 2',
    { height: 10, width: 7, inChannels: 5, outChannels: 10, kernel: [3, 3], stride: [2, 2], padding: 'same', groups: 5 },
  ],
  ['1×1 pointwise', { batch: 2, height: 7, width: 7, inChannels: 32, outChannels: 48, kernel: [1, 1], padding: 'valid' }],
  [
    '1×1 stride 2 (residual shortcut)',
    { height: 9, width: 9, inChannels: 16, outChannels: 24, kernel: [1, 1], stride: [2, 2], padding: 'same' },
  ],
  [
    '1×1 stride 2, 8 input channels (float32 gather path)',
    { height: 8, width: 8, inChannels: 8, outChannels: 16, kernel: [1, 1], stride: [2, 2], padding: 'same' },
  ],
  ['Xception middle flow pointwise', { height: 19, width: 19, inChannels: 728, outChannels: 728, kernel: [1, 1], padding: 'same' }],
  [
    'Xception middle flow depthwise',
    { height: 19, width: 19, inChannels: 728, outChannels: 728, kernel: [3, 3], padding: 'same', groups: 728 },
  ],
];

bf16Test('bf16 convolutions (forward, backward data, backward filter) agree with the reference within bf16 tolerance', (n) => {
  const rng = new Random(16);
  for (const [label, spec] of BF16_CASES) checkBf16Conv(n, rng, spec, label);
});

bf16Test('bf16 mode runs in bf16 where it pays: not with few input channels, not depthwise, not strided 1×1 filter gradients', (n) => {
  const isa = nativeBackendStatus().cpuIsa ?? '';
  const native = n.bf16Hardware() === 'native';
  const cases: Array<[ConvSpec, boolean[]]> = [
    [BF16_CASES[6]![1], [true, true, true]], // pointwise: its filter gradient as a bf16 matmul
    [BF16_CASES[7]![1], [true, true, false]], // strided 1×1: the filter gradient stays float32
    [BF16_CASES[4]![1], [false, false, false]], // depthwise: float32 arithmetic (bf16 only in storage)
    [BF16_CASES[1]![1], [false, false, false]], // the 3-channel stem
    [{ batch: 2, height: 9, width: 9, inChannels: 32, outChannels: 16, kernel: [3, 3], padding: 'same' }, [true, true, true]],
  ];
  for (const [spec, inBf16] of cases) {
    const p = convParams(spec);
    (['forward', 'backwardInput', 'backwardFilter'] as const).forEach((pass, i) => {
      const bf16 = n.describeConv(p, pass);
      const fp32 = n.describeConv(p, pass, 'fp32');
      if (!native) return;
      const label = `${JSON.stringify(spec)} ${pass}: ${bf16} (fp32 ${fp32}) on ${isa}`;
      if (inBf16[i]) assert.match(bf16, /bf16/, label);
      else assert.equal(bf16, fp32, label);
    });
  }
});

bf16Test('bf16 pointwise passes see an in-place update of the weights and never a stale output-gradient rounding', (n) => {
  const rng = new Random(3);
  const p = convParams(BF16_CASES[6]![1]);
  const upload = (size: number) => n.upload(Float32Array.from(randomArray(rng, size)));
  const x = upload(convInputSize(p)),
    w = upload(convFilterSize(p)),
    dy = upload(convOutputSize(p));
  const passes = () => [
    n.download(n.conv2d(x, w, p), convOutputSize(p), 'float32'),
    n.download(n.conv2dBackwardInput(dy, w, p), convInputSize(p), 'float32'),
    n.download(n.conv2dBackwardFilter(x, dy, p), convFilterSize(p), 'float32'),
  ];
  const [y0, dx0, dw0] = passes();
  // The output gradient's rounding, kept between its two readers, gives the same bits again.
  assert.deepEqual(passes(), [y0, dx0, dw0]);
  // The weights halve in place (SGD, weight decay 0.5): both passes that read them must see it.
  const zero = n.zeros(convFilterSize(p), 'float32');
  n.applyUpdate({ kind: 'sgd', lr: 1, momentum: 0, nesterov: false, weightDecay: 0.5 }, w, zero, [], convFilterSize(p), 1);
  const [y1, dx1] = passes();
  // Halving is exact in bf16 and float32, so the results halve exactly.
  assert.deepEqual(
    y1,
    y0!.map((v) => v / 2),
    'a kept bf16 filter survived an update of the weights (forward)',
  );
  assert.deepEqual(
    dx1,
    dx0!.map((v) => v / 2),
    'a kept bf16 filter survived an update of the weights (backward data)',
  );
  // A new gradient in a recycled buffer gets its own rounding.
  n.dispose(dy);
  const dyNew = upload(convOutputSize(p));
  const dwNew = n.download(n.conv2dBackwardFilter(x, dyNew, p), convFilterSize(p), 'float32');
  n.setConvPrecision('fp32');
  const dwFp32 = n.download(n.conv2dBackwardFilter(x, dyNew, p), convFilterSize(p), 'float32');
  n.setConvPrecision('bf16');
  assert.ok(relError(dwNew, dwFp32) < bf16Tolerance(p.batch * p.outHeight * p.outWidth), 'a stale output-gradient rounding was used');
  for (const h of [x, w, dyNew, zero]) n.dispose(h);
});

bf16Test('the operand rounding agrees bit for bit with oneDNN’s reorder, ties, NaN, infinities and subnormals included', (n) => {
  if (n.bf16Hardware() !== 'native') return; // the addon's own loop runs only with AVX512_BF16
  const bits = new Uint32Array(100_003); // odd: the loop's 32-wide blocks, then a masked tail
  const rng = new Random(7);
  const special = [
    0x00000000,
    0x80000000,
    0x7f800000,
    0xff800000,
    0x7fc00000,
    0xffc00001,
    0x7f800001,
    0x7fbfffff, // zeros, infinities, NaNs
    0x00000001,
    0x807fffff,
    0x00800000,
    0x7f7fffff,
    0xff7fffff, // subnormals, the smallest normal, the largest finite
    0x3f808000,
    0x3f818000,
    0x3f80c000,
    0x3f807fff,
    0x7f7f8000, // ties to even (down, up), above and below a tie, a tie to infinity
  ];
  for (let i = 0; i < bits.length; i++) bits[i] = i < special.length ? special[i]! : Math.floor(rng.uniform(0, 2 ** 32));
  for (let i = bits.length - 40; i < bits.length; i++) bits[i] = special[i % special.length]!; // the tail too
  const x = new Float32Array(bits.buffer);
  const { onednn, own } = n.bf16RoundingPaths(x);
  assert.ok(own, 'no own rounding on a native-bf16 CPU');
  const a = new Uint32Array(onednn.buffer, onednn.byteOffset, x.length),
    b = new Uint32Array(own.buffer, own.byteOffset, x.length);
  for (let i = 0; i < x.length; i++)
    if (a[i] !== b[i])
      assert.fail(`element ${i} (0x${bits[i]!.toString(16)}): oneDNN 0x${a[i]!.toString(16)}, ours 0x${b[i]!.toString(16)}`);
  // And the rounding is real: to nearest, ties to even.
  assert.equal(b[13], 0x3f800000);
  assert.equal(b[14], 0x3f820000);
});

test('setConvPrecision: an unknown precision is an OptionError; fp32 is the default', (t) => {
  if (!N) return void t.skip(nativeBackendStatus().reason);
  assert.equal(N.convPrecision(), 'fp32');
  assert.throws(() => N.setConvPrecision('fp16' as 'bf16'), OptionError);
  assert.equal(N.convPrecision(), 'fp32');
});

test('with oneDNN held to AVX-512 without bf16, the status says emulated and bf16 convolutions still agree', (t) => {
  if (!N) return void t.skip(nativeBackendStatus().reason);
  const child = fileURLToPath(new URL('../helpers/bf16-emulated-child.js', import.meta.url));
  const r = spawnSync(process.execPath, [child], { env: { ...process.env, ONEDNN_MAX_CPU_ISA: 'AVX512_CORE' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bf16: string; cpuIsa: string; errors: number[]; impl: string };
  assert.equal(out.cpuIsa, 'avx512_core');
  assert.equal(out.bf16, 'emulated');
  assert.match(out.impl, /bf16/);
  for (const e of out.errors) assert.ok(e > 1e-5 && e <= 1e-2, `emulated bf16 relative error ${e}`);
});

/** Whether every value is a bf16 value (its low 16 bits are zero): what a low buffer holds. */
function allBf16(v: Float32Array): boolean {
  const bits = new Uint32Array(v.buffer, v.byteOffset, v.length);
  return bits.every((b) => (b & 0xffff) === 0);
}

bf16Test('a bf16 pointwise output is kept as bf16, and every reader of it sees the same values as of its float32 copy', (n) => {
  if (n.bf16Hardware() !== 'native') return; // emulated bf16 runs the pointwise passes in float32
  const rng = new Random(21);
  const spec: ConvSpec = { batch: 2, height: 6, width: 6, inChannels: 24, outChannels: 40, kernel: [1, 1], padding: 'valid' };
  const p = convParams(spec);
  const size = convOutputSize(p);
  const up = (k: number) => n.upload(Float32Array.from(randomArray(rng, k)));
  const x = up(convInputSize(p)),
    w = up(convFilterSize(p));
  const before = n.stats().bytes;
  const low = n.conv2d(x, w, p);
  // Half the bytes of a float32 output: its storage is bf16.
  assert.ok(n.stats().bytes - before < size * 4, `a ${size}-value output took ${n.stats().bytes - before} bytes`);
  const values = n.download(low, size, 'float32') as Float32Array;
  assert.ok(allBf16(values), 'the output holds values that are not bf16');
  const copy = n.upload(values);
  const bn = { rows: p.batch * p.outHeight * p.outWidth, channels: p.outChannels, epsilon: 1e-3 };
  const gamma = n.upload(Float32Array.from(randomArray(rng, bn.channels), (v) => v + 1.5)),
    beta = up(bn.channels);
  // Bitwise, except batch norm: its loops on bf16 input are compiled apart from the float32 ones,
  // and the compiler may fuse a multiply-add in one and not the other (a last-bit difference).
  const same = (label: string, run: (input: Handle) => Handle[], k: number[], tolerance = 0) => {
    const a = run(low).map((h, i) => n.download(h, k[i]!, 'float32'));
    const b = run(copy).map((h, i) => n.download(h, k[i]!, 'float32'));
    if (tolerance === 0) return assert.deepEqual(a, b, `${label}: a low input and its float32 copy disagree`);
    a.forEach((v, i) => assert.ok(relError(v, b[i]!) <= tolerance, `${label}: output ${i} differs by ${relError(v, b[i]!)}`));
  };
  const c = bn.channels;
  for (const relu of [false, true]) {
    const q = { ...bn, relu };
    same(`batchNormTrain relu=${relu}`, (v) => Object.values(n.batchNormTrain(v, gamma, beta, q)), [size, c, c], 1e-6);
    const t = n.batchNormTrain(copy, gamma, beta, q);
    same(`batchNormInference relu=${relu}`, (v) => [n.batchNormInference(v, gamma, beta, t.mean, t.variance, q)], [size], 1e-6);
    const dy = up(size);
    n.setConvPrecision('fp32'); // a float32 dx, to compare values
    same(
      `batchNormBackward relu=${relu}`,
      (v) => Object.values(n.batchNormBackward(dy, v, gamma, t.mean, t.variance, q, t.y)),
      [size, c, c],
      1e-6,
    );
    n.setConvPrecision('bf16');
  }
  // Kernels that read float32 widen it: ReLU, and a pointwise pass of another convolution.
  same('relu', (v) => [n.relu(v, size)], [size]);
  const p2 = convParams({ ...spec, inChannels: 40, outChannels: 8 });
  const w2 = up(convFilterSize(p2));
  same('pointwise forward on a low input', (v) => [n.conv2d(v, w2, p2)], [convOutputSize(p2)]);
  same('pointwise backward data on a low gradient', (v) => [n.conv2dBackwardInput(v, w, p)], [convInputSize(p)]);
  same('pointwise filter gradient on a low gradient', (v) => [n.conv2dBackwardFilter(x, v, p)], [convFilterSize(p)]);
  // After a float32 reader widened it, it is an ordinary tensor with the same values.
  assert.deepEqual(n.download(low, size, 'float32'), values);
  for (const h of [x, w, w2, low, copy, gamma, beta]) n.dispose(h);
});

bf16Test('a bf16 pointwise input gradient is kept as bf16', (n) => {
  if (n.bf16Hardware() !== 'native') return; // emulated bf16 runs the pointwise passes in float32
  const rng = new Random(24);
  const p = convParams({ batch: 2, height: 5, width: 6, inChannels: 40, outChannels: 24, kernel: [1, 1], padding: 'valid' });
  const size = convInputSize(p);
  const dy = n.upload(Float32Array.from(randomArray(rng, convOutputSize(p)))),
    w = n.upload(Float32Array.from(randomArray(rng, convFilterSize(p))));
  const before = n.stats().bytes;
  const dx = n.conv2dBackwardInput(dy, w, p);
  assert.ok(n.stats().bytes - before < size * 4, `a ${size}-value input gradient took ${n.stats().bytes - before} bytes`);
  assert.ok(allBf16(n.download(dx, size, 'float32') as Float32Array), 'the input gradient holds values that are not bf16');
  for (const h of [dy, w, dx]) n.dispose(h);
});

bf16Test('bf16 depthwise: the output is kept as bf16, the float32 output rounded bit for bit; low gradients read as their copies', (n) => {
  if (n.bf16Hardware() !== 'native') return; // where bf16 is emulated, nothing is stored as bf16
  const rng = new Random(25);
  // 24 channels: a whole 16-lane block and a masked one; width 9: inner columns in fours and a leftover.
  const p = convParams({ batch: 2, height: 5, width: 9, inChannels: 24, outChannels: 24, kernel: [3, 3], padding: 'same', groups: 24 });
  const size = convOutputSize(p);
  const up = (k: number) => n.upload(Float32Array.from(randomArray(rng, k)));
  const x = up(convInputSize(p)),
    w = up(convFilterSize(p));
  const before = n.stats().bytes;
  const low = n.conv2d(x, w, p);
  assert.ok(n.stats().bytes - before < size * 4, `a ${size}-value output took ${n.stats().bytes - before} bytes`);
  const values = n.download(low, size, 'float32') as Float32Array;
  n.setConvPrecision('fp32');
  const full = n.download(n.conv2d(x, w, p), size, 'float32') as Float32Array;
  n.setConvPrecision('bf16');
  assert.deepEqual(values, n.bf16RoundingPaths(full).own, 'the bf16 output is not the float32 output rounded');
  // The output as an output gradient (same shape): both backward passes read it as its float32 copy.
  const copy = n.upload(values);
  const take = (h: Handle, k: number) => n.download(h, k, 'float32');
  assert.deepEqual(take(n.conv2dBackwardInput(low, w, p), size), take(n.conv2dBackwardInput(copy, w, p), size), 'backward input');
  const k = convFilterSize(p);
  assert.deepEqual(take(n.conv2dBackwardFilter(x, low, p), k), take(n.conv2dBackwardFilter(x, copy, p), k), 'filter gradient');
  for (const h of [x, w, low, copy]) n.dispose(h);
});

bf16Test('bf16 batch-norm backward gives dx as bf16: the float32 dx rounded, bit for bit', (n) => {
  if (n.bf16Hardware() !== 'native') return; // where bf16 is emulated, dx stays float32
  const rng = new Random(22);
  // 37 rows of 5 channels: narrow rows grouped into wide ones, a leftover, and more than one block.
  for (const [rows, channels] of [
    [37, 5],
    [3000, 24],
    [200, 728],
  ] as const) {
    const size = rows * channels;
    const up = (k: number, shift = 0) => n.upload(Float32Array.from(randomArray(rng, k), (v) => v + shift));
    const x = up(size),
      gamma = up(channels, 1.5),
      beta = up(channels),
      dy = up(size);
    for (const relu of [false, true]) {
      const p = { rows, channels, epsilon: 1e-3, relu };
      const t = n.batchNormTrain(x, gamma, beta, p);
      const dx = () => n.batchNormBackward(dy, x, gamma, t.mean, t.variance, p, t.y).dx;
      const low = n.download(dx(), size, 'float32');
      n.setConvPrecision('fp32');
      const full = n.download(dx(), size, 'float32') as Float32Array;
      n.setConvPrecision('bf16');
      assert.deepEqual(low, n.bf16RoundingPaths(full).own, `${rows}×${channels} relu=${relu}`);
    }
  }
});

bf16Test('low buffers free all their memory, widened or not', (n) => {
  if (n.bf16Hardware() !== 'native') return;
  const rng = new Random(23);
  const p = convParams({ batch: 2, height: 5, width: 5, inChannels: 16, outChannels: 16, kernel: [1, 1], padding: 'valid' });
  const start = n.stats();
  // x keeps its bf16 rounding for a filter gradient that never comes: it goes with x.
  const x = n.upload(Float32Array.from(randomArray(rng, convInputSize(p)))),
    w = n.upload(Float32Array.from(randomArray(rng, convFilterSize(p))));
  for (let i = 0; i < 3; i++) {
    const a = n.conv2d(x, w, p),
      b = n.conv2d(x, w, p);
    n.dispose(n.relu(b, convOutputSize(p))); // widens b
    n.dispose(a);
    n.dispose(b);
  }
  for (const h of [x, w]) n.dispose(h);
  const end = n.stats();
  assert.equal(end.buffers, start.buffers);
  assert.equal(end.bytes, start.bytes);
});
