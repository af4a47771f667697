/**
 * The wasm backend: the kernel contract (`core/backend.ts`) on kernels compiled from C to
 * WebAssembly SIMD128 (wasm/src/). float32 only. Runs wherever WebAssembly does — Node without a
 * compiler, and the browser — because nothing here imports Node built-ins; the bytes of the
 * module come from a loader (node.ts reads the file, a page fetches it).
 *
 * Handles are `WasmTensor`s owning a block of the module's one memory (heap.ts). `dispose` frees
 * it at once; a dropped tensor is freed when the garbage collector finalizes it. Every method
 * checks handles and parameters in TypeScript before any kernel runs, so bad input is a typed
 * error and never an out-of-bounds access.
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
import { BackendError, DisposedError, OptionError, ShapeError } from '../../core/errors.js';
import {
  checkBatchNorm,
  checkConv,
  checkCount,
  checkCrossEntropy,
  checkGlobal,
  checkInt,
  checkPool,
  checkReal,
  checkRows,
} from '../params-check.js';
import { WasmHeap } from './heap.js';
import { type WasmKernelExports, kernelExports, threadExports } from './kernels.js';
import { type SpawnWorker, WasmThreadPool } from './threads.js';

/** Storage of the wasm backend: `size` float32 elements in the module's memory. */
export class WasmTensor {
  constructor(readonly size: number) {}
  get disposed(): boolean {
    return !offsets.has(this);
  }
}

// Tensor → byte offset of its block; a missing entry means disposed.
const offsets = new WeakMap<WasmTensor, number>();

/** What a compiled plan (infer/wasm-plan.ts) runs on: the kernels, the heap, the GEMM space, handles' memory. */
export interface WasmPlanAccess {
  kernels: WasmKernelExports;
  heap: WasmHeap;
  /** Byte offset of the GEMM packing space. */
  work: number;
  /** Byte offset of a live handle holding exactly `size` floats. */
  offsetOf(op: string, h: Handle, size: number): number;
  /** A new handle of `size` floats filled by `fill(offset)`. */
  make(size: number, op: string, fill: (offset: number) => void): Handle;
}

export interface WasmBackendOptions {
  /** Memory the backend may grow to, in bytes (default and maximum 4 GiB). */
  memoryLimitBytes?: number;
  /** Threads for the kernels (default 1); more than one needs the threaded module and `spawn`. */
  threads?: number;
  /** Starts a pool worker (threads.ts): worker_threads in Node, `webWorkerSpawner` in a page. */
  spawn?: SpawnWorker;
}

/** How the threaded module was instantiated: on this imported shared memory. */
export interface WasmThreadedInstance {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
}

