/**
 * Transfer learning on Fashion-MNIST, the Keras recipe against training from scratch.
 *
 * A small-image Xception (stem small, the main job's width 0.25 and 2 middle blocks) is trained
 * on five Fashion-MNIST classes (T-shirt/top … Coat). The other five (Sandal … Ankle boot) are
 * written as an image folder of PNGs (DIR/train/<class>/*.png, DIR/test/<class>/*.png), and on
 * that folder:
 *   (a) head training: the five-class run's weights, classifier replaced, base frozen;
 *   (b) fine-tuning after it, in the same run: everything unfrozen, batch norm in inference mode;
 *   (c) the same network from scratch, for (about) the wall time of (a) + (b).
 * Prints the three test accuracies and times; every figure comes from the runs' own records.
 *
 * Run: `npx tsc -p tsconfig.json && node dist/src/bench/scripts/transfer-fashion.js [--work DIR] [--train-per-class 1000]
 *       [--test-per-class 200] [--source-per-class 2000] [--source-epochs 4] [--head-epochs 2]
 *       [--fine-tune-epochs 3] [--fine-tune-lr 1e-4] [--reuse]`
 * Needs Debian's dataset-fashion-mnist; the work folder (default: a fresh one under /tmp) keeps
 * the image folders and the run folders; `--reuse` with the same --work keeps its image folders
 * and five-class run and redoes only (a), (b) and (c).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { DEFAULT_TRAIN_CONFIG, train, type TrainConfig, type TrainResult } from '../../index.js';
import type { ImageDataset } from '../../data/dataset.js';
import { loadFashionMnist } from '../../data/idx.js';
import { Progress } from '../../train/progress.js';

const { values: flags } = parseArgs({
  options: {
    work: { type: 'string' },
    'train-per-class': { type: 'string' },
    'test-per-class': { type: 'string' },
    'source-per-class': { type: 'string' },
    'source-epochs': { type: 'string' },
    'head-epochs': { type: 'string' },
    'fine-tune-epochs': { type: 'string' },
    'fine-tune-lr': { type: 'string' },
    reuse: { type: 'boolean' },
  },
});
const num = (name: keyof typeof flags, dflt: number): number => (flags[name] === undefined ? dflt : Number(flags[name]));
const settings = {
  trainPerClass: num('train-per-class', 1000),
  testPerClass: num('test-per-class', 200),
  sourcePerClass: num('source-per-class', 2000),
  sourceEpochs: num('source-epochs', 4),
  headEpochs: num('head-epochs', 2),
  fineTuneEpochs: num('fine-tune-epochs', 3),
  fineTuneLr: num('fine-tune-lr', 1e-4),
};
const work = flags.work ?? mkdtempSync(join(tmpdir(), 'xception-transfer-'));
const SOURCE_CLASSES = [0, 1, 2, 3, 4];
const TARGET_CLASSES = [5, 6, 7, 8, 9];

/** Writes the first `perClass` images of each class as 28×28 grey PNGs under dir/<class name>/. */
async function writePngFolder(ds: ImageDataset, classes: number[], perClass: number, dir: string): Promise<number> {
  const side = ds.height * ds.width;
  const taken = new Map(classes.map((k) => [k, 0]));
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < ds.count; i++) {
    const k = ds.labels[i]!;
    const n = taken.get(k);
    if (n === undefined || n >= perClass) continue;
    taken.set(k, n + 1);
    const folder = join(dir, ds.classNames![k]!.replace(/[^A-Za-z0-9 _-]/g, '-'));
    if (n === 0) mkdirSync(folder, { recursive: true });
    const pixels = ds.images.subarray(i * side, (i + 1) * side);
    writes.push(
      sharp(Buffer.from(pixels), { raw: { width: ds.width, height: ds.height, channels: 1 } })
        .png()
        .toFile(join(folder, `${String(i).padStart(5, '0')}.png`)),
    );
    if (writes.length >= 64) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
  return [...taken.values()].reduce((a, b) => a + b, 0);
}

const quietSteps = new Progress({ write: (s: string) => (/^epoch \d+\/\d+ batch/.test(s) ? true : process.stderr.write(s)) });

