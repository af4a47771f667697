/**
 * The wasm backend with 2 threads, checked against itself on 1 thread: every kernel call runs
 * twice on the same handles (1 thread, then 2, splitting even the smallest kernels) and the two
 * results must be bitwise equal — each split keeps every sum in its one-thread order. The 2-thread
 * result is returned, so the shared suites also compare it with the reference. applyUpdate
 * (in place, not split) runs once.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Backend } from '../../src/core/backend.js';
import { createWasmBackend, type WasmBackend, WasmTensor } from '../../src/backends/wasm/index.js';
import { nodeWorkerSpawner, wasmModulePath, wasmRelaxedFromEnv } from '../../src/backends/wasm/node.js';

const ONCE = new Set(['upload', 'download', 'zeros', 'dispose', 'applyUpdate', 'setThreads', 'threads', 'name', 'dtypes']);

let loaded: Backend | null | undefined;
let why = '';

function bits(b: WasmBackend, h: WasmTensor): Uint32Array {
  const f = b.download(h, h.size, 'float32') as Float32Array;
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}

/** Throws unless `one` and `two` (handles, numbers, or records of them) are bitwise equal; frees `one`'s handles. */
function sameBits(b: WasmBackend, op: string, one: unknown, two: unknown): void {
  if (one instanceof WasmTensor && two instanceof WasmTensor) {
    const [a, c] = [bits(b, one), bits(b, two)];
    const at = a.findIndex((v, i) => v !== c[i]);
    b.dispose(one);
    if (at >= 0 || a.length !== c.length) throw new Error(`wasm ${op}: 2 threads differ from 1 at element ${at}`);
  } else if (typeof one === 'number') {
    if (!Object.is(one, two)) throw new Error(`wasm ${op}: 2 threads give ${String(two)}, 1 thread ${one}`);
  } else if (one && typeof one === 'object') {
    for (const key of Object.keys(one)) sameBits(b, `${op}.${key}`, (one as never)[key], (two as never)[key]);
  }
}

function threadChecked(b: WasmBackend): Backend {
  return new Proxy(b, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (typeof prop !== 'string' || ONCE.has(prop)) return fn.bind(target);
      return (...args: unknown[]) => {
        target.setThreads(1);
        const one = fn.apply(target, args);
        target.setThreads(2);
        const two = fn.apply(target, args);
        sameBits(target, prop, one, two);
        return two;
      };
    },
  }) as Backend;
}

/** The checked 2-thread backend, or null (with `wasmThreadsReason()`) without the threaded module. */
export function loadThreadCheckedWasm(): Backend | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  // The build the default backend loads (XCEPTION_WASM_SIMD); wasm-relaxed.test.ts runs the other in a child.
  const path = wasmModulePath(true, wasmRelaxedFromEnv(process.env['XCEPTION_WASM_SIMD']));
  if (!existsSync(path)) why = `${path} is not built (npm run build:wasm)`;
  else {
    const b = createWasmBackend(new WebAssembly.Module(readFileSync(path)), { threads: 2, spawn: nodeWorkerSpawner });
    if (!b.threadsReadySync()) why = 'the wasm worker did not start';
    else {
      b.setParallelMinWork(0);
      loaded = threadChecked(b);
    }
  }
  return loaded;
}

export function wasmThreadsReason(): string {
  return why;
}
