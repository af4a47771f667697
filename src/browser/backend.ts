/**
 * The backend a page runs on: the wasm backend when its module loads (kernels fetched from the
 * server), else the reference backend, with the reason. The wasm backend's TypeScript is imported
 * by URL at run time, so this build does not depend on it being present.
 */
import type { Backend } from '../core/backend.js';
import { registerBackend, setBackend, setDefaultBackendChooser } from '../core/engine.js';
import { BackendError } from '../core/errors.js';
import { referenceBackend } from '../backends/reference/index.js';

registerBackend('reference', () => referenceBackend);
setDefaultBackendChooser(() => referenceBackend);

export type BrowserBackendPreference = 'auto' | 'wasm' | 'reference';

export interface BrowserBackendOptions {
  /** 'auto' (default): wasm when it loads, else reference. 'wasm' fails instead of falling back. */
  prefer?: BrowserBackendPreference;
  /** Where the compiled kernels are (default: wasm/xception.wasm of the package, as served). */
  wasmUrl?: string | URL;
}

export interface BrowserBackendChoice {
  name: 'wasm' | 'reference';
  backend: Backend;
  /** Why the wasm backend is not running, when it is not. */
  reason?: string;
}

interface WasmModule {
  instantiateWasmBackend(source: PromiseLike<Response>): Promise<Backend>;
}

/** dist/src/browser/backend.js → dist/src/backends/wasm/index.js and <package>/wasm/xception.wasm. */
const WASM_TS_MODULE = '../backends/wasm/index.js';
const WASM_KERNELS = '../../../wasm/xception.wasm';

/** Chooses and activates the page's backend (see BrowserBackendOptions). */
export async function useBrowserBackend(options: BrowserBackendOptions = {}): Promise<BrowserBackendChoice> {
  const prefer = options.prefer ?? 'auto';
  if (!['auto', 'wasm', 'reference'].includes(prefer)) throw new BackendError(`unknown backend preference '${String(prefer)}'`);
  let reason = 'the reference backend was asked for';
  if (prefer !== 'reference') {
    try {
      const wasm = await loadWasmBackend(options.wasmUrl ?? new URL(WASM_KERNELS, import.meta.url));
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

async function loadWasmBackend(url: string | URL): Promise<Backend> {
  // A specifier in a variable: resolved when the page runs, not when this file is compiled.
  const specifier: string = WASM_TS_MODULE;
  const mod = (await import(specifier)) as Partial<WasmModule>;
  if (typeof mod.instantiateWasmBackend !== 'function') throw new Error('its module has no instantiateWasmBackend');
  const response = fetch(url).then((r) => {
    if (!r.ok) throw new Error(`${String(url)}: HTTP ${r.status}`);
    return r;
  });
  return mod.instantiateWasmBackend(response);
}
