/**
 * The wasm backend's thread pool, for any JavaScript host: N−1 workers, each an instance of the
 * threaded module (wasm/xception-mt.wasm) on the same shared `WebAssembly.Memory`, with its own
 * stack and GEMM packing space from the heap, parked in the module's `worker_loop`
 * (wasm/src/threads.c). The calling thread splits each kernel and waits on Atomics, so it must be
 * allowed to block: Node's main thread or any worker. In the browser the page runs the backend in
 * a Worker (the page's main thread may not Atomics.wait), and threads need cross-origin isolation
 * (COOP same-origin + COEP require-corp); without it the page uses the single-thread module.
 *
 * Who makes a worker is the host's business: node.ts passes worker_threads, a page passes
 * `webWorkerSpawner` (worker-web.js); both worker scripts call `runWorker`.
 */
import { BackendError, OptionError } from '../../core/errors.js';
import type { WasmHeap } from './heap.js';
import { WASM_MAX_THREADS, type WasmKernelExports, type WasmThreadExports, threadExports } from './kernels.js';

/** What a worker needs to join the pool (structured-cloneable: module and shared memory). */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  tid: number;
  stackTop: number;
}

export interface PoolWorker {
  terminate(): unknown;
}

/** Starts a worker that calls `runWorker(init)`. */
export type SpawnWorker = (init: WorkerInit) => PoolWorker;

const STACK_BYTES = 256 * 1024;

/** A worker's whole life: instantiate on the shared memory, take its own stack, serve jobs until stopped. */
export function runWorker(init: WorkerInit): void {
  const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
  const t = threadExports(instance);
  if (!t) throw new BackendError('wasm worker: the module is not the threaded build (wasm/xception-mt.wasm)');
  t.set_stack_pointer(init.stackTop);
  try {
    t.worker_loop(init.tid);
  } catch (e) {
    t.worker_failed(); // the job's caller would otherwise wait for this worker forever
    throw e;
  }
}

/** A spawner of Web Workers running worker-web.js (a module worker) at `url`. */
export function webWorkerSpawner(url: string | URL): SpawnWorker {
  type WebWorker = { postMessage(data: unknown): void; terminate(): void };
  const WorkerClass = (globalThis as unknown as { Worker?: new (url: string | URL, o: object) => WebWorker }).Worker;
  if (!WorkerClass) throw new BackendError('wasm threads: this host has no Web Worker');
  return (init) => {
    const worker = new WorkerClass(url, { type: 'module' });
    worker.postMessage(init);
    return worker;
  };
}

export class WasmThreadPool {
  private readonly workers: PoolWorker[] = [];
  private count = 1;
  private stopped = false;

  constructor(
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    private readonly heap: WasmHeap,
    private readonly k: WasmKernelExports,
    private readonly t: WasmThreadExports,
    private readonly spawn: SpawnWorker,
  ) {}

  get threads(): number {
    return this.count;
  }

  /** Threads for the kernels (the caller included); starts the missing workers. */
  setThreads(n: number): void {
    if (!(Number.isInteger(n) && n >= 1 && n <= WASM_MAX_THREADS))
      throw new OptionError(`the wasm thread count must be an integer from 1 to ${WASM_MAX_THREADS}, got ${n}`);
    if (this.stopped && n > 1) throw new BackendError('wasm setThreads: the thread pool was stopped');
    while (this.workers.length < n - 1) this.start(this.workers.length + 1);
    this.count = n;
    this.t.set_threads(n, this.workers.length);
  }

  private start(tid: number): void {
    const stack = this.heap.alloc(STACK_BYTES, `wasm worker ${tid} stack`);
    const work = this.heap.alloc(this.k.gemm_work_floats() * 4, `wasm worker ${tid} GEMM packing space`);
    this.k.set_thread_work(tid, work);
    try {
      this.workers.push(this.spawn({ module: this.module, memory: this.memory, tid, stackTop: stack + STACK_BYTES }));
    } catch (e) {
      this.heap.release(work);
      this.heap.release(stack);
      throw new BackendError(`wasm setThreads: cannot start worker ${tid}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Resolves once every started worker waits for jobs; until then kernels run on the caller alone. */
  async ready(timeoutMs = 60_000): Promise<void> {
    const start = Date.now();
    while (this.t.ready_workers() < this.workers.length) {
      if (Date.now() - start > timeoutMs) throw new BackendError(`wasm threads: workers not ready after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /**
   * The same as `ready`, blocking (Atomics.wait: Node's main thread or a worker, never a page's
   * main thread). False if the workers are not ready within the timeout.
   */
  readySync(timeoutMs = 10_000): boolean {
    const start = Date.now();
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    while (this.t.ready_workers() < this.workers.length) {
      if (Date.now() - start > timeoutMs) return false;
      Atomics.wait(sleeper, 0, 0, 2);
    }
    return true;
  }

  /** Kernels with less work than this (multiply-adds or elements) run on the caller alone; 0 splits all. */
  setMinWork(work: number): void {
    if (!(work >= 0)) throw new OptionError(`wasm: the parallel work threshold must be >= 0, got ${work}`);
    this.t.set_parallel_min_work(work);
  }

  /** Stops the workers (harmless twice); kernels then run on the caller alone. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.count = 1;
    this.t.stop_workers();
    for (const w of this.workers) w.terminate();
  }
}
