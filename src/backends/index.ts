/**
 * Backend registration and the default choice: XCEPTION_BACKEND=native|wasm|reference, else the
 * first of native → wasm → reference that runs here (a fallback is announced once on stderr).
 * Node entry: the wasm backend's module is read from the package by its Node loader.
 */
import type { Backend } from '../core/backend.js';
import {
  canonicalBackendName,
  registerBackend,
  registerBackendAlias,
  registeredBackends,
  setDefaultBackendChooser,
  tryBackend,
} from '../core/engine.js';
import { BackendError } from '../core/errors.js';
import { loadNativeBackend, nativeBackendStatus } from './onednn/index.js';
import { referenceBackend } from './reference/index.js';
import { loadWasmBackend, wasmBackendStatus } from './wasm/node.js';

/** Every backend name, fastest first: the default is the first one that runs. */
export const BACKEND_NAMES = ['native', 'wasm', 'reference'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

registerBackend('reference', () => referenceBackend);
registerBackend('native', loadNativeBackend);
registerBackend('wasm', loadWasmBackend);
// The native backend was called 'onednn' (its Backend.name) before it took its flag's name.
registerBackendAlias('onednn', 'native');

let announced = false;

function whyUnavailable(name: string): string {
  if (name === 'native') return nativeBackendStatus().reason ?? 'unavailable';
  if (name === 'wasm') return wasmBackendStatus().reason ?? 'unavailable';
  return 'unavailable';
}

export function chooseDefaultBackend(): Backend {
  const given = process.env['XCEPTION_BACKEND'];
  if (given) {
    const wanted = canonicalBackendName(given);
    if (!(BACKEND_NAMES as readonly string[]).includes(wanted)) {
      throw new BackendError(`XCEPTION_BACKEND must be 'native', 'wasm' or 'reference', got '${given}'`);
    }
    const b = tryBackend(wanted);
    if (!b) throw new BackendError(`XCEPTION_BACKEND=${given}, but that backend is not available on this machine`);
    return b;
  }
  const skipped: string[] = [];
  for (const name of BACKEND_NAMES) {
    if (!registeredBackends().includes(name)) continue;
    const b = tryBackend(name);
    if (b) {
      if (skipped.length > 0 && !announced) {
        announced = true;
        process.stderr.write(`xception: ${skipped.join('; ')}; using the ${name} backend${name === 'reference' ? ' (slow)' : ''}\n`);
      }
      return b;
    }
    skipped.push(`${name} backend not available (${whyUnavailable(name)})`);
  }
  return referenceBackend;
}

setDefaultBackendChooser(chooseDefaultBackend);

export { referenceBackend };
