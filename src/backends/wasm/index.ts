/**
 * The wasm backend, for any JavaScript host. No Node built-ins on this path: the module's bytes
 * come from whoever calls in (node.ts reads wasm/xception.wasm; a page fetches it).
 *
 *   const backend = await instantiateWasmBackend(fetch('xception.wasm'));  // browser
 *   const backend = createWasmBackend(new WebAssembly.Module(bytes));       // synchronous
 */
import { BackendError } from '../../core/errors.js';
import { WasmBackend, type WasmBackendOptions } from './backend.js';
import { importsMemory, sharedKernelMemory } from './kernels.js';

export { WasmBackend, WasmTensor, type WasmBackendOptions } from './backend.js';
export { WASM_MAX_BYTES } from './heap.js';
export { WASM_MAX_THREADS } from './kernels.js';
export { runWorker, type SpawnWorker, type WorkerInit, webWorkerSpawner } from './threads.js';
export { kernelFileName, parseWasmSimd, relaxedSimdSupported, type WasmSimdChoice, wantsRelaxed } from './simd.js';

/**
 * A backend on a compiled kernel module (a fresh instance with its own memory). The threaded
 * module (wasm/xception-mt.wasm) gets a new shared memory and, with `options.spawn`, its workers;
 * the single-thread module (wasm/xception.wasm) needs no SharedArrayBuffer (pages without
 * cross-origin isolation).
 */
export function createWasmBackend(module: WebAssembly.Module, options: WasmBackendOptions = {}): WasmBackend {
  if (!importsMemory(module)) return new WasmBackend(new WebAssembly.Instance(module, {}), options);
  if (typeof SharedArrayBuffer === 'undefined') {
    throw new BackendError('wasm: the threaded module needs SharedArrayBuffer (a cross-origin-isolated page); load wasm/xception.wasm');
  }
  const memory = sharedKernelMemory();
  return new WasmBackend(new WebAssembly.Instance(module, { env: { memory } }), options, { module, memory });
}

/** Compiles the kernel module asynchronously (the browser's main thread needs this) and makes a backend. */
export async function instantiateWasmBackend(
  source: BufferSource | Response | PromiseLike<Response>,
  options: WasmBackendOptions = {},
): Promise<WasmBackend> {
  const resolved = source instanceof ArrayBuffer || ArrayBuffer.isView(source) ? source : await source;
  const module =
    resolved instanceof ArrayBuffer || ArrayBuffer.isView(resolved)
      ? await WebAssembly.compile(resolved)
      : await WebAssembly.compileStreaming(resolved as Response);
  return createWasmBackend(module, options);
}
