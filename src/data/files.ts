/** Small file helpers shared by the readers: existence checks and gzip-aware reading. */
import { promises as fs } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { DatasetError } from './errors.js';

/** Runs task(0), …, task(count − 1), at most `limit` at a time (e.g. image decodes on sharp's threads). */
export async function forEachConcurrently(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isFile();
  } catch {
    return false;
  }
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** The first of `candidates` that is a regular file, or undefined. */
export async function firstExisting(candidates: readonly string[]): Promise<string | undefined> {
  for (const c of candidates) if (await isFile(c)) return c;
  return undefined;
}

export async function readWholeFile(path: string): Promise<Buffer> {
  try {
    return await fs.readFile(path);
  } catch (e) {
    throw new DatasetError(`cannot read file: ${(e as Error).message}`, path);
  }
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decompresses gzip data, stopping as soon as the output passes `maxBytes` (so a corrupt or
 * hostile file can never make us hold more than the caller expects). Returns the bytes produced,
 * at most maxBytes + 1; callers compare the length with what they expected.
 */
export async function gunzipBounded(compressed: Uint8Array, maxBytes: number, file: string): Promise<Buffer> {
  const gunzip = createGunzip();
  const chunks: Buffer[] = [];
  let total = 0;
  const done = new Promise<void>((resolve, reject) => {
    gunzip.on('data', (chunk: Buffer) => {
      if (total > maxBytes) return;
      const keep = Math.min(chunk.length, maxBytes + 1 - total);
      chunks.push(keep === chunk.length ? chunk : chunk.subarray(0, keep));
      total += keep;
      if (total > maxBytes) {
        gunzip.destroy();
        resolve();
      }
    });
    gunzip.on('end', () => resolve());
    gunzip.on('close', () => resolve());
    gunzip.on('error', (e: Error) => reject(new DatasetError(`gzip data is truncated or corrupt (${e.message})`, file)));
  });
  gunzip.end(compressed);
  await done;
  return Buffer.concat(chunks, total);
}
