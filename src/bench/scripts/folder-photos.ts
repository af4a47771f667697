/**
 * Writes a folder of synthetic JPEG "photos" for the folder benchmarks: DIR/<class>/<n>.jpg with
 * sides drawn from [minSide, maxSide] (random aspect), content of waves plus noise so JPEG
 * decoding costs what a photo's would (flat images decode unrealistically fast).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Random } from '../../core/random.js';

export interface PhotoFolderOptions {
  count: number;
  classes: number;
  minSide: number;
  maxSide: number;
  seed?: number;
  quality?: number;
  /** Encode only this many distinct photos and repeat their bytes under new names (default all distinct). */
  distinct?: number;
}

export async function writePhotoFolder(dir: string, o: PhotoFolderOptions): Promise<{ bytes: number; pixels: number }> {
  const rng = new Random(o.seed ?? 1);
  for (let k = 0; k < o.classes; k++) mkdirSync(join(dir, `class${String(k).padStart(3, '0')}`), { recursive: true });
  let bytes = 0,
    pixels = 0;
  const encoded: { jpeg: Buffer; pixels: number }[] = [];
  const distinct = o.distinct ?? o.count;
  for (let n = 0; n < o.count; n++) {
    const file = join(dir, `class${String(n % o.classes).padStart(3, '0')}`, `${String(n).padStart(6, '0')}.jpg`);
    if (n >= distinct) {
      const again = encoded[n % distinct]!;
      writeFileSync(file, again.jpeg);
      bytes += again.jpeg.length;
      pixels += again.pixels;
      continue;
    }
    const w = o.minSide + rng.int(o.maxSide - o.minSide + 1);
    const h = o.minSide + rng.int(o.maxSide - o.minSide + 1);
    const raw = Buffer.alloc(w * h * 3);
    const f = [rng.uniform(0.01, 0.2), rng.uniform(0.01, 0.2), rng.uniform(0, 6.3)];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const wave = 70 * Math.sin(x * f[0]! + y * f[1]! + f[2]!);
        for (let c = 0; c < 3; c++)
          raw[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, 128 + wave * (c === 1 ? -1 : 1) + (rng.next() - 0.5) * 80));
      }
    }
    const jpeg = await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
      .jpeg({ quality: o.quality ?? 85 })
      .toBuffer();
    writeFileSync(file, jpeg);
    if (distinct < o.count) encoded.push({ jpeg, pixels: w * h });
    bytes += jpeg.length;
    pixels += w * h;
  }
  return { bytes, pixels };
}
