/** Writers for small dataset files in a temporary directory, used by the data tests. */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export function makeTempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `xception-data-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** IDX bytes: magic [0, 0, type, ndims], big-endian sizes, data. */
export function idxBytes(shape: number[], data: ArrayLike<number>, type = 0x08): Buffer {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = type;
  header[3] = shape.length;
  shape.forEach((s, d) => header.writeUInt32BE(s, 4 + 4 * d));
  return Buffer.concat([header, Buffer.from(Uint8Array.from(data))]);
}

export function writeFile(path: string, bytes: Uint8Array | string, gzip = false): string {
  const body = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  const file = gzip ? `${path}.gz` : path;
  writeFileSync(file, gzip ? gzipSync(body) : body);
  return file;
}

/** Deterministic test pixels: image n, row y, column x, channel c. */
export function pixel(n: number, y: number, x: number, c = 0): number {
  return (n * 37 + y * 11 + x * 5 + c * 71) % 256;
}

export function makeImages(n: number, h: number, w: number, c = 1): Uint8Array {
  const out = new Uint8Array(n * h * w * c);
  let i = 0;
  for (let k = 0; k < n; k++)
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) out[i++] = pixel(k, y, x, ch);
  return out;
}

/** Writes the four MNIST-style files of both splits. */
export function writeIdxDataset(
  dir: string,
  opts: { trainCount?: number; testCount?: number; h?: number; w?: number; gzip?: boolean; classes?: number } = {},
): void {
  mkdirSync(dir, { recursive: true });
  const { trainCount = 6, testCount = 3, h = 4, w = 3, gzip = false, classes = 10 } = opts;
  for (const [prefix, n] of [
    ['train', trainCount],
    ['t10k', testCount],
  ] as const) {
    writeFile(join(dir, `${prefix}-images-idx3-ubyte`), idxBytes([n, h, w], makeImages(n, h, w)), gzip);
    writeFile(
      join(dir, `${prefix}-labels-idx1-ubyte`),
      idxBytes(
        [n],
        Array.from({ length: n }, (_, i) => i % classes),
      ),
      gzip,
    );
  }
}

/**
 * A CIFAR binary batch of `n` records; pixel (y, x, c) of record r is pixel(r, y, x, c), stored
 * planar as the format requires. Labels: fine = (r·3) % classes, coarse (CIFAR-100) = 19 − r%20.
 */
export function cifarBatch(n: number, variant: 'cifar10' | 'cifar100', labelOffset = 0): Buffer {
  const labelBytes = variant === 'cifar10' ? 1 : 2;
  const classes = variant === 'cifar10' ? 10 : 100;
  const rec = labelBytes + 3072;
  const buf = Buffer.alloc(n * rec);
  for (let r = 0; r < n; r++) {
    const base = r * rec;
    const fine = (r * 3 + labelOffset) % classes;
    if (variant === 'cifar100') buf[base] = 19 - (r % 20);
    buf[base + labelBytes - 1] = fine;
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++) {
          buf[base + labelBytes + c * 1024 + y * 32 + x] = pixel(r + labelOffset, y, x, c);
        }
  }
  return buf;
}

/**
 * Writes `root/<class>/<class>-<i>.png` for each class, `count` images each: w×h RGB images with
 * sides varying from `size` to 2·size, whose pixels depend on the class, the image and the
 * position (so crops, flips and resizes all change the result). Returns the files, sorted.
 */
export async function writeImageFolder(root: string, classes: Record<string, number>, size = 8): Promise<string[]> {
  const sharp = (await import('sharp')).default;
  const files: string[] = [];
  let n = 0;
  for (const [name, count] of Object.entries(classes)) {
    mkdirSync(join(root, name), { recursive: true });
    for (let i = 0; i < count; i++, n++) {
      const w = size + ((n * 5) % (size + 1)),
        h = size + ((n * 3) % (size + 1));
      const raw = Buffer.alloc(w * h * 3);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) raw[(y * w + x) * 3 + c] = pixel(n, y, x, c);
      const file = join(root, name, `${name}-${String(i).padStart(3, '0')}.png`);
      await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
        .png()
        .toFile(file);
      files.push(file);
    }
  }
  return files.sort();
}
