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
import { NativeBackend } from './backend.js';
import { loadAddon } from './binding.js';

export { NativeBackend, NativeTensor } from './backend.js';
export type { NativeStats } from './binding.js';

export interface NativeBackendStatus {
  available: boolean;
  /** Why the backend is unavailable (absent when available). */
  reason?: string;
  /** The addon file tried. */
  path?: string;
  /** oneDNN version the addon runs on, when available. */
  onednn?: string;
}

let loaded: { backend: NativeBackend | null; status: NativeBackendStatus } | undefined;

function load(): { backend: NativeBackend | null; status: NativeBackendStatus } {
  if (loaded) return loaded;
  const r = loadAddon();
  if (r.addon === null) {
    loaded = { backend: null, status: { available: false, reason: r.reason, ...(r.path ? { path: r.path } : {}) } };
  } else {
    const onednn = r.addon.version().onednn;
    loaded = { backend: new NativeBackend(r.addon, onednn), status: { available: true, path: r.path, onednn } };
  }
  return loaded;
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
  if (!backend) throw new BackendError(`onednn backend unavailable: ${status.reason}`);
  return backend;
}
