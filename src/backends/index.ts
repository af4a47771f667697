/**
 * Backend registration and the default choice: XCEPTION_BACKEND=native|reference, else the
 * native backend where it is built, else the reference backend (announced once on stderr).
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
import { loadNativeBackend } from './onednn/index.js';
import { referenceBackend } from './reference/index.js';

registerBackend('reference', () => referenceBackend);
registerBackend('native', loadNativeBackend);
// The native backend was called 'onednn' (its Backend.name) before it took its flag's name.
registerBackendAlias('onednn', 'native');

let announced = false;

export function chooseDefaultBackend(): Backend {
  const given = process.env['XCEPTION_BACKEND'];
  if (given) {
    const wanted = canonicalBackendName(given);
    if (!['native', 'reference'].includes(wanted)) {
      throw new BackendError(`XCEPTION_BACKEND must be 'native' or 'reference', got '${given}'`);
    }
    const b = tryBackend(wanted);
    if (!b) throw new BackendError(`XCEPTION_BACKEND=${given}, but that backend is not available on this machine`);
    return b;
  }
  if (registeredBackends().includes('native')) {
    const native = tryBackend('native');
    if (native) return native;
    if (!announced) {
      announced = true;
      process.stderr.write('xception: native backend not available, using the (slow) reference backend\n');
    }
  }
  return referenceBackend;
}

setDefaultBackendChooser(chooseDefaultBackend);

export { referenceBackend };
