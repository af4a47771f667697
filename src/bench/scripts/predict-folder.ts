/**
 * Prediction over a folder of photos: does decoding keep up with inference? Writes N JPEG photos
 * (mixed sizes and aspect ratios, textured so decoding costs what a photo's does) to a temp dir,
 * then times, in one process:
 *   - the compiled batch plan alone on preprocessed tensors (images/s),
 *   - predictImages over the files (decode + resize + inference, images/s),
 *   alternating the two in rounds over slices of the files,
 *   - decoding alone (imageInputs over all files, no inference).
 * and prints predictImages' rate as a fraction of the plan's (target ≥ 0.8).
 * Run: `npx tsc -p tsconfig.json && node dist/src/bench/scripts/predict-folder.js [images=1000] [batch=8]
 *   [decodeConcurrency=8] [resize=stretch|center-crop] [interpolation=nearest|bilinear]`
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Random } from '../../core/random.js';
import type { ImagePreprocessing, ResizeInterpolation, ResizePolicy } from '../../data/image-preprocessing.js';
import { cachedCompiledInference } from '../../infer/auto.js';
import { imageInputs, predictImages, xception } from '../../index.js';

const count = Number(process.argv[2] ?? 1000);
const batch = Number(process.argv[3] ?? 8);
const decodeConcurrency = Number(process.argv[4] ?? 8);
const prep: ImagePreprocessing = {
  resize: (process.argv[5] ?? 'stretch') as ResizePolicy,
  interpolation: (process.argv[6] ?? 'nearest') as ResizeInterpolation,
  scaling: 'xception',
};

/** A photo-like JPEG: random blobs (low-res noise upscaled smoothly) plus fine grain. */
async function writePhoto(file: string, width: number, height: number): Promise<void> {
  const lw = Math.ceil(width / 8),
    lh = Math.ceil(height / 8);
  const blobs = await sharp(randomBytes(lw * lh * 3), { raw: { width: lw, height: lh, channels: 3 } })
    .resize(width, height, { kernel: 'cubic' })
    .raw()
    .toBuffer();
  const grain = randomBytes(width * height * 3);
  for (let i = 0; i < blobs.length; i++) blobs[i] = Math.min(255, Math.max(0, blobs[i]! + ((grain[i]! & 15) - 8)));
  await sharp(blobs, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 88 })
    .toFile(file);
}

const dir = mkdtempSync(path.join(tmpdir(), 'xception-predict-bench-'));
try {
  const rng = new Random(13);
  const files: string[] = [];
  let pixels = 0;
  let t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const long = 300 + rng.int(901);
    const short = Math.max(200, Math.round(long * rng.uniform(0.5, 1)));
    const [w, h] = rng.next() < 0.5 ? [long, short] : [short, long];
    const file = path.join(dir, `photo_${String(i).padStart(5, '0')}.jpg`);
    await writePhoto(file, w, h);
    files.push(file);
    pixels += w * h;
  }
  console.log(
    `${count} JPEGs, mean ${(pixels / count / 1e6).toFixed(2)} Mpx, written in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  const model = xception();
  const plan = cachedCompiledInference(model, batch, false);
  if (!plan) throw new Error('no compiled plan: this benchmark needs the native (onednn) backend');
  const inputs = Float32Array.from({ length: batch * 299 * 299 * 3 }, (_, i) => Math.sin(i));
  const planRate = (runs: number): number => {
    const start = performance.now();
    for (let i = 0; i < runs; i++) plan.runData(inputs);
    return (runs * batch) / ((performance.now() - start) / 1000);
  };
  planRate(2); // warm-up
  // Rounds alternate the plan alone and predictImages on a slice of the files, so both see the
  // same machine load (other processes come and go); the median of the rounds' ratios is reported.
  const rounds = Math.max(1, Math.min(10, Math.floor(files.length / (batch * 4))));
  const perRound = Math.floor(files.length / rounds / batch) * batch;
  const ratios: number[] = [],
    planRates: number[] = [],
    predictRates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const slice = files.slice(r * perRound, (r + 1) * perRound);
    const planImagesPerSecond = planRate(slice.length / batch);
    t0 = performance.now();
    const results = await predictImages(model, slice, { batchSize: batch, decodeConcurrency, preprocessing: prep, top: 1 });
    const predictImagesPerSecond = slice.length / ((performance.now() - t0) / 1000);
    const failed = results.find((x) => x.error !== undefined);
    if (failed) throw new Error(`an image failed: ${failed.error}`);
    planRates.push(planImagesPerSecond);
    predictRates.push(predictImagesPerSecond);
    ratios.push(predictImagesPerSecond / planImagesPerSecond);
  }

  t0 = performance.now();
  for (let s = 0; s < files.length; s += batch) await imageInputs(files.slice(s, s + batch), [299, 299, 3], prep, decodeConcurrency);
  const decodeRate = files.length / ((performance.now() - t0) / 1000);

  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
  const list = (v: number[]) => v.map((x) => x.toFixed(2)).join(' ');
  console.log(
    `preprocessing ${prep.resize}/${prep.interpolation}, batch ${batch}, decode concurrency ${decodeConcurrency}, UV_THREADPOOL_SIZE ${process.env['UV_THREADPOOL_SIZE'] ?? '4 (default)'}, ${rounds} rounds of ${perRound} images`,
  );
  console.log(`compiled plan alone:  median ${median(planRates).toFixed(2)} images/s  (rounds: ${list(planRates)})`);
  console.log(`predictImages:        median ${median(predictRates).toFixed(2)} images/s  (rounds: ${list(predictRates)})`);
  console.log(`decoding alone:       ${decodeRate.toFixed(2)} images/s`);
  console.log(`ratio predictImages / plan: median ${median(ratios).toFixed(3)} (target ≥ 0.8)  (rounds: ${list(ratios)})`);
  model.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