export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly dtypes: readonly DType[] = ['float32'];
  private readonly k: WasmKernelExports;
  readonly heap: WasmHeap;
  private readonly work: number;
  private readonly args: number;
  private readonly finalizer = new FinalizationRegistry<number>((offset) => this.heap.release(offset));
  private readonly threadPool: WasmThreadPool | null = null;

  constructor(instance: WebAssembly.Instance, options: WasmBackendOptions = {}, threaded?: WasmThreadedInstance) {
    this.k = kernelExports(instance, threaded?.memory);
    this.heap = new WasmHeap(this.k.memory, this.k.__heap_base.value as number, options.memoryLimitBytes);
    this.work = this.heap.alloc(this.k.gemm_work_floats() * 4, 'GEMM packing space');
    this.args = this.heap.alloc(128, 'kernel parameters');
    const t = threadExports(instance);
    if (t && threaded && options.spawn)
      this.threadPool = new WasmThreadPool(threaded.module, threaded.memory, this.heap, this.k, t, options.spawn);
    if (options.threads !== undefined) this.setThreads(options.threads);
  }

  // --- threads ------------------------------------------------------------------------------

  /** Threads for the kernels, the calling thread included (like the native backend's). */
  setThreads(n: number): void {
    if (this.threadPool) this.threadPool.setThreads(n);
    else if (n !== 1) {
      checkInt('wasm setThreads', 'n', n);
      throw new BackendError('wasm setThreads: threads need wasm/xception-mt.wasm, a shared memory and a worker spawner');
    }
  }

  threads(): number {
    return this.threadPool?.threads ?? 1;
  }

  /**
   * The module's SIMD: 'relaxed' (the GEMM's and depthwise taps' multiply-adds fused: one rounding where the CPU has
   * FMA, so results may differ in the last bits between machines) or 'plain' (SIMD128 only).
   */
  simd(): 'relaxed' | 'plain' {
    return this.k.relaxed_simd() === 1 ? 'relaxed' : 'plain';
  }

  /** Resolves once the started workers wait for jobs (kernels run on one thread until then). */
  threadsReady(timeoutMs?: number): Promise<void> {
    return this.threadPool?.ready(timeoutMs) ?? Promise.resolve();
  }

  /** Blocking `threadsReady` for Node (Atomics.wait); false on timeout. */
  threadsReadySync(timeoutMs?: number): boolean {
    return this.threadPool?.readySync(timeoutMs) ?? true;
  }

  /** Kernels with less work than this run on one thread (default 65536; tests set 0). */
  setParallelMinWork(work: number): void {
    this.threadPool?.setMinWork(work);
  }

  /** Stops the worker threads (the process or page need not wait for them); kernels go on, on one thread. */
  stopThreads(): void {
    this.threadPool?.stop();
  }

  /** For compiled plans only (infer/wasm-plan.ts). */
  planAccess(): WasmPlanAccess {
    return {
      kernels: this.k,
      heap: this.heap,
      work: this.work,
      offsetOf: (op, h, size) => this.at(op, 'x', h, size),
      make: (size, op, fill) => this.make(size, op, fill),
    };
  }

  // --- handles ------------------------------------------------------------------------------

  private f32(offset: number, size: number): Float32Array {
    return new Float32Array(this.k.memory.buffer, offset, size);
  }

  private tensor(op: string, name: string, h: Handle): WasmTensor {
    if (!(h instanceof WasmTensor)) throw new BackendError(`wasm ${op}: ${name} is not a handle of the wasm backend`);
    if (h.disposed) throw new DisposedError(`wasm ${op}: ${name} was disposed`);
    return h;
  }

  /** The byte offset of `h`, after checking it holds exactly `expected` elements. */
  private at(op: string, name: string, h: Handle, expected: number): number {
    const t = this.tensor(op, name, h);
    if (t.size !== expected) throw new ShapeError(`wasm ${op}: ${name} has ${t.size} elements, the parameters need ${expected}`);
    return offsets.get(t)!;
  }

  private alloc(size: number, op: string): WasmTensor {
    const offset = this.heap.alloc(size * 4, `${op} (${size} floats)`);
    const t = new WasmTensor(size);
    offsets.set(t, offset);
    this.finalizer.register(t, offset, t);
    return t;
  }

  /** A new tensor filled by `fill(offset)`; freed again if fill throws. */
  private make(size: number, op: string, fill: (out: number) => void): WasmTensor {
    return this.makeMany([size], op, ([out]) => fill(out!))[0]!;
  }

  /** Several new tensors filled by one kernel; all freed again if anything throws. */
  private makeMany(sizes: readonly number[], op: string, fill: (outs: number[]) => void): WasmTensor[] {
    const made: WasmTensor[] = [];
    try {
      for (const size of sizes) made.push(this.alloc(size, op));
      fill(made.map((t) => offsets.get(t)!));
    } catch (e) {
      for (const t of made) this.dispose(t);
      // A trap is a bug here (shapes were checked), but still a typed error, never a crash.
      throw e instanceof WebAssembly.RuntimeError ? new BackendError(`wasm ${op}: ${e.message}`) : e;
    }
    return made;
  }

  /** Runs fn with `bytes` of scratch memory, freed afterwards. */
  private withScratch<T>(bytes: number, op: string, fn: (scratch: number) => T): T {
    const scratch = this.heap.alloc(bytes, `${op} scratch`);
    try {
      return fn(scratch);
    } finally {
      this.heap.release(scratch);
    }
  }

  /** Writes integer parameters into the argument block; returns its offset. */
  private params(nums: readonly number[]): number {
    new Int32Array(this.k.memory.buffer, this.args, nums.length).set(nums);
    return this.args;
  }

  // --- memory -------------------------------------------------------------------------------

  upload(data: NumArray): Handle {
    if (!(data instanceof Float32Array)) {
      throw new BackendError(`wasm upload: this backend computes in float32 only, got ${data?.constructor?.name ?? typeof data}`);
    }
    return this.make(data.length, 'upload', (out) => this.f32(out, data.length).set(data));
  }

  download(h: Handle, size: number, dtype: DType): NumArray {
    if (dtype !== 'float32') throw new BackendError(`wasm download: this backend computes in float32 only, asked for ${dtype}`);
    return this.f32(this.at('download', 'tensor', h, size), size).slice();
  }

  zeros(size: number, dtype: DType): Handle {
    if (dtype !== 'float32') throw new BackendError(`wasm zeros: this backend computes in float32 only, asked for ${dtype}`);
    checkInt('wasm zeros', 'size', size, 0);
    return this.make(size, 'zeros', (out) => this.f32(out, size).fill(0));
  }

  /** Frees the memory now. Disposing twice is harmless; any other later use throws DisposedError. */
  dispose(h: Handle): void {
    if (!(h instanceof WasmTensor)) throw new BackendError('wasm dispose: not a handle of the wasm backend');
    const offset = offsets.get(h);
    if (offset === undefined) return;
    offsets.delete(h);
    this.finalizer.unregister(h);
    this.heap.release(offset);
  }

  // --- elementwise --------------------------------------------------------------------------

  private flat(op: string, size: number, inputs: Record<string, Handle>, kernel: (ptrs: number[], out: number) => void): Handle {
    checkInt(`wasm ${op}`, 'size', size, 0);
    const ptrs = Object.entries(inputs).map(([name, h]) => this.at(op, name, h, size));
    return this.make(size, op, (out) => kernel(ptrs, out));
  }

  axpby(a: Handle, b: Handle, alpha: number, beta: number, size: number): Handle {
    const [al, be] = [checkReal('wasm axpby', 'alpha', alpha), checkReal('wasm axpby', 'beta', beta)];
    return this.flat('axpby', size, { a, b }, ([pa, pb], out) => this.k.axpby(pa!, pb!, al, be, size, out));
  }

  mul(a: Handle, b: Handle, size: number): Handle {
    return this.flat('mul', size, { a, b }, ([pa, pb], out) => this.k.mul(pa!, pb!, size, out));
  }

  scale(a: Handle, s: number, size: number): Handle {
    const f = checkReal('wasm scale', 's', s);
    return this.flat('scale', size, { a }, ([pa], out) => this.k.scale(pa!, f, size, out));
  }

  relu(x: Handle, size: number): Handle {
    return this.flat('relu', size, { x }, ([px], out) => this.k.relu(px!, size, out));
  }

  reluBackward(dy: Handle, y: Handle, size: number): Handle {
    return this.flat('reluBackward', size, { dy, y }, ([pd, py], out) => this.k.relu_backward(pd!, py!, size, out));
  }

  private eluAlpha(op: string, alpha: number): number {
    const a = checkReal(`wasm ${op}`, 'alpha', alpha);
    if (a < 0) throw new OptionError(`wasm ${op}: alpha must be >= 0, got ${a}`);
    return a;
  }

  elu(x: Handle, alpha: number, size: number): Handle {
    const a = this.eluAlpha('elu', alpha);
    return this.flat('elu', size, { x }, ([px], out) => this.k.elu(px!, a, size, out));
  }

  eluBackward(dy: Handle, y: Handle, alpha: number, size: number): Handle {
    const a = this.eluAlpha('eluBackward', alpha);
    return this.flat('eluBackward', size, { dy, y }, ([pd, py], out) => this.k.elu_backward(pd!, py!, a, size, out));
  }

  // --- convolution --------------------------------------------------------------------------

  private conv(
    op: string,
    p: Conv2DParams,
    inputs: [string, Handle, number][],
    outSize: number,
    kernel: (pp: number, a: number, b: number, out: number, scratch: number, work: number) => void,
  ): Handle {
    const nums = checkConv(`wasm ${op}`, p);
    const [a, b] = inputs.map(([name, h, size]) => this.at(op, name, h, size));
    return this.make(outSize, op, (out) => {
      const scratchFloats = this.k.conv_scratch_floats(this.params(nums));
      this.withScratch(scratchFloats * 4, op, (scratch) => kernel(this.params(nums), a!, b!, out, scratch, this.work));
    });
  }

  conv2d(x: Handle, w: Handle, p: Conv2DParams): Handle {
    const [xs, ws, ys] = convSizes(p);
    return this.conv(
      'conv2d',
      p,
      [
        ['x', x, xs],
        ['w', w, ws],
      ],
      ys,
      (...a) => this.k.conv2d_forward(...a),
    );
  }

  conv2dBackwardInput(dy: Handle, w: Handle, p: Conv2DParams): Handle {
    const [xs, ws, ys] = convSizes(p);
    return this.conv(
      'conv2dBackwardInput',
      p,
      [
        ['dy', dy, ys],
        ['w', w, ws],
      ],
      xs,
      (...a) => this.k.conv2d_backward_input(...a),
    );
  }

  conv2dBackwardFilter(x: Handle, dy: Handle, p: Conv2DParams): Handle {
    const [xs, ws, ys] = convSizes(p);
    return this.conv(
      'conv2dBackwardFilter',
      p,
      [
        ['x', x, xs],
        ['dy', dy, ys],
      ],
      ws,
      (...a) => this.k.conv2d_backward_filter(...a),
    );
  }

  // --- normalization ------------------------------------------------------------------------

  batchNormTrain(x: Handle, gamma: Handle, beta: Handle, p: BatchNormParams): { y: Handle; mean: Handle; variance: Handle } {
    const op = 'batchNormTrain';
    const eps = checkBatchNorm(`wasm ${op}`, p);
    const { rows, channels: C } = p;
    const [px, pg, pb] = [this.at(op, 'x', x, rows * C), this.at(op, 'gamma', gamma, C), this.at(op, 'beta', beta, C)];
    const relu = p.relu ? 1 : 0;
    const [y, mean, variance] = this.makeMany([rows * C, C, C], op, ([out, pm, pv]) =>
      this.withScratch(32 * C, op, (acc) => this.k.batchnorm_train(px, rows, C, pg, pb, eps, relu, out!, pm!, pv!, acc)),
    );
    return { y: y!, mean: mean!, variance: variance! };
  }

  batchNormInference(x: Handle, gamma: Handle, beta: Handle, mean: Handle, variance: Handle, p: BatchNormParams): Handle {
    const op = 'batchNormInference';
    const eps = checkBatchNorm(`wasm ${op}`, p);
    const { rows, channels: C } = p;
    const px = this.at(op, 'x', x, rows * C);
    const [pg, pb, pm, pv] = [
      this.at(op, 'gamma', gamma, C),
      this.at(op, 'beta', beta, C),
      this.at(op, 'mean', mean, C),
      this.at(op, 'variance', variance, C),
    ];
    return this.make(rows * C, op, (out) =>
      this.withScratch(32 * C, op, (acc) => this.k.batchnorm_inference(px, rows, C, pg, pb, pm, pv, eps, p.relu ? 1 : 0, out, acc)),
    );
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
    const op = 'batchNormBackward';
    const eps = checkBatchNorm(`wasm ${op}`, p);
    const { rows, channels: C } = p;
    if (p.relu && y === undefined) throw new ShapeError('wasm batchNormBackward: the fused ReLU needs the forward output y');
    const [pd, px] = [this.at(op, 'dy', dy, rows * C), this.at(op, 'x', x, rows * C)];
    const [pg, pm, pv] = [this.at(op, 'gamma', gamma, C), this.at(op, 'mean', mean, C), this.at(op, 'variance', variance, C)];
    const py = p.relu ? this.at(op, 'y', y!, rows * C) : 0;
    const [dx, dgamma, dbeta] = this.makeMany([rows * C, C, C], op, ([out, dg, db]) =>
      this.withScratch(32 * C, op, (acc) => this.k.batchnorm_backward(pd, px, pg, pm, pv, rows, C, eps, py, out!, dg!, db!, acc)),
    );
    return { dx: dx!, dgamma: dgamma!, dbeta: dbeta! };
  }

  // --- pooling ------------------------------------------------------------------------------

  private pool(
    op: string,
    p: Pool2DParams,
    inputs: [string, Handle, number][],
    outSize: number,
    argmax: boolean,
    kernel: (pp: number, ptrs: number[], out: number, scratch: number) => void,
  ): Handle {
    const nums = checkPool(`wasm ${op}`, p);
    const ptrs = inputs.map(([name, h, size]) => this.at(op, name, h, size));
    const scratchBytes = argmax ? (poolSizes(p)[1] + p.channels) * 4 : 0;
    return this.make(outSize, op, (out) => this.withScratch(scratchBytes, op, (s) => kernel(this.params(nums), ptrs, out, s)));
  }

  maxPool2d(x: Handle, p: Pool2DParams): Handle {
    const [xs, ys] = poolSizes(p);
    return this.pool('maxPool2d', p, [['x', x, xs]], ys, false, (pp, [px], out) => this.k.max_pool_forward(pp, px!, out));
  }

  maxPool2dBackward(dy: Handle, x: Handle, p: Pool2DParams): Handle {
    const [xs, ys] = poolSizes(p);
    return this.pool(
      'maxPool2dBackward',
      p,
      [
        ['dy', dy, ys],
        ['x', x, xs],
      ],
      xs,
      true,
      (pp, [pd, px], out, s) => this.k.max_pool_backward(pp, pd!, px!, out, s),
    );
  }

  avgPool2d(x: Handle, p: Pool2DParams): Handle {
    const [xs, ys] = poolSizes(p);
    return this.pool('avgPool2d', p, [['x', x, xs]], ys, false, (pp, [px], out) => this.k.avg_pool_forward(pp, px!, out));
  }

  avgPool2dBackward(dy: Handle, p: Pool2DParams): Handle {
    const [xs, ys] = poolSizes(p);
    return this.pool('avgPool2dBackward', p, [['dy', dy, ys]], xs, false, (pp, [pd], out) => this.k.avg_pool_backward(pp, pd!, out));
  }

  private global(
    op: string,
    p: GlobalPoolParams,
    inputs: [string, Handle, 'in' | 'out'][],
    forward: boolean,
    scratchBytes: number,
    kernel: (ptrs: number[], out: number, s: number) => void,
  ): Handle {
    checkGlobal(`wasm ${op}`, p);
    const inSize = p.batch * p.spatial * p.channels;
    const outSize = p.batch * p.channels;
    const ptrs = inputs.map(([name, h, side]) => this.at(op, name, h, side === 'in' ? inSize : outSize));
    return this.make(forward ? outSize : inSize, op, (out) => this.withScratch(scratchBytes, op, (s) => kernel(ptrs, out, s)));
  }

  globalAvgPool(x: Handle, p: GlobalPoolParams): Handle {
    const { batch: N, spatial: S, channels: C } = p;
    return this.global('globalAvgPool', p, [['x', x, 'in']], true, 8 * C, ([px], out, s) =>
      this.k.global_avg_pool_forward(px!, N, S, C, out, s),
    );
  }

  globalAvgPoolBackward(dy: Handle, p: GlobalPoolParams): Handle {
    const { batch: N, spatial: S, channels: C } = p;
    return this.global('globalAvgPoolBackward', p, [['dy', dy, 'out']], false, 0, ([pd], out) =>
      this.k.global_avg_pool_backward(pd!, N, S, C, out),
    );
  }

  globalMaxPool(x: Handle, p: GlobalPoolParams): Handle {
    const { batch: N, spatial: S, channels: C } = p;
    return this.global('globalMaxPool', p, [['x', x, 'in']], true, 4 * (N * C + C), ([px], out, s) =>
      this.k.global_max_pool_forward(px!, N, S, C, out, s),
    );
  }

  globalMaxPoolBackward(dy: Handle, x: Handle, p: GlobalPoolParams): Handle {
    const { batch: N, spatial: S, channels: C } = p;
    return this.global(
      'globalMaxPoolBackward',
      p,
      [
        ['dy', dy, 'out'],
        ['x', x, 'in'],
      ],
      false,
      4 * (N * C + C),
      ([pd, px], out, s) => this.k.global_max_pool_backward(pd!, px!, N, S, C, out, s),
    );
  }

  // --- dense and channel bookkeeping --------------------------------------------------------

  matmul(a: Handle, b: Handle, p: MatMulParams): Handle {
    const op = 'matmul';
    const [m, k, n] = [checkInt(`wasm ${op}`, 'm', p.m), checkInt(`wasm ${op}`, 'k', p.k), checkInt(`wasm ${op}`, 'n', p.n)];
    const [pa, pb] = [this.at(op, 'a', a, checkCount(`wasm ${op}`, 'a', m, k)), this.at(op, 'b', b, checkCount(`wasm ${op}`, 'b', k, n))];
    const size = checkCount(`wasm ${op}`, 'the result', m, n);
    const [lda, ldb] = [p.transA ? m : k, p.transB ? k : n];
    return this.make(size, op, (out) => this.k.gemm(p.transA ? 1 : 0, p.transB ? 1 : 0, m, n, k, pa, lda, pb, ldb, out, n, 0, this.work));
  }

  biasAdd(x: Handle, bias: Handle, p: RowsParams): Handle {
    const [rows, C] = checkRows('wasm biasAdd', p);
    const [px, pb] = [this.at('biasAdd', 'x', x, rows * C), this.at('biasAdd', 'bias', bias, C)];
    return this.make(rows * C, 'biasAdd', (out) => this.k.bias_add(px, pb, rows, C, out));
  }

  sumRows(x: Handle, p: RowsParams): Handle {
    const [rows, C] = checkRows('wasm sumRows', p);
    const px = this.at('sumRows', 'x', x, rows * C);
    return this.make(C, 'sumRows', (out) => this.withScratch(8 * C, 'sumRows', (acc) => this.k.sum_rows(px, rows, C, out, acc)));
  }

  concatChannels(xs: readonly Handle[], rows: number, channels: readonly number[]): Handle {
    const op = 'concatChannels';
    checkInt(`wasm ${op}`, 'rows', rows);
    if (xs.length !== channels.length || xs.length === 0)
      throw new ShapeError(`wasm ${op}: ${xs.length} inputs for ${channels.length} channel counts`);
    const widths = channels.map((c, i) => checkInt(`wasm ${op}`, `channels[${i}]`, c));
    const total = checkInt(
      `wasm ${op}`,
      'total channels',
      widths.reduce((a, b) => a + b, 0),
    );
    const ptrs = xs.map((h, i) => this.at(op, `input ${i}`, h, checkCount(`wasm ${op}`, `input ${i}`, rows, widths[i]!)));
    return this.make(checkCount(`wasm ${op}`, 'the result', rows, total), op, (out) => {
      let col = 0;
      ptrs.forEach((src, i) => {
        this.k.copy_columns(src, widths[i]!, out + col * 4, total, rows, widths[i]!);
        col += widths[i]!;
      });
    });
  }

  sliceChannels(x: Handle, p: RowsParams, start: number, count: number): Handle {
    const op = 'sliceChannels';
    const [rows, C] = checkRows(`wasm ${op}`, p);
    checkInt(`wasm ${op}`, 'start', start, 0);
    checkInt(`wasm ${op}`, 'count', count);
    if (start + count > C) throw new ShapeError(`wasm ${op}: columns [${start}, ${start + count}) exceed ${C} channels`);
    const px = this.at(op, 'x', x, rows * C);
    return this.make(rows * count, op, (out) => this.k.copy_columns(px + start * 4, C, out, count, rows, count));
  }

  // --- training ----------------------------------------------------------------------------

  applyUpdate(rule: UpdateRule, param: Handle, grad: Handle, state: readonly Handle[], size: number, gradScale: number): void {
    const op = 'applyUpdate';
    checkInt(`wasm ${op}`, 'size', size, 0);
    const want = rule.kind === 'sgd' ? (rule.momentum > 0 ? 1 : 0) : 2;
    if (state.length !== want) throw new ShapeError(`wasm ${op} ${rule.kind}: ${state.length} state buffers, expected ${want}`);
    const [w, g] = [this.at(op, 'param', param, size), this.at(op, 'grad', grad, size)];
    const s = state.map((h, i) => this.at(op, `state ${i}`, h, size));
    const scale = checkReal(`wasm ${op}`, 'gradScale', gradScale);
    for (const [key, v] of Object.entries(rule)) if (typeof v === 'number') checkReal(`wasm ${op}`, key, v);
    switch (rule.kind) {
      case 'sgd':
        this.k.update_sgd(w, g, s[0] ?? 0, size, scale, rule.lr, rule.momentum, rule.nesterov ? 1 : 0, rule.weightDecay);
        return;
      case 'rmsprop':
        this.k.update_rmsprop(w, g, s[0]!, s[1]!, size, scale, rule.lr, rule.rho, rule.momentum, rule.epsilon, rule.weightDecay);
        return;
      case 'adam': {
        const [c1, c2] = [1 - rule.beta1 ** rule.step, 1 - rule.beta2 ** rule.step];
        const decoupled = rule.decoupledWeightDecay ? 1 : 0;
        this.k.update_adam(
          w,
          g,
          s[0]!,
          s[1]!,
          size,
          scale,
          rule.lr,
          rule.beta1,
          rule.beta2,
          rule.epsilon,
          rule.weightDecay,
          decoupled,
          c1,
          c2,
        );
        return;
      }
      default:
        throw new OptionError(`wasm ${op}: unknown update rule ${(rule as { kind: unknown }).kind}`);
    }
  }

  sumSquares(x: Handle, size: number): number {
    checkInt('wasm sumSquares', 'size', size, 0);
    return this.k.sum_squares(this.at('sumSquares', 'x', x, size), size);
  }

  // --- classification -----------------------------------------------------------------------

  softmax(x: Handle, p: RowsParams): Handle {
    const [rows, C] = checkRows('wasm softmax', p);
    const px = this.at('softmax', 'x', x, rows * C);
    return this.make(rows * C, 'softmax', (out) => this.k.softmax(px, rows, C, out));
  }

  /** Runs fn with the labels copied into wasm memory. */
  private withLabels<T>(op: string, labels: Int32Array, fn: (ptr: number) => T): T {
    return this.withScratch(labels.length * 4, op, (ptr) => {
      new Int32Array(this.k.memory.buffer, ptr, labels.length).set(labels);
      return fn(ptr);
    });
  }

  softmaxCrossEntropy(logits: Handle, labels: Int32Array, p: CrossEntropyParams): { loss: number; probs: Handle } {
    const op = 'softmaxCrossEntropy';
    checkCrossEntropy(`wasm ${op}`, p, labels);
    const { rows, channels: C } = p;
    const pl = this.at(op, 'logits', logits, rows * C);
    let loss = 0;
    const probs = this.make(rows * C, op, (out) => {
      loss = this.withLabels(op, labels, (lp) => this.k.softmax_cross_entropy(pl, lp, rows, C, p.labelSmoothing, out));
    });
    return { loss, probs };
  }

  softmaxCrossEntropyBackward(probs: Handle, labels: Int32Array, p: CrossEntropyParams, scale: number): Handle {
    const op = 'softmaxCrossEntropyBackward';
    checkCrossEntropy(`wasm ${op}`, p, labels);
    const s = checkReal(`wasm ${op}`, 'scale', scale);
    const { rows, channels: C } = p;
    const pp = this.at(op, 'probs', probs, rows * C);
    return this.make(rows * C, op, (out) =>
      this.withLabels(op, labels, (lp) => this.k.softmax_cross_entropy_backward(pp, lp, rows, C, p.labelSmoothing, s, out)),
    );
  }

  /** Mean over rows·channels of BCE(sigmoid(logits), targets) (Keras binary_crossentropy on logits). */
  sigmoidCrossEntropy(logits: Handle, targets: Handle, p: RowsParams): { loss: number; probs: Handle } {
    const op = 'sigmoidCrossEntropy';
    const [rows, C] = checkRows(`wasm ${op}`, p);
    const [pl, pt] = [this.at(op, 'logits', logits, rows * C), this.at(op, 'targets', targets, rows * C)];
    let loss = 0;
    const probs = this.make(rows * C, op, (out) => {
      loss = this.k.sigmoid_cross_entropy(pl, pt, rows * C, out);
    });
    return { loss, probs };
  }

  /** (probs − targets)·scale/(rows·channels). */
  sigmoidCrossEntropyBackward(probs: Handle, targets: Handle, p: RowsParams, scale: number): Handle {
    const op = 'sigmoidCrossEntropyBackward';
    const [rows, C] = checkRows(`wasm ${op}`, p);
    const s = checkReal(`wasm ${op}`, 'scale', scale);
    const [pp, pt] = [this.at(op, 'probs', probs, rows * C), this.at(op, 'targets', targets, rows * C)];
    return this.make(rows * C, op, (out) => this.k.sigmoid_cross_entropy_backward(pp, pt, rows * C, s, out));
  }
}

/** [input, filter, output] element counts of a convolution. */
function convSizes(p: Conv2DParams): [number, number, number] {
  return [
    p.batch * p.inHeight * p.inWidth * p.inChannels,
    p.kernelHeight * p.kernelWidth * (p.inChannels / p.groups) * p.outChannels,
    p.batch * p.outHeight * p.outWidth * p.outChannels,
  ];
}

/** [input, output] element counts of a 2-D pool. */
function poolSizes(p: Pool2DParams): [number, number] {
  return [p.batch * p.inHeight * p.inWidth * p.channels, p.batch * p.outHeight * p.outWidth * p.channels];
}
