/**
 * Can the streaming folder loader keep a 299×299 Xception fed? In one process:
 *   1. writes N synthetic JPEG photos (sides 300–1200 px, random aspect, textured) to a temp dir;
 *   2. times the StreamLoader alone delivering 299×299 batches of 8 with random-resized crop +
 *      flip (images/s);
 *   3. times full Xception (Keras size, 1000 classes) training steps at batch 8, 299×299, on the
 *      native backend (images/s), and prints the ratio loader / step (target ≥ 4);
 *   4. trains for real on the folder (xception train's code path) and prints the data-wait share
 *      of the step loop (target ≤ 5%).
 * Run: `npx tsc -p tsconfig.json && node dist/src/bench/scripts/folder-loader.js [photos=160] [steps=4] [trainImages=48]`
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as X from '../../index.js';
import { listImageFolder } from '../../data/folder.js';
import { trainingPreprocessing } from '../../data/image-preprocessing.js';
import { StreamLoader } from '../../data/stream-loader.js';
import { softmaxCrossEntropy } from '../../core/ops/loss.js';
import { Progress } from '../../train/progress.js';
import { writePhotoFolder } from './folder-photos.js';

const photos = Number(process.argv[2] ?? 160);
const steps = Number(process.argv[3] ?? 4);
const trainImages = Number(process.argv[4] ?? 48);
const BATCH = 8,
  SIZE = 299;

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

async function loaderImagesPerSec(dir: string): Promise<number> {
  const listing = await listImageFolder(dir);
  const loader = new StreamLoader(listing, {
    batchSize: BATCH,
    shape: [SIZE, SIZE, 3],
    preprocessing: trainingPreprocessing('xception'),
    seed: 1,
    augment: { randomResizedCrop: true, horizontalFlip: true },
  });
  const t0 = process.hrtime.bigint();
  let images = 0;
  for await (const b of loader.epochBatches()) images += b.size;
  return images / seconds(t0);
}

function trainStepImagesPerSec(): number {
  X.setBackend('native');
  const model = X.xception({ inputShape: [SIZE, SIZE, 3], classes: 1000 });
  const opt = new X.Optimizer('sgd', { lr: 0.01, momentum: 0.9, nesterov: true });
  const rng = new X.Random(1);
  const x = Float32Array.from({ length: BATCH * SIZE * SIZE * 3 }, () => rng.uniform(-1, 1));
  const y = Int32Array.from({ length: BATCH }, () => rng.int(1000));
  const step = () =>
    X.tidy(() => {
      const out = model.forward(X.tensor(x, [BATCH, SIZE, SIZE, 3]), { training: true, logits: true });
      const loss = softmaxCrossEntropy(out, y);
      loss.item();
      X.backward(loss, { release: true });
      opt.apply(model.weights);
    });
  step(); // warm-up: first-call allocations and primitive creation
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) step();
  const rate = (steps * BATCH) / seconds(t0);
  opt.disposeSlots();
  model.dispose();
  return rate;
}

async function realTrainingDataWait(data: string, out: string): Promise<{ dataWait: number; imagesPerSec: number }> {
  const r = await X.train(
    {
      ...X.DEFAULT_TRAIN_CONFIG,
      dataset: `folder:${data}`,
      modelOptions: { stem: 'imagenet', width: 1, middleBlocks: 8 },
      epochs: 1,
      batchSize: BATCH,
      imageSize: SIZE,
      limitTrain: trainImages,
      lr: 0.01,
      schedule: 'constant',
      augment: { cropPadding: 0, flip: true, randomResizedCrop: true },
      outDir: out,
    },
    { backend: 'native', progress: new Progress(process.stderr) },
  );
  return { dataWait: r.history[0]!.dataWait, imagesPerSec: r.imagesPerSec };
}

const dir = mkdtempSync(join(tmpdir(), 'xception-folder-bench-'));
try {
  let t0 = process.hrtime.bigint();
  const { bytes, pixels } = await writePhotoFolder(join(dir, 'photos'), { count: photos, classes: 4, minSide: 300, maxSide: 1200 });
  console.log(
    `${photos} JPEG photos, ${(bytes / photos / 1024).toFixed(0)} KiB and ${(pixels / photos / 1e6).toFixed(2)} Mpixel on average (written in ${seconds(t0).toFixed(1)} s)`,
  );
  t0 = process.hrtime.bigint();
  const loaderRate = await loaderImagesPerSec(join(dir, 'photos'));
  console.log(
    `loader alone: ${loaderRate.toFixed(1)} images/s (299×299, batch 8, random-resized crop + flip, ${seconds(t0).toFixed(1)} s)`,
  );
  const stepRate = trainStepImagesPerSec();
  console.log(`training step, full Xception 299×299 batch 8, native: ${stepRate.toFixed(2)} images/s (${steps} steps after a warm-up)`);
  console.log(`ratio loader / step: ${(loaderRate / stepRate).toFixed(1)}× (target ≥ 4×)`);
  const real = await realTrainingDataWait(join(dir, 'photos'), join(dir, 'run'));
  console.log(
    `real training (${trainImages} images, 1 epoch): ${real.imagesPerSec.toFixed(2)} images/s in steps, data wait ${(100 * real.dataWait).toFixed(1)}% of the step loop (target ≤ 5%)`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
