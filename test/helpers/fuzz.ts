/**
 * Shared machinery of the seeded mutation fuzzers (test/**\/*fuzz*.test.ts).
 *
 * Settings: XCEPTION_FUZZ_SEED (default 0) and XCEPTION_FUZZ_CASES (overrides every fuzzer's
 * case count), or `npm run fuzz -- --cases N --seed S`. The seed is printed with every tally and
 * every failure, so a failing case can be replayed.
 *
 * A fuzzer runs exactly the cases it was asked for — there is no time budget that quietly cuts a
 * run short — and each case must either succeed or throw one of the reader's typed errors.
 * Anything else (TypeError, RangeError, a plain Error, a case slower than allowed) fails the test.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { Random } from '../../src/core/random.js';

function envInteger(name: string, fallback: number, min: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got '${text}'`);
  return n;
}

/** The run's seed; each fuzzer mixes in its own offset so fuzzers do not share streams. */
export const FUZZ_SEED = envInteger('XCEPTION_FUZZ_SEED', 0, 0);

/** The case count for a fuzzer whose default (and CI) count is `defaultCount`. */
export function fuzzCaseCount(defaultCount: number): number {
  return envInteger('XCEPTION_FUZZ_CASES', defaultCount, 1);
}

/** A test timeout that grows with the case count (for runs widened by XCEPTION_FUZZ_CASES). */
export function fuzzTimeout(defaultCount: number, msAtDefault: number): number {
  return Math.max(1, fuzzCaseCount(defaultCount) / defaultCount) * msAtDefault;
}

/** A number inside a file's binary header: where, how wide, and its byte order. */
export interface HeaderField {
  at: number;
  size: 1 | 2 | 4 | 8;
  littleEndian: boolean;
}

export interface MutationTarget {
  /** The intact file. */
  bytes: Uint8Array;
  /** Its header's numeric fields (sizes, counts, offsets, types), edited by 'field' mutations. */
  fields?: readonly HeaderField[];
  /** Bytes before this offset (the header) are hit more often by positional mutations. */
  hotEnd?: number;
  /** A fix-up after mutating (e.g. recomputing a checksum so the edit reaches the parser). */
  repair?: (bytes: Uint8Array, rng: Random) => Uint8Array;
}

export const MUTATION_KINDS = ['flip', 'set', 'truncate', 'extend', 'field', 'number', 'copy'] as const;
export type MutationKind = (typeof MUTATION_KINDS)[number];

function position(rng: Random, length: number, hotEnd: number | undefined): number {
  if (hotEnd !== undefined && hotEnd > 0 && rng.next() < 0.6) return rng.int(Math.min(hotEnd, length));
  return rng.int(length);
}

/** Values that break size arithmetic: zeros, ones, all-ones, sign bits, off-by-ones of the file size. */
function interestingValue(rng: Random, size: HeaderField['size'], fileLength: number): bigint {
  const max = (1n << BigInt(8 * size)) - 1n;
  const choices = [
    0n,
    1n,
    max,
    max - 1n,
    max >> 1n,
    (max >> 1n) + 1n,
    BigInt(fileLength),
    BigInt(fileLength) + 1n,
    BigInt(fileLength) - 1n,
    255n,
    256n,
    0x10000n,
  ];
  const v = rng.next() < 0.25 ? BigInt(rng.nextUint32()) * BigInt(rng.nextUint32()) : choices[rng.int(choices.length)]!;
  return ((v % (max + 1n)) + (max + 1n)) % (max + 1n);
}

function setField(bytes: Uint8Array, f: HeaderField, value: bigint): void {
  if (f.at < 0 || f.at + f.size > bytes.length) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (f.size === 1) view.setUint8(f.at, Number(value));
  else if (f.size === 2) view.setUint16(f.at, Number(value), f.littleEndian);
  else if (f.size === 4) view.setUint32(f.at, Number(value), f.littleEndian);
  else view.setBigUint64(f.at, value, f.littleEndian);
}

