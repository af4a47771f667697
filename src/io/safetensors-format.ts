/**
 * safetensors: the project's own weight and checkpoint format (https://github.com/huggingface/safetensors).
 *
 *   [8 bytes: header length N, little-endian u64][N bytes: JSON header][data buffer]
 *
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative
 * to the data buffer) plus an optional "__metadata__" map of strings to strings. Only F32 is
 * supported here. Everything in the header is checked before any tensor memory is allocated, so
 * a corrupt or hostile file costs at most its own size in memory.
 *
 * Files written here record the SHA-256 of their data buffer in the metadata (DATA_SHA256_KEY);
 * the reader checks it, so a flipped bit in tensor data is an error rather than a silently wrong
 * weight. Files without it (written elsewhere) load as before.
 *
 * This module works on bytes only (no Node built-ins), so the browser build uses it as it is;
 * safetensors.ts adds the file functions for Node.
 */
import { isReservedKey } from '../core/safe-keys.js';
import { WeightFileError } from './errors.js';
import { sha256Hasher } from './sha256.js';
import { elementCount, type NamedWeight, shapeText } from './weights.js';

export interface SafetensorsContents {
  weights: NamedWeight[];
  /** The file's metadata, without DATA_SHA256_KEY (see dataSha256). */
  metadata: Record<string, string>;
  /** The data buffer's SHA-256 (hex) when the file records one; it has been checked. */
  dataSha256?: string;
}

export const METADATA_KEY = '__metadata__';
/** Metadata key of the data buffer's SHA-256 (lowercase hex), written and checked here. */
export const DATA_SHA256_KEY = 'data_sha256';
/** Same cap as the reference implementation: a header is JSON, it has no business being bigger. */
export const MAX_HEADER_BYTES = 100_000_000;
const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Serializes weights (in the given order) and optional string metadata. */
export function writeSafetensors(
  weights: readonly NamedWeight[],
  metadata?: Record<string, string>,
  fileLabel = '<safetensors>',
): Uint8Array {
  // The header text is assembled by hand: JSON.stringify of an object would move integer-like
  // names ("7") to the front, and the header order is the order readers report.
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== 'string') throw new WeightFileError(fileLabel, `metadata value for "${k}" must be a string, got ${typeof v}`);
  }
  // parts[0], the metadata, is filled in once the weights are checked: its hash reads their data.
  const parts: string[] = [''];
  const seen = new Set<string>();
  let offset = 0;
  for (const w of weights) {
    if (typeof w.name !== 'string' || w.name.length === 0) throw new WeightFileError(fileLabel, 'a weight has an empty name');
    if (w.name === METADATA_KEY) throw new WeightFileError(fileLabel, `"${METADATA_KEY}" is reserved and cannot name a weight`);
    if (seen.has(w.name)) throw new WeightFileError(fileLabel, `duplicate weight name "${w.name}"`);
    seen.add(w.name);
    if (!(w.data instanceof Float32Array)) throw new WeightFileError(fileLabel, `weight "${w.name}": data must be a Float32Array`);
    const n = elementCount(w.shape);
    if (n < 0)
      throw new WeightFileError(fileLabel, `weight "${w.name}": shape ${shapeText(w.shape)} is not a list of non-negative integers`);
    if (n !== w.data.length)
      throw new WeightFileError(
        fileLabel,
        `weight "${w.name}": shape ${shapeText(w.shape)} holds ${n} values but data has ${w.data.length}`,
      );
    parts.push(
      `${JSON.stringify(w.name)}:${JSON.stringify({ dtype: 'F32', shape: [...w.shape], data_offsets: [offset, offset + n * 4] })}`,
    );
    offset += n * 4;
  }
  parts[0] = `${JSON.stringify(METADATA_KEY)}:${JSON.stringify({ ...metadata, [DATA_SHA256_KEY]: tensorDataSha256(weights) })}`;
  let json = new TextEncoder().encode(`{${parts.join(',')}}`);
  // Pad the header with spaces so the data buffer starts 8-byte aligned (as the reference writer does).
  const padded = Math.ceil(json.length / 8) * 8;
  const headerBytes = new Uint8Array(padded).fill(0x20);
  headerBytes.set(json);
  json = headerBytes;

  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const w of weights) {
    const bytes = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
    if (IS_LITTLE_ENDIAN) out.set(bytes, pos);
    else {
      const view = new DataView(out.buffer, pos, w.data.byteLength);
      for (let i = 0; i < w.data.length; i++) view.setFloat32(i * 4, w.data[i]!, true);
    }
    pos += w.data.byteLength;
  }
  return out;
}

