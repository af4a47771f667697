/**
 * The backends the shared kernel suites run over. Each loads lazily and, when it cannot run on
 * this machine, gives the reason its tests skip with.
 */
import type { Backend } from '../../src/core/backend.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadWasmBackend, wasmBackendStatus } from '../../src/backends/wasm/node.js';
import { loadThreadCheckedWasm, wasmThreadsReason } from './wasm-threads.js';

export interface SuiteBackend {
  name: string;
  load: () => Backend | null;
  reason: () => string;
}

/** The float32 backends checked against the reference. */
export const FAST_BACKENDS: readonly SuiteBackend[] = [
  { name: 'native', load: loadNativeBackend, reason: () => nativeBackendStatus().reason ?? '' },
  { name: 'wasm', load: loadWasmBackend, reason: () => wasmBackendStatus().reason ?? '' },
  // 2 threads, every kernel also checked bitwise against 1 thread (wasm-threads.ts).
  { name: 'wasm×2', load: loadThreadCheckedWasm, reason: wasmThreadsReason },
];

/** Every backend, the reference first. */
export const ALL_BACKENDS: readonly SuiteBackend[] = [
  { name: 'reference', load: () => referenceBackend, reason: () => '' },
  ...FAST_BACKENDS,
];