/** The main job's network and schedule on an image folder of 28×28 images. */
function folderConfig(dir: string, out: string, over: Partial<TrainConfig>): TrainConfig {
  return { ...DEFAULT_TRAIN_CONFIG, dataset: `folder:${dir}`, imageSize: 28, batchSize: 64, outDir: join(work, out), ...over };
}

function line(label: string, _r: TrainResult, seconds: number, top1: number): string {
  return `${label.padEnd(34)} test top-1 ${(100 * top1).toFixed(2).padStart(6)}%   ${seconds.toFixed(1).padStart(6)} s`;
}

const sourceDir = join(work, 'source'),
  targetDir = join(work, 'target');
const reuse = Boolean(flags.reuse);
if (reuse && !existsSync(join(work, 'source-run', 'checkpoint.safetensors')))
  throw new Error(`--reuse: ${work} holds no earlier five-class run`);
console.log(`settings ${JSON.stringify(settings)}`);
if (!reuse) {
  const fashionTrain = await loadFashionMnist('train');
  const fashionTest = await loadFashionMnist('test');
  const counts = {
    source: await writePngFolder(fashionTrain, SOURCE_CLASSES, settings.sourcePerClass, join(sourceDir, 'train')),
    sourceTest: await writePngFolder(fashionTest, SOURCE_CLASSES, settings.testPerClass, join(sourceDir, 'test')),
    target: await writePngFolder(fashionTrain, TARGET_CLASSES, settings.trainPerClass, join(targetDir, 'train')),
    targetTest: await writePngFolder(fashionTest, TARGET_CLASSES, settings.testPerClass, join(targetDir, 'test')),
  };
  console.log(
    `work folder ${work}: source ${counts.source} train / ${counts.sourceTest} test PNGs, target ${counts.target} / ${counts.targetTest}`,
  );
  const source = await train(folderConfig(sourceDir, 'source-run', { epochs: settings.sourceEpochs }), { progress: quietSteps });
  console.log(
    `source: 5 classes, ${counts.source} images, ${settings.sourceEpochs} epochs: test top-1 ${(100 * source.testTop1).toFixed(2)}% in ${source.wallSeconds.toFixed(1)} s`,
  );
}
for (const run of ['transfer-run', 'scratch-probe', 'scratch-run']) rmSync(join(work, run), { recursive: true, force: true });

// (a) + (b): one run; Adam, as the Keras guide (1e-3 for the head, a low constant rate after).
const transfer = await train(
  folderConfig(targetDir, 'transfer-run', {
    modelOptions: {},
    weights: join(work, 'source-run'),
    freezeBase: true,
    epochs: settings.headEpochs,
    fineTuneEpochs: settings.fineTuneEpochs,
    fineTuneLr: settings.fineTuneLr,
    optimizer: 'adam',
    nesterov: false,
    lr: 1e-3,
    schedule: 'constant',
    labelSmoothing: 0,
  }),
  { progress: quietSteps },
);
const lastHead = transfer.history.filter((r) => r.phase === 'head').at(-1)!;
const headSeconds = lastHead.wallSeconds;
const fineSeconds = transfer.wallSeconds - headSeconds;

// (c): from scratch, as many epochs as fit in the time of (a) + (b), on the main job's one-cycle
// schedule. The epoch time is measured by a one-epoch probe just before (the machine's load moves).
const probe = await train(folderConfig(targetDir, 'scratch-probe', { epochs: 1 }), { progress: quietSteps });
const scratchEpochs = Math.max(1, Math.round(transfer.wallSeconds / probe.wallSeconds));
const scratch = await train(folderConfig(targetDir, 'scratch-run', { epochs: scratchEpochs }), { progress: quietSteps });

console.log('');
console.log(line(`(a) head, frozen base, ${settings.headEpochs} ep`, transfer, headSeconds, lastHead.evalTop1));
console.log(line(`    fine-tuning alone`, transfer, fineSeconds, transfer.testTop1));
console.log(
  line(`(b) + fine-tune ${settings.fineTuneEpochs} ep at ${settings.fineTuneLr}`, transfer, transfer.wallSeconds, transfer.testTop1),
);
console.log(line(`(c) from scratch, ${scratchEpochs} ep`, scratch, scratch.wallSeconds, scratch.testTop1));
console.log(`times are each run's wall time (training and per-epoch evaluation; (b) includes (a)); backend ${transfer.backend}`);
