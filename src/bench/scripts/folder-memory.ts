/**
 * Does memory grow with the folder? Peak RSS (VmHWM) of a short training run on an image folder
 * of 1,000 and of 20,000 small JPEGs (500 distinct photos, repeated under new names): a small network, the same number of steps, each run in its
 * own child process. Streaming should make both peaks the same (target: within 10%).
 * Run: `npx tsc -p tsconfig.json && node dist/src/bench/scripts/folder-memory.js [small=1000] [large=20000] [steps=30]`
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as X from '../../index.js';
import { Progress } from '../../train/progress.js';
import { writePhotoFolder } from './folder-photos.js';

function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}

/** In the child: train `steps` steps on the folder, then print the peak RSS as JSON. */
async function child(data: string, out: string, steps: number): Promise<void> {
  let done = 0;
  await X.train(
    {
      ...X.DEFAULT_TRAIN_CONFIG,
      dataset: `folder:${data}`,
      modelOptions: { stem: 'small', width: 0.25, middleBlocks: 1 },
      epochs: 1,
      batchSize: 16,
      imageSize: 64,
      lr: 0.01,
      schedule: 'constant',
      augment: { cropPadding: 0, flip: true, randomResizedCrop: true },
      outDir: out,
    },
    { backend: 'native', progress: new Progress(process.stderr, true), shouldStop: () => ++done >= steps },
  );
  console.log(JSON.stringify({ steps: done, peakRssMiB: peakRssMiB() }));
}

async function main(): Promise<void> {
  if (process.argv[2] === 'child') return child(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
  const small = Number(process.argv[2] ?? 1000),
    large = Number(process.argv[3] ?? 20000),
    steps = Number(process.argv[4] ?? 30);
  const dir = mkdtempSync(join(tmpdir(), 'xception-folder-memory-'));
  try {
    const peaks: number[] = [];
    for (const count of [small, large]) {
      const data = join(dir, `photos-${count}`);
      const t0 = performance.now();
      await writePhotoFolder(data, { count, classes: 10, minSide: 48, maxSide: 160, seed: 1, distinct: 500 });
      const stdout = execFileSync(
        process.execPath,
        [fileURLToPath(import.meta.url), 'child', data, join(dir, `run-${count}`), String(steps)],
        { encoding: 'utf8' },
      );
      const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as { steps: number; peakRssMiB: number };
      peaks.push(r.peakRssMiB);
      console.log(
        `${count.toLocaleString('en-US')} images (written in ${((performance.now() - t0) / 1000).toFixed(0)} s): peak RSS ${r.peakRssMiB.toFixed(0)} MiB after ${r.steps} steps`,
      );
    }
    console.log(`large / small: ${(peaks[1]! / peaks[0]!).toFixed(3)} (target within 10%)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
