/**
 * The backend a page runs on: the wasm backend when its module loads (kernels fetched from the
 * server), else the reference backend, with the reason. The wasm backend's TypeScript is imported
 * by URL at run time, so this build does not depend on its kernels or loader being present; only
 * the choice of build (simd.ts: names and a probe) is imported here.
 */
import type { Backend } from '../core/backend.js';
import { registerBackend, setBackend, setDefaultBackendChooser } from '../core/engine.js';
import { BackendError } from '../core/errors.js';
import { referenceBackend } from '../backends/reference/index.js';
// Which kernel build to fetch (no kernels, no Node built-ins): the choice is checked before anything loads.
import { kernelFileName, relaxedSimdSupported, WASM_SIMD_CHOICES, type WasmSimdChoice, wantsRelaxed } from '../backends/wasm/simd.js';

registerBackend('reference', () => referenceBackend);
setDefaultBackendChooser(() => referenceBackend);

export type BrowserBackendPreference = 'auto' | 'wasm' | 'reference';

export interface BrowserBackendOptions {
  /** 'auto' (default): wasm when it loads, else reference. 'wasm' fails instead of falling back. */
  prefer?: BrowserBackendPreference;
  /** Where the compiled kernels are (default: the package's wasm/ folder as served, the build `simd` picks). */
  wasmUrl?: string | URL;
  /**
   * The most memory the wasm backend may grow to, in MiB (default and at most 4096: wasm32's and
   * the browsers' limit). Past it an allocation is an OutOfMemoryError naming the limit.
   */
  memoryLimitMB?: number;
  /**
   * The kernels' SIMD (default 'auto': the relaxed-SIMD build, its multiply-adds fused, where the
   * browser has relaxed SIMD; 'plain': SIMD128 only, the same bits on every machine). Only for the
   * default kernels, not a `wasmUrl`.
   */
  simd?: WasmSimdChoice;
}

export interface BrowserBackendChoice {
  name: 'wasm' | 'reference';
  backend: Backend;
  /** Why the wasm backend is not running, when it is not. */
  reason?: string;
}

interface WasmModule {
  instantiateWasmBackend(
    source: PromiseLike<Response>,
    options?: object,
  ): Promise<Backend & { threadsReady(timeoutMs?: number): Promise<void>; stopThreads(): void }>;
  webWorkerSpawner(url: URL): unknown;
}

/** dist/src/browser/backend.js → dist/src/backends/wasm/index.js and <package>/wasm/xception*.wasm. */
const WASM_TS_MODULE = '../backends/wasm/index.js';
const WASM_DIR = '../../../wasm/';
/** The threaded kernels' worker script, for cross-origin-isolated pages (COOP + COEP). */
const WASM_WORKER = '../backends/wasm/worker-web.js';

/** Chooses and activates the page's backend (see BrowserBackendOptions). */
export async function useBrowserBackend(options: BrowserBackendOptions = {}): Promise<BrowserBackendChoice> {
  const prefer = options.prefer ?? 'auto';
  if (!['auto', 'wasm', 'reference'].includes(prefer)) throw new BackendError(`unknown backend preference '${String(prefer)}'`);
  const limit = options.memoryLimitMB;
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 4096))
    throw new BackendError(`memoryLimitMB must be a whole number from 1 to 4096, got ${String(limit)}`);
  if (options.simd !== undefined && !(WASM_SIMD_CHOICES as readonly string[]).includes(options.simd))
    throw new BackendError(`simd must be one of ${WASM_SIMD_CHOICES.join(', ')}, got '${String(options.simd)}'`);
  const wasmOptions = limit === undefined ? {} : { memoryLimitBytes: limit * 2 ** 20 };
  let reason = 'the reference backend was asked for';
  if (prefer !== 'reference') {
    try {
      const wasm = await loadWasmBackend(options.wasmUrl, options.simd ?? 'auto', wasmOptions);
      registerBackend('wasm', () => wasm);
      setBackend(wasm);
      return { name: 'wasm', backend: wasm };
    } catch (e) {
      reason = `wasm backend unavailable: ${(e as Error).message}`;
      if (prefer === 'wasm') throw new BackendError(reason);
    }
  }
  setBackend(referenceBackend);
  return { name: 'reference', backend: referenceBackend, reason };
}

async function loadWasmBackend(
  url: string | URL | undefined,
  simd: WasmSimdChoice,
  options: { memoryLimitBytes?: number },
): Promise<Backend> {
  // A specifier in a variable: resolved when the page runs, not when this file is compiled.
  const specifier: string = WASM_TS_MODULE;
  const mod = (await import(specifier)) as Partial<WasmModule>;
  if (typeof mod.instantiateWasmBackend !== 'function') throw new Error('its module has no instantiateWasmBackend');
  if (url !== undefined) return mod.instantiateWasmBackend(fetchOk(url), options);
  const relaxed = wantsRelaxed(simd, relaxedSimdSupported(), true);
  const kernels = (threaded: boolean) => new URL(WASM_DIR + kernelFileName(threaded, relaxed), import.meta.url);
  const threaded = await loadThreaded(mod as WasmModule, kernels(true), options);
  return threaded ?? mod.instantiateWasmBackend(fetchOk(kernels(false)), options);
}

function fetchOk(url: string | URL): Promise<Response> {
  return fetch(url).then((r) => {
    if (!r.ok) throw new Error(`${String(url)}: HTTP ${r.status}`);
    return r;
  });
}

/**
 * The threaded kernels with min(cores, 4) threads when the page is cross-origin isolated (shared
 * memory allowed), else null (the single-thread kernels). The pool's calling thread blocks on
 * Atomics, so this runs where the page's training does: in a Worker, never the page's main thread.
 */
async function loadThreaded(mod: WasmModule, url: URL, options: { memoryLimitBytes?: number }): Promise<Backend | null> {
  const scope = globalThis as { crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number }; document?: unknown };
  if (scope.crossOriginIsolated !== true || scope.document !== undefined || typeof mod.webWorkerSpawner !== 'function') return null;
  try {
    const threads = Math.max(1, Math.min(scope.navigator?.hardwareConcurrency ?? 1, 4));
    const spawn = mod.webWorkerSpawner(new URL(WASM_WORKER, import.meta.url));
    const backend = await mod.instantiateWasmBackend(fetchOk(url), {
      threads,
      spawn,
      ...options,
    });
    try {
      await backend.threadsReady(10_000);
    } catch (e) {
      backend.stopThreads();
      throw e;
    }
    return backend;
  } catch {
    return null;
  }
}