/** SHA-256 (hex) of the data buffer the weights make: their floats, little-endian, in order. */
export function tensorDataSha256(weights: readonly NamedWeight[]): string {
  const hash = sha256Hasher();
  for (const w of weights) {
    if (IS_LITTLE_ENDIAN) hash.update(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
    else {
      const le = new DataView(new ArrayBuffer(w.data.byteLength));
      for (let i = 0; i < w.data.length; i++) le.setFloat32(i * 4, w.data[i]!, true);
      hash.update(new Uint8Array(le.buffer));
    }
  }
  return hash.digest('hex');
}

interface HeaderEntry {
  name: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Throws WeightFileError for the file being read. */
export type Fail = (problem: string) => never;

/**
 * Parses a safetensors file. Weights come back in header order, each with its own (aligned)
 * copy of the data. Throws WeightFileError naming `fileLabel` for anything malformed.
 */
export function readSafetensors(bytes: Uint8Array, fileLabel = '<safetensors>'): SafetensorsContents {
  const fail: Fail = (problem) => {
    throw new WeightFileError(fileLabel, problem);
  };
  const { text, header, headerLen } = readHeader(bytes, fail);
  // JSON.parse silently keeps the last of duplicate keys and reorders integer-like keys, so the
  // names and their order come from scanning the text itself.
  const names = topLevelKeys(text);
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) fail(`duplicate entry "${name}" in header`);
    seen.add(name);
  }

  const dataStart = 8 + headerLen;
  const dataLength = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const name of names) {
    if (name === METADATA_KEY) metadata = readMetadata(header[name], fail);
    else entries.push(readEntry(name, header[name], dataLength, fail));
  }
  checkTiling(entries, dataLength, fail);
  const { [DATA_SHA256_KEY]: recorded, ...rest } = metadata;
  if (recorded !== undefined) checkDataSha256(recorded, bytes.subarray(dataStart), fail);
  const weights = entries.map((e) => copyWeight(bytes, dataStart, e));
  return { weights, metadata: rest, ...(recorded !== undefined ? { dataSha256: recorded } : {}) };
}

/** The data buffer must hash to the recorded SHA-256: a flipped bit is corruption, not a weight. */
function checkDataSha256(recorded: string, data: Uint8Array, fail: Fail): void {
  if (!/^[0-9a-f]{64}$/.test(recorded))
    fail(`metadata "${DATA_SHA256_KEY}" is not a SHA-256 in hex: ${JSON.stringify(recorded.slice(0, 80))}`);
  const actual = sha256Hasher().update(data).digest('hex');
  if (actual !== recorded) {
    fail(
      `tensor data is corrupt: its SHA-256 is ${actual}, the file records ${recorded} (a damaged disk or copy; restore the file or write it again)`,
    );
  }
}

/** The 8-byte length and the JSON header after it, checked down to being an object. */
export function readHeader(bytes: Uint8Array, fail: Fail): { text: string; header: Record<string, unknown>; headerLen: number } {
  if (!(bytes instanceof Uint8Array)) fail('expected the file contents as a Uint8Array');
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const headerLen64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen64 > BigInt(bytes.length - 8))
    fail(`header length ${headerLen64} exceeds the ${bytes.length - 8} bytes after the length field`);
  const headerLen = Number(headerLen64);
  if (headerLen > MAX_HEADER_BYTES) fail(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (headerLen < 2) fail(`header length ${headerLen} is too short for a JSON object`);

  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    fail('header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) fail('header JSON is not an object');
  return { text, header: parsed as Record<string, unknown>, headerLen };
}

export function readMetadata(value: unknown, fail: Fail): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`"${METADATA_KEY}" must be an object of strings`);
  for (const [k, v] of Object.entries(value as object)) {
    if (typeof v !== 'string') fail(`metadata value for "${k}" is not a string`);
    if (isReservedKey(k)) fail(`metadata key "${k}" is a reserved name`);
  }
  return { ...(value as Record<string, string>) };
}

