/**
 * safetensors files in Node: the format itself (bytes <-> weights) is in safetensors-format.ts;
 * this module reads and writes files, and hashes with node:crypto's SHA-256.
 */
import * as fsp from 'node:fs/promises';
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { WeightFileError } from './errors.js';
import { writeFileAtomic, writeFileAtomicSync } from './atomic.js';
import {
  MAX_HEADER_BYTES,
  METADATA_KEY,
  readHeader,
  readMetadata,
  readSafetensors,
  writeSafetensors,
  type Fail,
  type SafetensorsContents,
} from './safetensors-format.js';
import { useNodeSha256 } from './sha256-node.js';
import type { NamedWeight } from './weights.js';

useNodeSha256();

export {
  DATA_SHA256_KEY,
  readSafetensors,
  tensorDataSha256,
  writeSafetensors,
  type SafetensorsContents,
} from './safetensors-format.js';

/** Writes a safetensors file atomically (temp file in the same directory, fsync, rename). */
export async function writeSafetensorsFile(
  path: string,
  weights: readonly NamedWeight[],
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, writeSafetensors(weights, metadata, path));
}

export function writeSafetensorsFileSync(path: string, weights: readonly NamedWeight[], metadata?: Record<string, string>): void {
  writeFileAtomicSync(path, writeSafetensors(weights, metadata, path));
}

/**
 * The metadata of a safetensors file, read from its header alone (the data is neither read nor
 * checked; DATA_SHA256_KEY is included as recorded). Throws WeightFileError like the full reader.
 */
export function readSafetensorsMetadataSync(path: string): Record<string, string> {
  const fail: Fail = (problem) => {
    throw new WeightFileError(path, problem);
  };
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const prefix = new Uint8Array(8);
    if (size < 8 || readSync(fd, prefix, 0, 8, 0) !== 8) fail(`file is ${size} bytes, too short for the 8-byte header length`);
    const headerLen = new DataView(prefix.buffer).getBigUint64(0, true);
    if (headerLen > BigInt(Math.min(size - 8, MAX_HEADER_BYTES)))
      fail(`header length ${headerLen} exceeds the file or the ${MAX_HEADER_BYTES}-byte limit`);
    const head = new Uint8Array(8 + Number(headerLen));
    head.set(prefix);
    if (readSync(fd, head, 8, head.length - 8, 8) !== head.length - 8) fail('the header could not be read whole');
    const { header } = readHeader(head, fail);
    return header[METADATA_KEY] === undefined ? {} : readMetadata(header[METADATA_KEY], fail);
  } catch (e) {
    if (e instanceof WeightFileError) throw e;
    throw new WeightFileError(path, `cannot read file (${(e as Error).message})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export async function readSafetensorsFile(path: string): Promise<SafetensorsContents> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(path);
  } catch (e) {
    throw new WeightFileError(path, `cannot read file (${(e as Error).message})`);
  }
  return readSafetensors(bytes, path);
}

export function readSafetensorsFileSync(path: string): SafetensorsContents {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new WeightFileError(path, `cannot read file (${(e as Error).message})`);
  }
  return readSafetensors(bytes, path);
}
