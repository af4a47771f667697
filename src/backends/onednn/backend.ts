/**
 * The oneDNN backend: implements the kernel contract (`core/backend.ts`) over the native addon.
 *
 * Every method validates in TypeScript first — handle ownership, disposal, element counts against
 * the params, integer params, output sizes — and only then calls native code, which checks the
 * same things again and throws rather than trusting them. Native failures surface as BackendError.
 *
 * Handles are `NativeTensor`s. Their memory is freed by `dispose()`; a tensor that is merely
 * dropped is freed when the garbage collector finalizes the N-API external behind it (the addon
 * reports the bytes to V8, so large lost tensors do trigger collection).
 */
import type {
  Backend,
  BatchNormParams,
  Conv2DParams,
  CrossEntropyParams,
  DType,
  GlobalPoolParams,
  Handle,
  MatMulParams,
  NumArray,
  Pool2DParams,
  RowsParams,
  UpdateRule,
} from '../../core/backend.js';
import { BackendError, DisposedError, OptionError, OutOfMemoryError, ShapeError } from '../../core/errors.js';
import type { Bf16Hardware, NativeAddon, NativeBuffer, NativePlan, NativePlanInfo, NativeStats } from './binding.js';
import { CONV_FIELDS, POOL_FIELDS } from '../params-check.js';

/** What convolutions multiply in: float32, or bf16 with float32 accumulation and results (mixed precision). */
export type ConvPrecision = 'fp32' | 'bf16';

/** Native storage of the native backend: `size` float32 elements. */
export class NativeTensor {
  constructor(readonly size: number) {}
  get disposed(): boolean {
    return !buffers.has(this);
  }
}

// Tensor → its native buffer. Kept out of the tensor object so nothing else can reach the raw
// external; a missing entry means disposed.
const buffers = new WeakMap<NativeTensor, NativeBuffer>();

function isPad(field: string): boolean {
  return field.startsWith('pad');
}

