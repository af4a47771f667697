/**
 * The oneDNN native backend, if this machine has it.
 *
 * Importing this module never throws and never loads native code; the first call to
 * `loadNativeBackend()` or `nativeBackendStatus()` tries once and remembers the outcome.
 *
 *   const backend = loadNativeBackend() ?? referenceBackend;        // announced fallback
 *   const { available, reason } = nativeBackendStatus();            // why not, if not
 *   const backend = requireNativeBackend();                         // BackendError if missing
 */
import { BackendError } from '../../core/errors.js';
import { int8Hardware } from '../../infer/int8-hardware.js';
import { provideNativeAccess } from '../../infer/native-access.js';
import { NativeBackend } from './backend.js';
import { type Bf16Hardware, loadAddon } from './binding.js';

export { type ConvPrecision, NativeBackend, NativeTensor } from './backend.js';
export type { Bf16Hardware, NativeStats } from './binding.js';

export interface NativeBackendStatus {
  available: boolean;
  /** Why the backend is unavailable (absent when available). */
  reason?: string;
  /** The addon file tried. */
  path?: string;
  /** oneDNN version the addon runs on, when available. */
  onednn?: string;
  /** The instruction set oneDNN dispatches to (e.g. 'avx512_core_bf16'), when available. */
  cpuIsa?: string;
  /** Whether bf16 arithmetic (`precision: 'bf16'`) is native, emulated or unsupported here, when available. */
  bf16?: Bf16Hardware;
}

let loaded: { backend: NativeBackend | null; status: NativeBackendStatus } | undefined;

function load(): { backend: NativeBackend | null; status: NativeBackendStatus } {
  if (loaded) return loaded;
  const r = loadAddon();
  if (r.addon === null) {
    loaded = { backend: null, status: { available: false, reason: r.reason, ...(r.path ? { path: r.path } : {}) } };
  } else {
    const { onednn, cpuIsa, bf16 } = r.addon.version();
    const backend = new NativeBackend(r.addon, onednn);
    const poolMB = poolLimitFromEnv(process.env['XCEPTION_POOL_MB']);
    if (poolMB !== null) backend.setPoolLimit(poolMB * 2 ** 20);
    loaded = { backend, status: { available: true, path: r.path, onednn, cpuIsa, bf16 } };
  }
  return loaded;
}

export const DEFAULT_POOL_MB = 1024;
export const MAX_POOL_MB = 1 << 20;

/**
 * XCEPTION_POOL_MB: the memory arena's slack in MiB (default 1024): how far its resident size may
 * exceed the peak of live memory before free pages go back to the system (setPoolLimit). A bad
 * value is ignored with a warning, so a typo never costs the native backend.
 */
export function poolLimitFromEnv(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const n = Number(value);
  if (/^\d+$/.test(value.trim()) && n <= MAX_POOL_MB) return n;
  process.stderr.write(
    `xception: ignoring XCEPTION_POOL_MB=${value}: it must be a whole number of MiB from 0 to ${MAX_POOL_MB}; keeping ${DEFAULT_POOL_MB}\n`,
  );
  return null;
}

/** The native backend (one per process), or null when the addon is not built or cannot load. */
export function loadNativeBackend(): NativeBackend | null {
  return load().backend;
}

export function nativeBackendStatus(): NativeBackendStatus {
  return { ...load().status };
}

/** The native backend, or a BackendError that says why it is unavailable. */
export function requireNativeBackend(): NativeBackend {
  const { backend, status } = load();
  if (!backend) throw new BackendError(`native backend unavailable: ${status.reason}`);
  return backend;
}

provideNativeAccess({ backend: requireNativeBackend, int8Hardware });
