/**
 * How compiled inference reaches the native backend without importing it: the browser build has
 * no native addon (nor node:fs), so src/backends/onednn/index.ts provides it here when it loads.
 */
import type { NativeBackend } from '../backends/onednn/backend.js';
import { BackendError } from '../core/errors.js';

export interface NativeAccess {
  /** The native backend, or a BackendError that says why it is unavailable. */
  backend(): NativeBackend;
  /** Whether int8 convolutions run natively on this CPU (see int8-hardware.ts). */
  int8Hardware(): 'native' | 'emulated';
}

let access: NativeAccess | null = null;

export function provideNativeAccess(a: NativeAccess): void {
  access = a;
}

export function nativeAccess(): NativeAccess {
  if (!access)
    throw new BackendError('native backend unavailable: not part of this build (the browser build compiles on the wasm backend)');
  return access;
}