function int(op: string, name: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > 0x7fffffff) {
    throw new ShapeError(`native ${op}: ${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

function real(op: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new OptionError(`native ${op}: ${name} must be a finite number, got ${String(v)}`);
  return v;
}

/** Output size along one axis must follow from input, window, dilation, stride and padding. */
function checkAxis(
  op: string,
  axis: string,
  input: number,
  window: number,
  dilation: number,
  stride: number,
  padBefore: number,
  padAfter: number,
  output: number,
): void {
  const span = input + padBefore + padAfter - ((window - 1) * dilation + 1);
  if (span < 0) throw new ShapeError(`native ${op}: the dilated window is larger than the padded input along ${axis}`);
  const expected = Math.floor(span / stride) + 1;
  if (expected !== output) {
    throw new ShapeError(
      `native ${op}: output ${axis} ${output} does not follow from input ${input}, window ${window}, ` +
        `dilation ${dilation}, stride ${stride}, padding ${padBefore}+${padAfter} (expected ${expected})`,
    );
  }
}

function convNums(op: string, p: Conv2DParams): number[] {
  const nums = CONV_FIELDS.map((f) => int(op, f, p[f], isPad(f) ? 0 : 1));
  if (p.inChannels % p.groups !== 0 || p.outChannels % p.groups !== 0) {
    throw new ShapeError(`native ${op}: groups ${p.groups} must divide inChannels ${p.inChannels} and outChannels ${p.outChannels}`);
  }
  checkAxis(op, 'height', p.inHeight, p.kernelHeight, p.dilationHeight, p.strideHeight, p.padTop, p.padBottom, p.outHeight);
  checkAxis(op, 'width', p.inWidth, p.kernelWidth, p.dilationWidth, p.strideWidth, p.padLeft, p.padRight, p.outWidth);
  return nums;
}

function poolNums(op: string, p: Pool2DParams): number[] {
  const nums = POOL_FIELDS.map((f) => int(op, f, p[f], isPad(f) ? 0 : 1));
  checkAxis(op, 'height', p.inHeight, p.windowHeight, 1, p.strideHeight, p.padTop, p.padBottom, p.outHeight);
  checkAxis(op, 'width', p.inWidth, p.windowWidth, 1, p.strideWidth, p.padLeft, p.padRight, p.outWidth);
  if (Math.max(p.padTop, p.padBottom) >= p.windowHeight || Math.max(p.padLeft, p.padRight) >= p.windowWidth) {
    throw new ShapeError(`native ${op}: padding must be smaller than the window`);
  }
  return nums;
}

function rowsNums(op: string, p: RowsParams): [number, number] {
  return [int(op, 'rows', p.rows), int(op, 'channels', p.channels)];
}

function bnNums(op: string, p: BatchNormParams): number[] {
  const eps = real(op, 'epsilon', p.epsilon);
  if (eps <= 0) throw new OptionError(`native ${op}: epsilon must be positive, got ${eps}`);
  return [...rowsNums(op, p), eps];
}

function globalNums(op: string, p: GlobalPoolParams): number[] {
  return [int(op, 'batch', p.batch), int(op, 'spatial', p.spatial), int(op, 'channels', p.channels)];
}

function ceNums(op: string, p: CrossEntropyParams, labels: Int32Array): number[] {
  const [rows, channels] = rowsNums(op, p);
  const s = real(op, 'labelSmoothing', p.labelSmoothing);
  if (s < 0 || s > 1) throw new OptionError(`native ${op}: labelSmoothing must be in [0, 1], got ${s}`);
  if (!(labels instanceof Int32Array)) throw new ShapeError(`native ${op}: labels must be an Int32Array`);
  if (labels.length !== rows) throw new ShapeError(`native ${op}: ${labels.length} labels for ${rows} rows`);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l < 0 || l >= channels) throw new ShapeError(`native ${op}: label ${l} at row ${i} is outside [0, ${channels})`);
  }
  return [rows, channels, s];
}

function product(...dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

export class NativeBackend implements Backend {
  /** As --backend and XCEPTION_BACKEND name it ('onednn' is accepted as an alias). */
  readonly name = 'native';
  readonly dtypes: readonly DType[] = ['float32'];

  private convPrecisionMode: ConvPrecision = 'fp32';

  constructor(
    private readonly addon: NativeAddon,
    readonly onednnVersion: string,
  ) {}

  // --- precision ----------------------------------------------------------------------------

  /** Whether bf16 arithmetic is native, emulated or unsupported on this CPU (see Bf16Hardware). */
  bf16Hardware(): Bf16Hardware {
    return this.addon.version().bf16;
  }

  /**
   * Mixed precision for the convolutions of this thread's backend, forward and both backward
   * passes: 'bf16' rounds the operands they multiply (input, filter, output gradient) to bfloat16
   * inside the kernel and accumulates in float32. Where bf16 is native, a pointwise convolution's
   * output and a batch-norm backward's dx (the next bf16 pass's output gradient) are also kept as
   * bf16, in half the memory; every kernel reads them as the float32 values they are, so the
   * kernel contract, the weights, optimizer state and batch-norm statistics stay float32. Where
   * oneDNN has no fast bf16 kernel for a shape, that shape runs in float32. 'bf16' on a CPU
   * without AVX-512 is an OptionError.
   * Returns the previous mode (callers restore it).
   */
  setConvPrecision(precision: ConvPrecision): ConvPrecision {
    if (precision !== 'fp32' && precision !== 'bf16')
      throw new OptionError(`conv precision must be 'fp32' or 'bf16', got ${JSON.stringify(precision)}`);
    if (precision === 'bf16' && this.bf16Hardware() === 'unsupported') {
      throw new OptionError(`bf16 precision needs a CPU with AVX-512 (oneDNN dispatches to ${this.addon.version().cpuIsa} here); use fp32`);
    }
    const was = this.convPrecisionMode;
    this.convPrecisionMode = precision;
    return was;
  }

  convPrecision(): ConvPrecision {
    return this.convPrecisionMode;
  }

  /**
   * The native kernel a convolution pass, or a batch-norm backward (whose dx such a pass reads
   * next), runs under the current precision.
   */
  private convOp(op: string): string {
    return this.convPrecisionMode === 'bf16' ? `${op}.bf16` : op;
  }

  // --- handles ------------------------------------------------------------------------------

  private tensor(op: string, name: string, h: Handle): NativeTensor {
    if (!(h instanceof NativeTensor)) throw new BackendError(`native ${op}: ${name} is not a handle of the native backend`);
    if (h.disposed) throw new DisposedError(`native ${op}: ${name} was disposed`);
    return h;
  }

  /** The native buffer of `h`, after checking it holds exactly `expected` elements. */
  private arg(op: string, name: string, h: Handle, expected: number): NativeBuffer {
    const t = this.tensor(op, name, h);
    if (t.size !== expected) {
      throw new ShapeError(`native ${op}: ${name} has ${t.size} elements, the parameters need ${expected}`);
    }
    return buffers.get(t)!;
  }

  private wrap(b: NativeBuffer | number | undefined, size: number): NativeTensor {
    if (typeof b !== 'object' || b === null) throw new BackendError('native: the addon returned no buffer');
    const t = new NativeTensor(size);
    buffers.set(t, b);
    return t;
  }

  private native<T>(op: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('ERR_')) {
        if (e.code === 'ERR_XCEPTION_NATIVE_OOM') throw new OutOfMemoryError(`native ${op}: ${e.message}`);
        throw new BackendError(`native ${op}: ${e.message}`);
      }
      throw e;
    }
  }

  private run(op: string, inputs: NativeBuffer[], nums: number[], ints?: Int32Array): Array<NativeBuffer | number> {
    return this.native(op, () => this.addon.run(op, inputs, nums, ints));
  }

  /** One-output kernel. */
  private run1(op: string, inputs: NativeBuffer[], nums: number[], outSize: number): NativeTensor {
    return this.wrap(this.run(op, inputs, nums)[0], outSize);
  }

  // --- memory -------------------------------------------------------------------------------

  upload(data: NumArray): Handle {
    if (!(data instanceof Float32Array)) {
      throw new BackendError(`native upload: this backend computes in float32 only, got ${data?.constructor?.name ?? typeof data}`);
    }
    return this.wrap(
      this.native('upload', () => this.addon.upload(data)),
      data.length,
    );
  }

  download(h: Handle, size: number, dtype: DType): NumArray {
    if (dtype !== 'float32') throw new BackendError(`native download: this backend computes in float32 only, asked for ${dtype}`);
    const b = this.arg('download', 'tensor', h, size);
    const out = new Float32Array(size);
    this.native('download', () => this.addon.download(b, out));
    return out;
  }

  zeros(size: number, dtype: DType): Handle {
    if (dtype !== 'float32') throw new BackendError(`native zeros: this backend computes in float32 only, asked for ${dtype}`);
    int('zeros', 'size', size, 0);
    return this.wrap(
      this.native('zeros', () => this.addon.alloc(size, true)),
      size,
    );
  }

  /** Frees the native memory now. Disposing twice is harmless; any other later use throws DisposedError. */
  dispose(h: Handle): void {
    if (!(h instanceof NativeTensor)) throw new BackendError('native dispose: not a handle of the native backend');
    const b = buffers.get(h);
    if (!b) return;
    buffers.delete(h);
    this.native('dispose', () => this.addon.free(b));
  }

  // --- elementwise --------------------------------------------------------------------------

  /** Empty tensors never reach native code (oneDNN has no use for zero-sized primitives). */
  private empty(op: string, size: number, inputs: Array<[string, Handle]>): NativeTensor | null {
    int(op, 'size', size, 0);
    if (size !== 0) return null;
    for (const [name, h] of inputs) this.arg(op, name, h, 0);
    return this.zeros(0, 'float32') as NativeTensor;
  }

  axpby(a: Handle, b: Handle, alpha: number, beta: number, size: number): Handle {
    const op = 'axpby';
    const e = this.empty(op, size, [
      ['a', a],
      ['b', b],
    ]);
    if (e) return e;
    const nums = [real(op, 'alpha', alpha), real(op, 'beta', beta), size];
    return this.run1(op, [this.arg(op, 'a', a, size), this.arg(op, 'b', b, size)], nums, size);
  }

  mul(a: Handle, b: Handle, size: number): Handle {
    const op = 'mul';
    const e = this.empty(op, size, [
      ['a', a],
      ['b', b],
    ]);
    if (e) return e;
    return this.run1(op, [this.arg(op, 'a', a, size), this.arg(op, 'b', b, size)], [size], size);
  }

  scale(a: Handle, s: number, size: number): Handle {
    const op = 'scale';
    const e = this.empty(op, size, [['a', a]]);
    if (e) return e;
    return this.run1(op, [this.arg(op, 'a', a, size)], [real(op, 's', s), size], size);
  }

  relu(x: Handle, size: number): Handle {
    const op = 'relu';
    const e = this.empty(op, size, [['x', x]]);
    if (e) return e;
    return this.run1(op, [this.arg(op, 'x', x, size)], [size], size);
  }

  reluBackward(dy: Handle, y: Handle, size: number): Handle {
    const op = 'reluBackward';
    const e = this.empty(op, size, [
      ['dy', dy],
      ['y', y],
    ]);
    if (e) return e;
    return this.run1(op, [this.arg(op, 'dy', dy, size), this.arg(op, 'y', y, size)], [size], size);
  }

  private eluAlpha(op: string, alpha: number): number {
    const a = real(op, 'alpha', alpha);
    if (a < 0) throw new OptionError(`native ${op}: alpha must be >= 0, got ${a}`);
    return a;
  }

  elu(x: Handle, alpha: number, size: number): Handle {
    const op = 'elu';
    const e = this.empty(op, size, [['x', x]]);
    if (e) return e;
    return this.run1(op, [this.arg(op, 'x', x, size)], [this.eluAlpha(op, alpha), size], size);
  }

  eluBackward(dy: Handle, y: Handle, alpha: number, size: number): Handle {
    const op = 'eluBackward';
    const e = this.empty(op, size, [
      ['dy', dy],
      ['y', y],
    ]);
    if (e) return e;
    const nums = [this.eluAlpha(op, alpha), size];
    return this.run1(op, [this.arg(op, 'dy', dy, size), this.arg(op, 'y', y, size)], nums, size);
  }

  // --- convolution --------------------------------------------------------------------------

  private convSizes(p: Conv2DParams): { x: number; w: number; y: number } {
    return {
      x: product(p.batch, p.inHeight, p.inWidth, p.inChannels),
      w: product(p.kernelHeight, p.kernelWidth, p.inChannels / p.groups, p.outChannels),
      y: product(p.batch, p.outHeight, p.outWidth, p.outChannels),
    };
  }

  conv2d(x: Handle, w: Handle, p: Conv2DParams): Handle {
    const op = 'conv2d';
    const nums = convNums(op, p);
    const s = this.convSizes(p);
    return this.run1(this.convOp(op), [this.arg(op, 'x', x, s.x), this.arg(op, 'filter', w, s.w)], nums, s.y);
  }

  conv2dBackwardInput(dy: Handle, w: Handle, p: Conv2DParams): Handle {
    const op = 'conv2dBackwardInput';
    const nums = convNums(op, p);
    const s = this.convSizes(p);
    return this.run1(this.convOp(op), [this.arg(op, 'dy', dy, s.y), this.arg(op, 'filter', w, s.w)], nums, s.x);
  }

  conv2dBackwardFilter(x: Handle, dy: Handle, p: Conv2DParams): Handle {
    const op = 'conv2dBackwardFilter';
    const nums = convNums(op, p);
    const s = this.convSizes(p);
    return this.run1(this.convOp(op), [this.arg(op, 'x', x, s.x), this.arg(op, 'dy', dy, s.y)], nums, s.w);
  }

  // --- normalization ------------------------------------------------------------------------

  batchNormTrain(x: Handle, gamma: Handle, beta: Handle, p: BatchNormParams): { y: Handle; mean: Handle; variance: Handle } {
    const op = p.relu ? 'batchNormReluTrain' : 'batchNormTrain';
    const nums = bnNums(op, p);
    const n = p.rows * p.channels,
      c = p.channels;
    const out = this.run(op, [this.arg(op, 'x', x, n), this.arg(op, 'gamma', gamma, c), this.arg(op, 'beta', beta, c)], nums);
    return { y: this.wrap(out[0], n), mean: this.wrap(out[1], c), variance: this.wrap(out[2], c) };
  }

  batchNormInference(x: Handle, gamma: Handle, beta: Handle, mean: Handle, variance: Handle, p: BatchNormParams): Handle {
    const op = p.relu ? 'batchNormReluInference' : 'batchNormInference';
    const nums = bnNums(op, p);
    const n = p.rows * p.channels,
      c = p.channels;
    const inputs = [
      this.arg(op, 'x', x, n),
      this.arg(op, 'gamma', gamma, c),
      this.arg(op, 'beta', beta, c),
      this.arg(op, 'mean', mean, c),
      this.arg(op, 'variance', variance, c),
    ];
    return this.run1(op, inputs, nums, n);
  }

  batchNormBackward(
    dy: Handle,
    x: Handle,
    gamma: Handle,
    mean: Handle,
    variance: Handle,
    p: BatchNormParams,
    y?: Handle,
  ): { dx: Handle; dgamma: Handle; dbeta: Handle } {
    const op = p.relu ? 'batchNormReluBackward' : 'batchNormBackward';
    const nums = bnNums(op, p);
    const n = p.rows * p.channels,
      c = p.channels;
    const inputs = [
      this.arg(op, 'dy', dy, n),
      this.arg(op, 'x', x, n),
      this.arg(op, 'gamma', gamma, c),
      this.arg(op, 'mean', mean, c),
      this.arg(op, 'variance', variance, c),
    ];
    if (p.relu) {
      if (y === undefined) throw new OptionError(`native ${op}: the fused ReLU needs the forward output y`);
      inputs.push(this.arg(op, 'y', y, n));
    }
    const out = this.run(this.convOp(op), inputs, nums);
    return { dx: this.wrap(out[0], n), dgamma: this.wrap(out[1], c), dbeta: this.wrap(out[2], c) };
  }

  // --- pooling ------------------------------------------------------------------------------

  private poolSizes(p: Pool2DParams): { x: number; y: number } {
    return {
      x: product(p.batch, p.inHeight, p.inWidth, p.channels),
      y: product(p.batch, p.outHeight, p.outWidth, p.channels),
    };
  }

  maxPool2d(x: Handle, p: Pool2DParams): Handle {
    const op = 'maxPool2d';
    const nums = poolNums(op, p);
    const s = this.poolSizes(p);
    return this.run1(op, [this.arg(op, 'x', x, s.x)], nums, s.y);
  }

  maxPool2dBackward(dy: Handle, x: Handle, p: Pool2DParams): Handle {
    const op = 'maxPool2dBackward';
    const nums = poolNums(op, p);
    const s = this.poolSizes(p);
    return this.run1(op, [this.arg(op, 'dy', dy, s.y), this.arg(op, 'x', x, s.x)], nums, s.x);
  }

  avgPool2d(x: Handle, p: Pool2DParams): Handle {
    const op = 'avgPool2d';
    const nums = poolNums(op, p);
    const s = this.poolSizes(p);
    return this.run1(op, [this.arg(op, 'x', x, s.x)], nums, s.y);
  }

  avgPool2dBackward(dy: Handle, p: Pool2DParams): Handle {
    const op = 'avgPool2dBackward';
    const nums = poolNums(op, p);
    const s = this.poolSizes(p);
    return this.run1(op, [this.arg(op, 'dy', dy, s.y)], nums, s.x);
  }

  globalAvgPool(x: Handle, p: GlobalPoolParams): Handle {
    const op = 'globalAvgPool';
    const nums = globalNums(op, p);
    return this.run1(op, [this.arg(op, 'x', x, p.batch * p.spatial * p.channels)], nums, p.batch * p.channels);
  }

  globalAvgPoolBackward(dy: Handle, p: GlobalPoolParams): Handle {
    const op = 'globalAvgPoolBackward';
    const nums = globalNums(op, p);
    return this.run1(op, [this.arg(op, 'dy', dy, p.batch * p.channels)], nums, p.batch * p.spatial * p.channels);
  }

  globalMaxPool(x: Handle, p: GlobalPoolParams): Handle {
    const op = 'globalMaxPool';
    const nums = globalNums(op, p);
    return this.run1(op, [this.arg(op, 'x', x, p.batch * p.spatial * p.channels)], nums, p.batch * p.channels);
  }

  globalMaxPoolBackward(dy: Handle, x: Handle, p: GlobalPoolParams): Handle {
    const op = 'globalMaxPoolBackward';
    const nums = globalNums(op, p);
    const n = p.batch * p.spatial * p.channels;
    return this.run1(op, [this.arg(op, 'dy', dy, p.batch * p.channels), this.arg(op, 'x', x, n)], nums, n);
  }

  // --- dense and channel bookkeeping --------------------------------------------------------

  matmul(a: Handle, b: Handle, p: MatMulParams): Handle {
    const op = 'matmul';
    const m = int(op, 'm', p.m),
      k = int(op, 'k', p.k),
      n = int(op, 'n', p.n);
    if (typeof p.transA !== 'boolean' || typeof p.transB !== 'boolean')
      throw new OptionError(`native ${op}: transA and transB must be booleans`);
    const nums = [m, k, n, p.transA ? 1 : 0, p.transB ? 1 : 0];
    return this.run1(op, [this.arg(op, 'a', a, m * k), this.arg(op, 'b', b, k * n)], nums, m * n);
  }

  biasAdd(x: Handle, bias: Handle, p: RowsParams): Handle {
    const op = 'biasAdd';
    const nums = rowsNums(op, p);
    const n = p.rows * p.channels;
    return this.run1(op, [this.arg(op, 'x', x, n), this.arg(op, 'bias', bias, p.channels)], nums, n);
  }

  sumRows(x: Handle, p: RowsParams): Handle {
    const op = 'sumRows';
    const nums = rowsNums(op, p);
    return this.run1(op, [this.arg(op, 'x', x, p.rows * p.channels)], nums, p.channels);
  }

  concatChannels(xs: readonly Handle[], rows: number, channels: readonly number[]): Handle {
    const op = 'concatChannels';
    int(op, 'rows', rows);
    if (xs.length === 0 || xs.length !== channels.length) {
      throw new ShapeError(`native ${op}: ${xs.length} inputs with ${channels.length} channel counts`);
    }
    const chans = channels.map((c, i) => int(op, `channels[${i}]`, c, 0));
    const inputs = xs.map((h, i) => this.arg(op, `xs[${i}]`, h, rows * chans[i]!));
    const total = chans.reduce((a, b) => a + b, 0);
    return this.run1(op, inputs, [rows, ...chans], rows * total);
  }

  sliceChannels(x: Handle, p: RowsParams, start: number, count: number): Handle {
    const op = 'sliceChannels';
    const [rows, channels] = rowsNums(op, p);
    int(op, 'start', start, 0);
    int(op, 'count', count, 0);
    if (start + count > channels) throw new ShapeError(`native ${op}: columns [${start}, ${start + count}) exceed ${channels} channels`);
    return this.run1(op, [this.arg(op, 'x', x, rows * channels)], [rows, channels, start, count], rows * count);
  }

  // --- training -----------------------------------------------------------------------------

  /** In place on `param` and `state`; the native side marks them changed (cached layouts go stale). */
  applyUpdate(rule: UpdateRule, param: Handle, grad: Handle, state: readonly Handle[], size: number, gradScale: number): void {
    const op = 'applyUpdate';
    int(op, 'size', size, 0);
    let kind: number, nums: number[], states: number;
    const r = (name: string, v: unknown) => real(op, `${rule.kind} ${name}`, v);
    switch (rule?.kind) {
      case 'sgd':
        kind = 0;
        nums = [r('lr', rule.lr), r('momentum', rule.momentum), rule.nesterov ? 1 : 0, r('weightDecay', rule.weightDecay)];
        states = rule.momentum > 0 ? 1 : 0;
        break;
      case 'rmsprop':
        kind = 1;
        nums = [
          r('lr', rule.lr),
          r('rho', rule.rho),
          r('momentum', rule.momentum),
          r('epsilon', rule.epsilon),
          r('weightDecay', rule.weightDecay),
        ];
        states = 2;
        break;
      case 'adam':
        kind = 2;
        nums = [
          r('lr', rule.lr),
          r('beta1', rule.beta1),
          r('beta2', rule.beta2),
          r('epsilon', rule.epsilon),
          r('weightDecay', rule.weightDecay),
          rule.decoupledWeightDecay ? 1 : 0,
          int(op, 'adam step', rule.step),
        ];
        states = 2;
        break;
      default:
        throw new OptionError(`native ${op}: unknown update rule ${String((rule as { kind?: unknown })?.kind)}`);
    }
    if (state.length !== states) throw new ShapeError(`native ${op} ${rule.kind}: ${state.length} state buffers, expected ${states}`);
    const inputs = [
      this.arg(op, 'param', param, size),
      this.arg(op, 'grad', grad, size),
      ...state.map((h, i) => this.arg(op, `state[${i}]`, h, size)),
    ];
    if (size === 0) return;
    this.run(op, inputs, [kind, size, real(op, 'gradScale', gradScale), ...nums]);
  }

  sumSquares(x: Handle, size: number): number {
    const op = 'sumSquares';
    int(op, 'size', size, 0);
    const b = this.arg(op, 'x', x, size);
    if (size === 0) return 0;
    const out = this.run(op, [b], [size]);
    if (typeof out[0] !== 'number') throw new BackendError(`native ${op}: the addon returned no sum`);
    return out[0];
  }

  // --- classification -----------------------------------------------------------------------

  softmax(x: Handle, p: RowsParams): Handle {
    const op = 'softmax';
    const nums = rowsNums(op, p);
    const n = p.rows * p.channels;
    return this.run1(op, [this.arg(op, 'x', x, n)], nums, n);
  }

  softmaxCrossEntropy(logits: Handle, labels: Int32Array, p: CrossEntropyParams): { loss: number; probs: Handle } {
    const op = 'softmaxCrossEntropy';
    const nums = ceNums(op, p, labels);
    const n = p.rows * p.channels;
    const out = this.run(op, [this.arg(op, 'logits', logits, n)], nums, labels);
    const loss = out[1];
    if (typeof loss !== 'number') throw new BackendError(`native ${op}: the addon returned no loss`);
    return { loss, probs: this.wrap(out[0], n) };
  }

  softmaxCrossEntropyBackward(probs: Handle, labels: Int32Array, p: CrossEntropyParams, scale: number): Handle {
    const op = 'softmaxCrossEntropyBackward';
    const nums = [...ceNums(op, p, labels), real(op, 'scale', scale)];
    const n = p.rows * p.channels;
    return this.wrap(this.run(op, [this.arg(op, 'probs', probs, n)], nums, labels)[0], n);
  }

  sigmoidCrossEntropy(logits: Handle, targets: Handle, p: RowsParams): { loss: number; probs: Handle } {
    const op = 'sigmoidCrossEntropy';
    const nums = rowsNums(op, p);
    const n = p.rows * p.channels;
    const out = this.run(op, [this.arg(op, 'logits', logits, n), this.arg(op, 'targets', targets, n)], nums);
    const loss = out[1];
    if (typeof loss !== 'number') throw new BackendError(`native ${op}: the addon returned no loss`);
    return { loss, probs: this.wrap(out[0], n) };
  }

  sigmoidCrossEntropyBackward(probs: Handle, targets: Handle, p: RowsParams, scale: number): Handle {
    const op = 'sigmoidCrossEntropyBackward';
    const nums = [...rowsNums(op, p), real(op, 'scale', scale)];
    const n = p.rows * p.channels;
    return this.run1(op, [this.arg(op, 'probs', probs, n), this.arg(op, 'targets', targets, n)], nums, n);
  }

  // --- threads ------------------------------------------------------------------------------

  /**
   * OpenMP threads for the kernels this thread runs (main thread or a worker: each has its own
   * setting). The default is OpenMP's: OMP_NUM_THREADS, else one per core.
   */
  setThreads(n: number): void {
    if (!(Number.isInteger(n) && n >= 1 && n <= 1024))
      throw new OptionError(`the thread count must be an integer from 1 to 1024, got ${n}`);
    this.addon.setThreads(n);
  }

  threads(): number {
    return this.addon.threads();
  }

  // --- diagnostics --------------------------------------------------------------------------

  /** Live native memory and primitive-cache counters. */
  stats(): NativeStats {
    return this.addon.stats();
  }

  /** Returns freed memory that is kept for reuse (NativeStats.pooledBytes) to the system, and forgets the peak. */
  trimPool(): void {
    this.addon.trimPool();
  }

  /**
   * The slack of the memory arena (process-wide; default 1 GiB, or XCEPTION_POOL_MB): freed memory
   * stays resident for reuse as long as the arena's resident size is at most the peak of its live
   * memory plus `bytes`; beyond that, free pages go back to the system (and cost page faults when
   * used again). Repeating work, like training steps, so reuses its memory without faults, and
   * the resident size stays near what the largest step needs.
   */
  setPoolLimit(bytes: number): void {
    if (!(Number.isInteger(bytes) && bytes >= 0 && bytes <= 2 ** 50))
      throw new OptionError(`the pool limit must be a whole number of bytes from 0 to 2^50, got ${bytes}`);
    this.addon.setPoolLimit(bytes);
  }

  // --- compiled inference plans (src/infer builds and validates the spec) --------------------

  /** Builds a plan from a spec (format: native/plan.h) and float32 weight arrays. */
  createPlan(spec: Float64Array, weights: Float32Array[]): NativePlan {
    if (!(spec instanceof Float64Array)) throw new BackendError('native createPlan: spec must be a Float64Array');
    if (!weights.every((w) => w instanceof Float32Array)) throw new BackendError('native createPlan: weights must be Float32Arrays');
    return this.native('createPlan', () => this.addon.planCreate(spec, weights));
  }

  /** Runs a plan on x (inputSize elements); returns a new tensor of outputSize elements. */
  runPlan(plan: NativePlan, x: Handle, inputSize: number, outputSize: number): NativeTensor {
    const input = this.arg('runPlan', 'input', x, inputSize);
    int('runPlan', 'outputSize', outputSize);
    const out = this.wrap(
      this.native('runPlan', () => this.addon.alloc(outputSize, false)),
      outputSize,
    );
    try {
      this.native('runPlan', () => this.addon.planRun(plan, input, buffers.get(out)!));
    } catch (e) {
      this.dispose(out);
      throw e;
    }
    return out;
  }

  /** Runs a plan once, timing each step (a wait after each): seconds per step of planInfo().steps. */
  profilePlan(plan: NativePlan, x: Handle, inputSize: number, outputSize: number): number[] {
    const input = this.arg('profilePlan', 'input', x, inputSize);
    int('profilePlan', 'outputSize', outputSize);
    const out = this.wrap(
      this.native('profilePlan', () => this.addon.alloc(outputSize, false)),
      outputSize,
    );
    try {
      return this.native('profilePlan', () => this.addon.planProfile(plan, input, buffers.get(out)!));
    } finally {
      this.dispose(out);
    }
  }

  setPlanWeights(plan: NativePlan, weights: Float32Array[]): void {
    if (!weights.every((w) => w instanceof Float32Array)) throw new BackendError('native setPlanWeights: weights must be Float32Arrays');
    this.native('setPlanWeights', () => this.addon.planSetWeights(plan, weights));
  }

  planInfo(plan: NativePlan): NativePlanInfo {
    return this.native('planInfo', () => this.addon.planInfo(plan));
  }

  freePlan(plan: NativePlan): void {
    this.native('freePlan', () => this.addon.planFree(plan));
  }

  /**
   * Diagnostics: x rounded to bf16 by oneDNN's reorder and (where bf16 is native) by the addon's
   * own AVX512_BF16 loop that the bf16 convolutions use, each widened back to float32.
   */
  bf16RoundingPaths(x: Float32Array): { onednn: Float32Array; own: Float32Array | null } {
    const op = 'roundBf16Paths';
    const h = this.upload(x);
    try {
      const out = this.run(op, [this.arg(op, 'x', h, x.length)], [x.length]);
      const read = (o: unknown) => {
        const t = this.wrap(o as NativeBuffer, x.length);
        const v = this.download(t, x.length, 'float32') as Float32Array;
        this.dispose(t);
        return v;
      };
      return { onednn: read(out[0]), own: out.length > 1 ? read(out[1]) : null };
    } finally {
      this.dispose(h);
    }
  }

  /**
   * The oneDNN implementation chosen for a convolution (e.g. `brgconv_1x1:avx512_core`), under the
   * given precision (default: the current one).
   */
  describeConv(
    p: Conv2DParams,
    pass: 'forward' | 'backwardInput' | 'backwardFilter' = 'forward',
    precision: ConvPrecision = this.convPrecisionMode,
  ): string {
    const nums = convNums('describeConv', p);
    const which = pass === 'forward' ? 0 : pass === 'backwardInput' ? 1 : 2;
    return this.native('describeConv', () => this.addon.describeConv(which, nums, precision === 'bf16'));
  }
}