/** One tensor's header entry: F32, a shape, and offsets that fit the data buffer and the shape. */
function readEntry(name: string, value: unknown, dataLength: number, fail: Fail): HeaderEntry {
  if (name.length === 0) fail('an entry has an empty name');
  if (isReservedKey(name)) fail(`entry "${name}" has a reserved name`);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`entry "${name}" is not an object`);
  const e = value as Record<string, unknown>;
  for (const key of Object.keys(e)) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') fail(`entry "${name}" has unknown field "${key}"`);
  }
  if (typeof e.dtype !== 'string') fail(`entry "${name}" has no dtype`);
  if (e.dtype !== 'F32') fail(`entry "${name}" has dtype ${e.dtype}; only F32 is supported`);
  if (!Array.isArray(e.shape)) fail(`entry "${name}" has no shape list`);
  const shape = e.shape as unknown[];
  const count = elementCount(shape);
  if (count < 0) fail(`entry "${name}" has shape ${JSON.stringify(shape)}, which is not a list of non-negative integers`);
  const offsets = e.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2) fail(`entry "${name}" needs data_offsets [begin, end]`);
  const [begin, end] = offsets as unknown[];
  if (!isByteOffset(begin) || !isByteOffset(end))
    fail(`entry "${name}" has data_offsets ${JSON.stringify(offsets)}, which are not non-negative integers`);
  const b = begin as number;
  const en = end as number;
  if (en < b) fail(`entry "${name}" has data_offsets [${b}, ${en}] with end before begin`);
  if (en > dataLength) fail(`entry "${name}" has data_offsets [${b}, ${en}] beyond the ${dataLength}-byte data buffer`);
  if (en - b !== count * 4)
    fail(
      `entry "${name}" with shape ${shapeText(shape as number[])} needs ${count * 4} bytes but data_offsets [${b}, ${en}] span ${en - b}`,
    );
  return { name, shape: shape as number[], begin: b, end: en };
}

/** The data buffer must be tiled exactly: no overlaps (two tensors sharing bytes), no holes. */
function checkTiling(entries: readonly HeaderEntry[], dataLength: number, fail: Fail): void {
  const byOffset = [...entries].sort((x, y) => x.begin - y.begin || x.end - y.end);
  let cursor = 0;
  for (const e of byOffset) {
    if (e.begin < cursor) fail(`entry "${e.name}" at [${e.begin}, ${e.end}] overlaps the previous tensor ending at ${cursor}`);
    if (e.begin > cursor) fail(`bytes [${cursor}, ${e.begin}) of the data buffer belong to no tensor`);
    cursor = e.end;
  }
  if (cursor !== dataLength) fail(`the data buffer has ${dataLength - cursor} trailing bytes that belong to no tensor`);
}

/** The entry's little-endian floats, copied into an aligned array of its own. */
function copyWeight(bytes: Uint8Array, dataStart: number, e: HeaderEntry): NamedWeight {
  const data = new Float32Array((e.end - e.begin) / 4);
  const src = bytes.subarray(dataStart + e.begin, dataStart + e.end);
  if (IS_LITTLE_ENDIAN) new Uint8Array(data.buffer).set(src);
  else {
    const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
  }
  return { name: e.name, shape: [...e.shape], data };
}

function isByteOffset(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Keys of the top-level object of already-validated JSON text, in order, duplicates included.
 */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      const start = i;
      i++;
      while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      if (depth === 1) {
        let j = i;
        while (j < text.length && /\s/.test(text[j]!)) j++;
        if (text[j] === ':') keys.push(JSON.parse(text.slice(start, i)) as string);
      }
      continue;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    i++;
  }
  return keys;
}