/** One mutation of `bytes` (a fresh array; the input is not changed). */
export function mutateOnce(rng: Random, bytes: Uint8Array, kind: MutationKind, target: MutationTarget): Uint8Array {
  if (bytes.length === 0 && kind !== 'extend') return bytes;
  const out = new Uint8Array(bytes); // a copy (Buffer#slice would be a view)
  const pos = () => position(rng, out.length, target.hotEnd);
  switch (kind) {
    case 'flip': // bit flips at several positions
      for (let i = 0, n = 1 + rng.int(8); i < n; i++) out[pos()] ^= 1 << rng.int(8);
      return out;
    case 'set': // bytes set at several positions, often to extremes
      for (let i = 0, n = 1 + rng.int(8); i < n; i++) {
        const at = pos();
        for (let k = 0, len = 1 + rng.int(4); k < len && at + k < out.length; k++)
          out[at + k] = [0, 0xff, 0x7f, 0x80][rng.int(5)] ?? rng.int(256);
      }
      return out;
    case 'truncate':
      return out.subarray(0, rng.int(out.length));
    case 'extend': {
      // trailing junk, zeros, or the file's own tail again
      const extra = 1 + rng.int(rng.next() < 0.5 ? 16 : 4096);
      const tail = new Uint8Array(extra);
      const mode = rng.int(3);
      const src = out.length > 0 ? out : new Uint8Array(1);
      const from = src.length - Math.min(extra, src.length); // mode 2 repeats the file's last bytes
      for (let i = 0; i < extra; i++) tail[i] = mode === 0 ? 0 : mode === 1 ? rng.int(256) : src[from + (i % (src.length - from))]!;
      const grown = new Uint8Array(out.length + extra);
      grown.set(out);
      grown.set(tail, out.length);
      return grown;
    }
    case 'field': {
      // several header fields at once set to size-breaking values
      const fields = target.fields ?? [];
      if (fields.length === 0) return mutateOnce(rng, bytes, 'set', target);
      for (let i = 0, n = 1 + rng.int(Math.min(3, fields.length)); i < n; i++) {
        const f = fields[rng.int(fields.length)]!;
        setField(out, f, interestingValue(rng, f.size, out.length));
      }
      return out;
    }
    case 'number': {
      // a size-breaking 16/32/64-bit number anywhere (addresses, lengths in unlisted headers)
      const size = ([2, 4, 8] as const)[rng.int(3)]!;
      const field = { at: Math.min(pos(), out.length - size), size, littleEndian: rng.next() < 0.7 };
      setField(out, field, interestingValue(rng, size, out.length));
      return out;
    }
    default: {
      // a span copied elsewhere (structure in the wrong place)
      const from = rng.int(out.length);
      const to = pos();
      const len = Math.min(1 + rng.int(64), out.length - from, out.length - to);
      out.copyWithin(to, from, from + len);
      return out;
    }
  }
}

/** One to three mutations of the target, with the kinds applied (for the tally). */
export function mutate(rng: Random, target: MutationTarget): { bytes: Uint8Array; kinds: MutationKind[] } {
  let bytes = target.bytes;
  const kinds: MutationKind[] = [];
  for (let i = 0, n = 1 + (rng.next() < 0.3 ? rng.int(3) : 0); i < n; i++) {
    const kind = MUTATION_KINDS[rng.int(MUTATION_KINDS.length)]!;
    bytes = mutateOnce(rng, bytes, kind, target);
    kinds.push(kind);
  }
  if (target.repair && rng.next() < 0.5) bytes = target.repair(bytes, rng);
  return { bytes, kinds };
}

export interface FuzzTally {
  cases: number;
  succeeded: number;
  /** Typed errors, by class name. */
  rejected: Map<string, number>;
  slowestMs: number;
}

export const rejectedCount = (t: FuzzTally): number => [...t.rejected.values()].reduce((a, b) => a + b, 0);

export interface FuzzRun {
  /** Names the fuzzer in messages; also its seed offset. */
  name: string;
  seedOffset: number;
  /** Cases to run (use fuzzCaseCount). */
  cases: number;
  /** The error classes a reader may throw for a bad file. */
  typed: readonly (abstract new (
    ...args: never[]
  ) => Error)[];
  /** Runs case i; returns normally when the (mutated) input was read. */
  run: (rng: Random, i: number) => Promise<void> | void;
  /** A case slower than this fails (a hang shows up as the test's own timeout). */
  maxCaseMs?: number;
}

/**
 * Runs every case, failing on the first untyped error, and asserts the tally covers exactly
 * `cases` cases. Prints the seed, the counts by outcome, and the slowest case.
 */
