/**
 * Names read from files (tensor names, metadata keys, run state) must never become object keys
 * that reach Object.prototype: readers keep them in Maps, and refuse these names outright so a
 * later `obj[name]` anywhere downstream cannot find the prototype either.
 */
const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** True for names that would address Object.prototype machinery if used as an object key. */
export function isReservedKey(name: string): boolean {
  return RESERVED_KEYS.has(name);
}

/** A prototype-free object holding a Map's entries (for APIs typed as records). */
export function recordFromMap<V>(map: ReadonlyMap<string, V>): Record<string, V> {
  const out = Object.create(null) as Record<string, V>;
  for (const [k, v] of map) out[k] = v;
  return out;
}
