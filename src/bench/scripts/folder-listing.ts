/**
 * How long a large image folder takes to open (list, split, make the loaders) before training
 * starts: N empty `.jpg` files in 100 class folders (nothing is decoded at this stage).
 * Run: `npx tsc -p tsconfig.json && node dist/src/bench/scripts/folder-listing.js [files=100000]`
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTrainingData } from '../../data/training-data.js';

const files = Number(process.argv[2] ?? 100_000);
const root = mkdtempSync(join(tmpdir(), 'xception-folder-listing-'));
try {
  for (let c = 0; c < 100; c++) {
    mkdirSync(join(root, `c${c}`));
    for (let i = c; i < files; i += 100) writeFileSync(join(root, `c${c}`, `${i}.jpg`), '');
  }
  const t0 = performance.now();
  const data = await openTrainingData({
    dataset: `folder:${root}`,
    scaling: 'xception',
    augment: { cropPadding: 0, flip: true, randomResizedCrop: true },
    validationFraction: 0.1,
    seed: 0,
    batchSize: 8,
  });
  console.log(
    `${files.toLocaleString('en-US')} files: opened in ${(performance.now() - t0).toFixed(0)} ms (${data.train.samples} training, ${data.evaluation!.samples} validation)`,
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
