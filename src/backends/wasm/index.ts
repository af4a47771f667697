/**
 * The wasm backend, for any JavaScript host. No Node built-ins on this path: the module's bytes
 * come from whoever calls in (node.ts reads wasm/xception.wasm; a page fetches it).
 *
 *   const backend = await instantiateWasmBackend(fetch('xception.wasm'));  // browser
 *   const backend = createWasmBackend(new WebAssembly.Module(bytes));       // synchronous
 */
import { WasmBackend, type WasmBackendOptions } from './backend.js';

export { WasmBackend, WasmTensor, type WasmBackendOptions } from './backend.js';
export { WASM_MAX_BYTES } from './heap.js';

/** A backend on a compiled kernel module (a fresh instance with its own memory). */
export function createWasmBackend(module: WebAssembly.Module, options: WasmBackendOptions = {}): WasmBackend {
  return new WasmBackend(new WebAssembly.Instance(module, {}), options);
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
