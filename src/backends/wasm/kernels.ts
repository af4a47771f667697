/**
 * The exports of wasm/xception.wasm (wasm/src/*.c). Pointers are byte offsets into the
 * module's memory; sizes are element counts. Signatures mirror the C declarations.
 */
type Ptr = number;

export interface WasmKernelExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  conv_scratch_floats(p: Ptr): number;
  conv2d_forward(p: Ptr, x: Ptr, w: Ptr, y: Ptr, scratch: Ptr, work: Ptr): void;
  conv2d_backward_input(p: Ptr, dy: Ptr, w: Ptr, dx: Ptr, scratch: Ptr, work: Ptr): void;
  conv2d_backward_filter(p: Ptr, x: Ptr, dy: Ptr, dw: Ptr, scratch: Ptr, work: Ptr): void;
  gemm(
    ta: number,
    tb: number,
    m: number,
    n: number,
    k: number,
    a: Ptr,
    lda: number,
    b: Ptr,
    ldb: number,
    c: Ptr,
    ldc: number,
    acc: number,
    work: Ptr,
  ): void;
  axpby(a: Ptr, b: Ptr, alpha: number, beta: number, n: number, y: Ptr): void;
  mul(a: Ptr, b: Ptr, n: number, y: Ptr): void;
  scale(a: Ptr, s: number, n: number, y: Ptr): void;
  relu(x: Ptr, n: number, y: Ptr): void;
  relu_backward(dy: Ptr, y: Ptr, n: number, dx: Ptr): void;
  elu(x: Ptr, alpha: number, n: number, y: Ptr): void;
  elu_backward(dy: Ptr, y: Ptr, alpha: number, n: number, dx: Ptr): void;
  copy_columns(src: Ptr, srcStride: number, dst: Ptr, dstStride: number, rows: number, count: number): void;
  bias_add(x: Ptr, bias: Ptr, rows: number, c: number, y: Ptr): void;
  sum_rows(x: Ptr, rows: number, c: number, out: Ptr, acc: Ptr): void;
  sum_squares(x: Ptr, n: number): number;
  update_sgd(w: Ptr, g: Ptr, v: Ptr, n: number, gradScale: number, lr: number, momentum: number, nesterov: number, decay: number): void;
  update_rmsprop(
    w: Ptr,
    g: Ptr,
    ms: Ptr,
    mom: Ptr,
    n: number,
    gradScale: number,
    lr: number,
    rho: number,
    momentum: number,
    epsilon: number,
    decay: number,
  ): void;
  update_adam(
    w: Ptr,
    g: Ptr,
    m: Ptr,
    v: Ptr,
    n: number,
    gradScale: number,
    lr: number,
    b1: number,
    b2: number,
    epsilon: number,
    decay: number,
    decoupled: number,
    c1: number,
    c2: number,
  ): void;
  softmax(x: Ptr, rows: number, c: number, probs: Ptr): void;
  softmax_cross_entropy(logits: Ptr, labels: Ptr, rows: number, c: number, smoothing: number, probs: Ptr): number;
  softmax_cross_entropy_backward(probs: Ptr, labels: Ptr, rows: number, c: number, smoothing: number, scale: number, dlogits: Ptr): void;
  sigmoid_cross_entropy(logits: Ptr, targets: Ptr, n: number, probs: Ptr): number;
  sigmoid_cross_entropy_backward(probs: Ptr, targets: Ptr, n: number, scale: number, dlogits: Ptr): void;
  batchnorm_train(
    x: Ptr,
    rows: number,
    c: number,
    gamma: Ptr,
    beta: Ptr,
    eps: number,
    relu: number,
    y: Ptr,
    mean: Ptr,
    variance: Ptr,
    acc: Ptr,
  ): void;
  batchnorm_inference(
    x: Ptr,
    rows: number,
    c: number,
    gamma: Ptr,
    beta: Ptr,
    mean: Ptr,
    variance: Ptr,
    eps: number,
    relu: number,
    y: Ptr,
    acc: Ptr,
  ): void;
  batchnorm_backward(
    dy: Ptr,
    x: Ptr,
    gamma: Ptr,
    mean: Ptr,
    variance: Ptr,
    rows: number,
    c: number,
    eps: number,
    y: Ptr,
    dx: Ptr,
    dgamma: Ptr,
    dbeta: Ptr,
    acc: Ptr,
  ): void;
  max_pool_forward(p: Ptr, x: Ptr, y: Ptr): void;
  max_pool_backward(p: Ptr, dy: Ptr, x: Ptr, dx: Ptr, argmax: Ptr): void;
  avg_pool_forward(p: Ptr, x: Ptr, y: Ptr): void;
  avg_pool_backward(p: Ptr, dy: Ptr, dx: Ptr): void;
  global_avg_pool_forward(x: Ptr, n: number, s: number, c: number, y: Ptr, acc: Ptr): void;
  global_avg_pool_backward(dy: Ptr, n: number, s: number, c: number, dx: Ptr): void;
  global_max_pool_forward(x: Ptr, n: number, s: number, c: number, y: Ptr, argmax: Ptr): void;
  global_max_pool_backward(dy: Ptr, x: Ptr, n: number, s: number, c: number, dx: Ptr, argmax: Ptr): void;
  /** Compiled plans (wasm/src/plan.c): y = act(y + bias + sum), bias and sum optional (0). */
  plan_epilogue(y: Ptr, rows: number, c: number, bias: Ptr, sum: Ptr, act: number, alpha: number): void;
  /** Compiled plans: conv2d_forward with an Epilogue struct (EPILOGUE_BYTES at `ep`, 0: none) fused in. */
  conv2d_forward_fused(p: Ptr, x: Ptr, w: Ptr, y: Ptr, scratch: Ptr, work: Ptr, ep: Ptr): void;
  /** conv2d_forward_fused for an ungrouped convolution whose weights gemm_prepack_b packed. */
  conv2d_forward_packed(p: Ptr, x: Ptr, packedW: Ptr, y: Ptr, scratch: Ptr, work: Ptr, ep: Ptr): void;
  /** Compiled plans' dense steps: C[M,N] = A[M,K]·B[K,N] with the epilogue `ep` fused in, B packed. */
  gemm_fused(m: number, n: number, k: number, a: Ptr, packedB: Ptr, c: Ptr, ep: Ptr, work: Ptr): void;
  /** Floats of GEMM packing space each thread needs (GEMM_WORK_FLOATS of wasm/src/kernels.h). */
  gemm_work_floats(): number;
  /** Floats gemm_prepack_b writes for a K×N matrix (N rounded up to whole micro-panels). */
  gemm_packed_b_floats(k: number, n: number): number;
  /** dst = B[K,N] (row-major) packed once as the GEMM reads it, for operands that never change. */
  gemm_prepack_b(k: number, n: number, b: Ptr, dst: Ptr): void;
  set_thread_work(tid: number, work: Ptr): void;
  /** 1 in the relaxed-SIMD builds (wasm/xception*-relaxed.wasm), 0 in the plain SIMD128 ones. */
  relaxed_simd(): number;
}

