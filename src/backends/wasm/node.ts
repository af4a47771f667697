/**
 * Node-only loader of the wasm backend: reads wasm/xception.wasm from the package and
 * compiles it synchronously (backend factories are synchronous). The only file of the wasm
 * backend that touches Node built-ins. Never throws: a missing or broken module is a reason.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OptionError } from '../../core/errors.js';
import type { WasmBackend } from './backend.js';
import { WASM_MAX_BYTES } from './heap.js';
import { createWasmBackend } from './index.js';

/** dist/src/backends/wasm/node.js → <package>/wasm/xception.wasm. */
export const WASM_MODULE_PATH = fileURLToPath(new URL('../../../../wasm/xception.wasm', import.meta.url));

let loaded: { backend: WasmBackend | null; reason?: string } | undefined;

/**
 * XCEPTION_WASM_MEMORY_MB: how far the wasm memory may grow, in MiB (default and maximum 4096,
 * wasm32's limit). A malformed value is an OptionError.
 */
export function wasmMemoryLimitFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return WASM_MAX_BYTES;
  const mb = Number(value);
  if (!/^\d+$/.test(value.trim()) || mb < 1 || mb > WASM_MAX_BYTES / 2 ** 20) {
    throw new OptionError(`XCEPTION_WASM_MEMORY_MB must be a whole number of MiB from 1 to 4096, got '${value}'`);
  }
  return mb * 2 ** 20;
}

function load(): { backend: WasmBackend | null; reason?: string } {
  if (loaded) return loaded;
  if (process.env['XCEPTION_WASM'] === '0') {
    loaded = { backend: null, reason: 'disabled by XCEPTION_WASM=0' };
    return loaded;
  }
  const limit = wasmMemoryLimitFromEnv(process.env['XCEPTION_WASM_MEMORY_MB']);
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = new Uint8Array(readFileSync(WASM_MODULE_PATH));
  } catch {
    loaded = { backend: null, reason: `${WASM_MODULE_PATH} is not built (npm run build:wasm needs clang and lld)` };
    return loaded;
  }
  try {
    loaded = { backend: createWasmBackend(new WebAssembly.Module(bytes), { memoryLimitBytes: limit }) };
  } catch (e) {
    loaded = { backend: null, reason: `${WASM_MODULE_PATH} does not load: ${e instanceof Error ? e.message : String(e)}` };
  }
  return loaded;
}

/** The wasm backend (one per process), or null when its module is missing or does not load. */
export function loadWasmBackend(): WasmBackend | null {
  return load().backend;
}

export function wasmBackendStatus(): { available: boolean; reason?: string; path: string } {
  const { backend, reason } = load();
  return { available: backend !== null, ...(reason ? { reason } : {}), path: WASM_MODULE_PATH };
}
