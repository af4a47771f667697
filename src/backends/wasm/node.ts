/**
 * Node-only loader of the wasm backend: reads wasm/xception-mt.wasm (threads, on worker_threads)
 * or else wasm/xception.wasm (one thread) from the package — their relaxed-SIMD builds where this
 * Node has relaxed SIMD (simd.ts; XCEPTION_WASM_SIMD chooses) — and compiles it synchronously
 * (backend factories are synchronous). The only file of the wasm backend (with worker-node.ts)
 * that touches Node built-ins. Never throws: a missing or broken module is a reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { OptionError } from '../../core/errors.js';
import type { WasmBackend } from './backend.js';
import { WASM_MAX_BYTES } from './heap.js';
import { createWasmBackend } from './index.js';
import { WASM_MAX_THREADS } from './kernels.js';
import { kernelFileName, parseWasmSimd, relaxedSimdSupported, wantsRelaxed } from './simd.js';
import type { SpawnWorker } from './threads.js';

/** dist/src/backends/wasm/node.js → <package>/wasm/<file>, for a build (simd.ts kernelFileName). */
export function wasmModulePath(threaded: boolean, relaxed: boolean): string {
  return fileURLToPath(new URL(`../../../../wasm/${kernelFileName(threaded, relaxed)}`, import.meta.url));
}
/** The plain single-thread build: <package>/wasm/xception.wasm. */
export const WASM_MODULE_PATH = wasmModulePath(false, false);
/** The plain threaded build beside it. */
export const WASM_THREADED_MODULE_PATH = wasmModulePath(true, false);

/**
 * Whether this Node compiles relaxed SIMD, after turning it on where it is only behind a V8 flag:
 * Node 20's V8 (11.3) has it as --experimental-wasm-relaxed-simd, V8 11.4 (Node 22) ships it. The
 * flag adds the relaxed opcodes to what validates and changes nothing else; V8's flags are the
 * process's, so the pool's workers have it too.
 */
export function enableRelaxedSimd(): boolean {
  if (relaxedSimdSupported()) return true;
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return relaxedSimdSupported();
}

/**
 * XCEPTION_WASM_SIMD: auto (default: relaxed SIMD where this Node has it or can turn it on, and
 * its module is built), relaxed, or plain (the same bits on every machine; V8's flags untouched).
 * Whether the relaxed builds load; a choice that cannot be met, or a malformed one, is an OptionError.
 */
export function wasmRelaxedFromEnv(value: string | undefined): boolean {
  const choice = parseWasmSimd(value, 'XCEPTION_WASM_SIMD');
  if (choice === 'plain') return false;
  const built = existsSync(wasmModulePath(false, true)) && existsSync(wasmModulePath(true, true));
  return wantsRelaxed(choice, built && enableRelaxedSimd(), built);
}

/**
 * XCEPTION_WASM_THREADS: threads of the wasm kernels (1 to 16); default min(cores, 4). A malformed
 * value is an OptionError.
 */
export function wasmThreadsFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return Math.min(availableParallelism(), 4);
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > WASM_MAX_THREADS) {
    throw new OptionError(`XCEPTION_WASM_THREADS must be a whole number from 1 to ${WASM_MAX_THREADS}, got '${value}'`);
  }
  return n;
}

/**
 * Pool workers on worker_threads, unreferenced: they never keep the process alive. A worker that
 * fails to start is reported once on stderr; kernels then stay on one thread (the pool uses
 * workers only when all of them are ready). Flags for the main script (--input-type) are not the
 * worker's. V8 flags (`node --no-liftoff`) are the whole process's and a Worker refuses them in
 * its execArgv: then the worker starts without the process's flags.
 */
export const nodeWorkerSpawner: SpawnWorker = (init) => {
  const url = new URL('./worker-node.js', import.meta.url);
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
  let worker: Worker;
  try {
    worker = new Worker(url, { workerData: init, execArgv });
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    worker = new Worker(url, { workerData: init, execArgv: [] });
  }
  worker.on('error', (e) => process.stderr.write(`wasm: worker ${init.tid} failed; kernels stay on one thread: ${e.message}\n`));
  worker.unref();
  return worker;
};

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
  const threads = wasmThreadsFromEnv(process.env['XCEPTION_WASM_THREADS']);
  const relaxed = wasmRelaxedFromEnv(process.env['XCEPTION_WASM_SIMD']);
  const threadedPath = wasmModulePath(true, relaxed);
  const path = existsSync(threadedPath) ? threadedPath : wasmModulePath(false, relaxed);
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch {
    loaded = { backend: null, reason: `${path} is not built (npm run build:wasm needs clang-19 and lld-19)` };
    return loaded;
  }
  try {
    const options = path === threadedPath ? { threads, spawn: nodeWorkerSpawner } : {};
    const backend = createWasmBackend(new WebAssembly.Module(bytes), { memoryLimitBytes: limit, ...options });
    // Workers start in ~0.1 s; until then kernels would run on one thread.
    backend.threadsReadySync();
    loaded = { backend };
  } catch (e) {
    loaded = { backend: null, reason: `${path} does not load: ${e instanceof Error ? e.message : String(e)}` };
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