/** The thread pool's exports, only in the threaded build (wasm/xception-mt.wasm, wasm/src/threads.c). */
export interface WasmThreadExports {
  set_stack_pointer(top: Ptr): void;
  set_threads(threads: number, workers: number): void;
  ready_workers(): number;
  worker_loop(tid: number): void;
  stop_workers(): void;
  /** A worker whose job trapped acknowledges it (the caller then traps; jobs run serially after). */
  worker_failed(): void;
  set_parallel_min_work(work: number): void;
}

/** Threads a job may use at most: MAX_THREADS of wasm/src/kernels.h. */
export const WASM_MAX_THREADS = 16;

/**
 * wasm/src/kernels.h's Epilogue in memory: bias pointer at 0, sum pointer at 4, activation (int32)
 * at 8, alpha (float64) at 16.
 */
export const EPILOGUE_BYTES = 24;

export function writeEpilogue(memory: WebAssembly.Memory, at: Ptr, e: { bias: Ptr; sum: Ptr; act: number; alpha: number }): void {
  const v = new DataView(memory.buffer, at, EPILOGUE_BYTES);
  v.setUint32(0, e.bias, true);
  v.setUint32(4, e.sum, true);
  v.setInt32(8, e.act, true);
  v.setFloat64(16, e.alpha, true);
}

const REQUIRED: readonly (keyof WasmKernelExports)[] = [
  'memory',
  '__heap_base',
  'gemm',
  'conv2d_forward',
  'conv2d_forward_fused',
  'conv2d_forward_packed',
  'gemm_prepack_b',
  'batchnorm_backward',
  'update_adam',
  'relaxed_simd',
  'gemm_work_floats',
];

/**
 * The instance's exports, after checking that it is the kernel module (not some other wasm). The
 * threaded build imports its memory instead of exporting it: pass that memory.
 */
export function kernelExports(instance: WebAssembly.Instance, imported?: WebAssembly.Memory): WasmKernelExports {
  const e = { ...(instance.exports as Record<string, unknown>) };
  if (!('memory' in e) && imported) e['memory'] = imported;
  const missing = REQUIRED.filter((name) => !(name in e));
  if (missing.length > 0) throw new Error(`not the xception kernel module: missing exports ${missing.join(', ')}`);
  return e as unknown as WasmKernelExports;
}

/** The pool's exports, or null for the single-thread build. */
export function threadExports(instance: WebAssembly.Instance): WasmThreadExports | null {
  return 'worker_loop' in instance.exports ? (instance.exports as unknown as WasmThreadExports) : null;
}

/** True for the threaded build: it imports a (shared) memory from `env`. */
export function importsMemory(module: WebAssembly.Module): boolean {
  return WebAssembly.Module.imports(module).some((i) => i.module === 'env' && i.name === 'memory' && i.kind === 'memory');
}

/** A shared memory for the threaded build: 16 MiB to start (its declared minimum), at most 4 GiB. */
export function sharedKernelMemory(): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true });
}
