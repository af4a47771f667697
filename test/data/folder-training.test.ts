/** Training on image folders end to end: the trainer's data section with the streaming loader. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setBackend } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { DatasetError } from '../../src/data/errors.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { openWeights } from '../../src/io/weights-source.js';
import { train, type TrainConfig } from '../../src/train/trainer.js';
import { Progress } from '../../src/train/progress.js';
import { assertBitEqual, tinyTrainConfig } from '../helpers/training.js';
import { makeTempDir, writeImageFolder } from './fixtures.js';

setBackend(referenceBackend);

function capture(): { progress: Progress; text: () => string } {
  let buf = '';
  return { progress: new Progress({ write: (s: string) => (buf += s) }), text: () => buf };
}

function folderConfig(data: string, outDir: string, over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...tinyTrainConfig('', outDir),
    dataset: `folder:${data}`,
    imageSize: 8,
    batchSize: 4,
    ema: 0,
    augment: { cropPadding: 0, flip: true, randomResizedCrop: true },
    ...over,
  };
}

test('training on DIR/<class>/… with --validation: description, validation per epoch, data wait, exact resume', async () => {
  const tmp = makeTempDir('fold-train');
  try {
    const data = join(tmp.dir, 'photos');
    await writeImageFolder(data, { bird: 6, fish: 6 }, 10);
    const out = capture();
    const full = await train(folderConfig(data, join(tmp.dir, 'full'), { validationFraction: 1 / 3 }), { progress: out.progress });
    const text = out.text();
    assert.match(
      text,
      /data: image folder .*photos \(one folder per class\): 8 training images \+ 4 held out for validation .*; 2 classes \(bird, fish\); 8×8 RGB; center-crop, bilinear, x\/127\.5 − 1; augmentation random-resized crop \+ horizontal flip/,
    );
    assert.match(text, /epoch 1\/2: train loss .* validation loss .* top-1 .*data wait \d+\.\d%/);
    assert.equal(full.history.length, 2);
    for (const r of full.history) {
      assert.ok(r.dataWait > 0 && r.dataWait < 1, `dataWait ${r.dataWait}`);
      assert.equal(r.skippedImages, 0);
    }
    assert.ok(Number.isFinite(full.testTop1));
    assert.equal(full.finalEvalName, 'validation', "a single folder has no test split: the final figures are the validation's");

    let steps = 0;
    const cut = await train(folderConfig(data, join(tmp.dir, 'cut'), { validationFraction: 1 / 3 }), {
      progress: capture().progress,
      shouldStop: () => ++steps === 3,
    });
    assert.equal(cut.interrupted, true);
    assert.equal(readCheckpoint(join(tmp.dir, 'cut')).state.loader.batch, 1, 'stopped in epoch 2, after its first batch');
    const resumed = await train(folderConfig(data, join(tmp.dir, 'cut'), { validationFraction: 1 / 3 }), {
      progress: capture().progress,
      resume: true,
    });
    assert.equal(resumed.testTop1, full.testTop1);
    assertBitEqual(readCheckpoint(join(tmp.dir, 'full')).model, readCheckpoint(join(tmp.dir, 'cut')).model);
  } finally {
    tmp.cleanup();
  }
});

test('training on a folder without an evaluation split says how to get one; an unreadable image stops the run or is skipped and counted', async () => {
  const tmp = makeTempDir('fold-bad');
  try {
    const data = join(tmp.dir, 'photos');
    await writeImageFolder(data, { bird: 4, fish: 4 }, 10);
    const out = capture();
    const r = await train(folderConfig(data, join(tmp.dir, 'plain'), { epochs: 1 }), { progress: out.progress });
    assert.match(out.text(), /no evaluation split: .*--validation 0\.2/);
    assert.doesNotMatch(out.text(), /test loss|validation loss/);
    assert.ok(Number.isNaN(r.testTop1));
    assert.equal(r.finalEvalName, null);
    assert.ok(existsSync(join(tmp.dir, 'plain', 'curves.svg')));

    const broken = join(data, 'fish', 'fish-zz.png');
    writeFileSync(broken, 'not a PNG');
    await assert.rejects(
      train(folderConfig(data, join(tmp.dir, 'strict'), { epochs: 1 }), { progress: capture().progress }),
      (e: unknown) => e instanceof DatasetError && e.message.includes(broken) && /--skip-bad-images/.test(e.message),
    );
    assert.equal(existsSync(join(tmp.dir, 'strict', 'checkpoint.safetensors')), false, 'no checkpoint from a failed epoch');

    const lenient = capture();
    // 8 good images + 1 bad in batches of 3: the bad one's batch trains on 2.
    const skipped = await train(folderConfig(data, join(tmp.dir, 'lenient'), { epochs: 2, batchSize: 3, skipBadImages: true }), {
      progress: lenient.progress,
    });
    assert.deepEqual(
      skipped.history.map((h) => h.skippedImages),
      [1, 1],
    );
    // 9 files in batches of 4: a last batch of one image (which batch norm cannot train on) is dropped.
    const odd = await train(folderConfig(data, join(tmp.dir, 'odd'), { epochs: 1, batchSize: 4, skipBadImages: true }), {
      progress: capture().progress,
    });
    assert.equal(odd.steps, 2);
    assert.match(
      lenient.text(),
      new RegExp(
        `skipped 1 unreadable image this epoch \\(--skip-bad-images\\), e\\.g\\. ${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
      ),
    );
  } finally {
    tmp.cleanup();
  }
});

test('resize policy and interpolation: chosen for a folder run, described, recorded with the weights; refused for built-in data', async () => {
  const tmp = makeTempDir('fold-resize');
  try {
    const data = join(tmp.dir, 'photos');
    await writeImageFolder(data, { ant: 4, bee: 4 });
    const out = capture();
    await train(folderConfig(data, join(tmp.dir, 'run'), { epochs: 1, resize: 'stretch', interpolation: 'nearest' }), {
      progress: out.progress,
    });
    assert.match(out.text(), /stretch, nearest, x\/127\.5 − 1/);
    const record = (await openWeights(join(tmp.dir, 'run', 'weights.safetensors'))).record;
    assert.deepEqual(record?.preprocessing, { resize: 'stretch', interpolation: 'nearest', scaling: 'xception' });
    const plain = await openWeights(join(tmp.dir, 'run'));
    assert.equal(plain.record?.preprocessing?.resize, 'stretch', 'the run folder records it too');
    await assert.rejects(
      train({ ...tinyTrainConfig(join(tmp.dir, 'idx-data'), join(tmp.dir, 'idx')), resize: 'stretch' }),
      /apply to image folders/,
    );
    await assert.rejects(
      train(folderConfig(data, join(tmp.dir, 'bad'), { resize: 'squash' as never })),
      /resize must be one of center-crop, stretch/,
    );
  } finally {
    tmp.cleanup();
  }
});