export async function runFuzz(t: TestContext, f: FuzzRun): Promise<FuzzTally> {
  const rng = new Random(FUZZ_SEED * 1_000_003 + f.seedOffset);
  const tally: FuzzTally = { cases: 0, succeeded: 0, rejected: new Map(), slowestMs: 0 };
  const where = (i: number) => `${f.name} case ${i} (XCEPTION_FUZZ_SEED=${FUZZ_SEED})`;
  for (let i = 0; i < f.cases; i++) {
    const start = performance.now();
    try {
      await f.run(rng, i);
      tally.succeeded++;
    } catch (e) {
      const cls = f.typed.find((c) => e instanceof c);
      if (!cls) {
        const err = e as Error;
        throw new Error(
          `${where(i)}: ${err?.constructor?.name ?? typeof e} is not a typed error: ${err?.message ?? String(e)}\n${err?.stack ?? ''}`,
        );
      }
      const name = (e as Error).constructor.name;
      tally.rejected.set(name, (tally.rejected.get(name) ?? 0) + 1);
    }
    const ms = performance.now() - start;
    tally.slowestMs = Math.max(tally.slowestMs, ms);
    if (f.maxCaseMs !== undefined) assert.ok(ms <= f.maxCaseMs, `${where(i)} took ${ms.toFixed(0)} ms (limit ${f.maxCaseMs})`);
    tally.cases++;
  }
  assert.equal(tally.cases, f.cases, `${f.name}: ran ${tally.cases} of ${f.cases} cases`);
  assert.equal(tally.succeeded + rejectedCount(tally), f.cases);
  const byError = [...tally.rejected].map(([k, v]) => `${v} ${k}`).join(', ') || 'none';
  t.diagnostic(
    `${f.name}: seed ${FUZZ_SEED}, ${tally.cases} cases: ${tally.succeeded} read, rejected ${byError}; slowest ${tally.slowestMs.toFixed(0)} ms`,
  );
  return tally;
}

/** Statistical checks of a tally (most cases rejected, both outcomes seen) need this many cases. */
export const hasEnoughCases = (tally: FuzzTally): boolean => tally.cases >= 100;

/** Asserts a fuzzer ran at least `minimum` cases when run with its default count. */
export function assertAtLeast(tally: FuzzTally, minimum: number, name: string): void {
  if (process.env['XCEPTION_FUZZ_CASES'] === undefined || process.env['XCEPTION_FUZZ_CASES'] === '') {
    assert.ok(tally.cases >= minimum, `${name}: only ${tally.cases} cases, at least ${minimum} required`);
  }
}

/** CRC-32 as PNG chunks use it. */
export function crc32(bytes: Uint8Array): number {
  let crc = ~0;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

/** Recomputes the CRC of every whole PNG chunk, so edits inside chunks reach the decoder. */
export function fixPngCrcs(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let at = 8; at + 12 <= out.length; ) {
    const len = view.getUint32(at);
    if (at + 12 + len > out.length) break;
    view.setUint32(at + 8 + len, crc32(out.subarray(at + 4, at + 8 + len)));
    at += 12 + len;
  }
  return out;
}

/**
 * safetensors header edits: one to three JSON tokens of the header (numbers and strings:
 * shapes, offsets, names, dtypes, metadata) replaced, the length prefix kept consistent so the
 * edit reaches the parser rather than the length check.
 */
export function editSafetensorsHeader(rng: Random, bytes: Uint8Array): Uint8Array {
  if (bytes.length < 8) return bytes;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8) return bytes;
  let text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const numbers = ['0', '1', '-1', '4', '7', '1e300', '4294967296', '9007199254740993', '1.5', 'null', '[]', '{}', '"F16"'];
  const strings = [
    '"__proto__"',
    '"constructor"',
    '"prototype"',
    '""',
    '"model/__proto__"',
    '"optimizer/0/__proto__"',
    '"optimizer/99/w"',
    '"ema/constructor"',
    '"x"',
    '"{\\"step\\":1}"',
    '"null"',
    '1',
  ];
  for (let i = 0, k = 1 + rng.int(3); i < k; i++) {
    const tokens = [...text.matchAll(/-?\d+(\.\d+)?|"(?:[^"\\]|\\.)*"/g)];
    if (tokens.length === 0) return bytes;
    const tok = tokens[rng.int(tokens.length)]!;
    const pool = tok[0].startsWith('"') ? strings : numbers;
    text = text.slice(0, tok.index) + pool[rng.int(pool.length)]! + text.slice(tok.index! + tok[0].length);
  }
  const header = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + header.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(bytes.subarray(8 + n), 8 + header.length);
  return out;
}
