/**
 * Global engine state: the active backend, whether gradients are recorded, and the scopes that
 * free intermediate tensors (`tidy`).
 */
import type { Backend } from './backend.js';
import { BackendError } from './errors.js';
import type { Tensor } from './tensor.js';

// ---- backends --------------------------------------------------------------------------------

type BackendFactory = () => Backend | null;
const factories = new Map<string, BackendFactory>();
/** Other names a backend answers to (e.g. its old name), mapped to the registered one. */
const aliases = new Map<string, string>();
const instances = new Map<string, Backend>();
let active: Backend | null = null;
let chooseDefault: (() => Backend) | null = null;

/** Makes a backend available by name. The factory runs on first use and may return null. */
export function registerBackend(name: string, factory: BackendFactory): void {
  factories.set(name, factory);
}

/** Makes `alias` another name for the backend registered as `name` (old names keep working). */
export function registerBackendAlias(alias: string, name: string): void {
  aliases.set(alias, name);
}

/** The registered name for `name`: itself, or the backend an alias stands for. */
export function canonicalBackendName(name: string): string {
  return aliases.get(name) ?? name;
}

/** Sets how the default backend is chosen when none was set explicitly. */
export function setDefaultBackendChooser(fn: () => Backend): void {
  chooseDefault = fn;
}

export function registeredBackends(): string[] {
  return [...factories.keys()];
}

/** The backend of that name, or null if it is registered but cannot run here. */
export function tryBackend(alias: string): Backend | null {
  const name = canonicalBackendName(alias);
  const cached = instances.get(name);
  if (cached) return cached;
  const f = factories.get(name);
  if (!f) throw new BackendError(`unknown backend '${name}' (known: ${registeredBackends().join(', ') || 'none'})`);
  const b = f();
  if (b) instances.set(name, b);
  return b;
}

export function setBackend(backend: string | Backend): Backend {
  if (typeof backend !== 'string') {
    active = backend;
    return backend;
  }
  const b = tryBackend(backend);
  if (!b) throw new BackendError(`backend '${backend}' is not available on this machine`);
  active = b;
  return b;
}

export function getBackend(): Backend {
  if (active) return active;
  if (!chooseDefault) throw new BackendError('no backend registered: import the package entry point (xception) first');
  active = chooseDefault();
  return active;
}

// ---- gradient mode -----------------------------------------------------------------------------

let gradDepthDisabled = 0;

export function isGradEnabled(): boolean {
  return gradDepthDisabled === 0;
}

/** Runs fn without recording any op for autograd (inference mode). */
export function noGrad<T>(fn: () => T): T {
  gradDepthDisabled++;
  try {
    return fn();
  } finally {
    gradDepthDisabled--;
  }
}

// ---- scopes ------------------------------------------------------------------------------------

const scopes: Set<Tensor>[] = [];
const kept = new WeakSet<Tensor>();

/** @internal called by every Tensor constructor. */
export function trackTensor(t: Tensor): void {
  const top = scopes[scopes.length - 1];
  if (top) top.add(t);
}

/** True for tensors marked with `keep`. */
export function isKept(t: Tensor): boolean {
  return kept.has(t);
}

/** Marks a tensor to survive the enclosing `tidy` scopes (weights, gradients, optimizer state). */
export function keep<T extends Tensor>(t: T): T {
  kept.add(t);
  for (const s of scopes) s.delete(t);
  return t;
}

/**
 * Runs fn and disposes every tensor created inside it, except those it returns (a tensor, an
 * array of them or an object whose values are tensors) and those marked with `keep`.
 * Native memory is released at once rather than whenever the garbage collector runs. When fn
 * throws, everything it created (but kept tensors) is disposed before the error goes on: a failed
 * step (an allocation past the memory limit, say) leaves no memory behind.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) if (!kept.has(t)) t.dispose();
    throw e;
  }
  scopes.pop();
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) {
      if (parent) parent.add(t);
    } else if (!kept.has(t)) {
      t.dispose();
    }
  }
  return result;
}

function collectTensors(value: unknown, into: Set<Tensor>): void {
  if (value === null || typeof value !== 'object') return;
  if (isTensor(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, into);
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, into);
  }
}

function isTensor(v: object): v is Tensor {
  return 'shape' in v && 'backend' in v && 'dispose' in v && 'storageOrThrow' in v;
}
