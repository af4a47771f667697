/** train's model defaults follow the data; its help states them; the start-up line states the model. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setBackend } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { parse } from '../../src/cli/args.js';
import { configFromFlags, TRAIN_HELP, TRAIN_FLAGS } from '../../src/cli/commands/train.js';
import { buildModel } from '../../src/models/registry.js';
import { Progress } from '../../src/train/progress.js';
import { DEFAULT_TRAIN_CONFIG, defaultModelOptions, describeModel, train } from '../../src/train/trainer.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';
import { runCli } from './helpers.js';

setBackend(referenceBackend);
const configOf = (...argv: string[]) => configFromFlags(parse('train', argv, TRAIN_FLAGS), DEFAULT_TRAIN_CONFIG, false, 'runs/x');

test('model defaults depend on the data: the main job on built-in datasets, Keras Xception on image folders', () => {
  const mainJob = { stem: 'small', width: 0.25, middleBlocks: 2, bnMomentum: 0.99 };
  assert.deepEqual(configOf().modelOptions, mainJob);
  assert.deepEqual(configOf('--dataset', 'cifar10:/data/cifar').modelOptions, mainJob);
  assert.deepEqual(configOf('--dataset', 'folder:/photos').modelOptions, {});
  assert.deepEqual(configOf('--dataset', 'folder:/photos', '--width', '0.5').modelOptions, { width: 0.5 });
  assert.deepEqual(configOf('--width', '0.5').modelOptions, { ...mainJob, width: 0.5 });
  // Inception V3 on the default data gets the main job's stem, width and momentum (no middle blocks).
  const inception = configOf('--model', 'inception_v3');
  assert.equal(inception.model, 'inception_v3');
  assert.deepEqual(inception.modelOptions, { stem: 'small', width: 0.25, bnMomentum: 0.99 });
  const model = buildModel('inception_v3', { ...inception.modelOptions, inputShape: [28, 28, 1], classes: 10, backend: referenceBackend });
  assert.deepEqual(model.outputShape, [10]);
  model.dispose();
  assert.deepEqual(defaultModelOptions('xception', 'folder:x'), {});
  assert.match(
    describeModel('xception', { inputShape: [299, 299, 3], classes: 5 }),
    /^xception: stem imagenet, width 1, 8 middle blocks, input 299×299×3, 5 classes$/,
  );
});

test('train with no stem below the ImageNet minimum picks the small stem and says so at start-up', async () => {
  const tmp = makeTempDir('stem');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 16, testCount: 8, h: 8, w: 8 });
    let log = '';
    const sink = { write: (s: string) => ((log += s), true) } as unknown as NodeJS.WriteStream;
    await train(
      {
        ...DEFAULT_TRAIN_CONFIG,
        dataset: `mnist:${data}`,
        modelOptions: { width: 0.0625, middleBlocks: 0 },
        epochs: 1,
        batchSize: 8,
        outDir: join(tmp.dir, 'run'),
      },
      { progress: new Progress(sink) },
    );
    assert.match(log, /model xception: stem small, width 0\.0625, 0 middle blocks, input 8×8×1, 10 classes \([\d,]+ parameters\)/);
  } finally {
    tmp.cleanup();
  }
});

test('an input too small for the ImageNet stem gets a hint in CLI syntax', async () => {
  const r = await runCli(['summary', '--input-shape', '32,32,3']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--stem small/);
});

test('train --help states the real defaults and lists --seed once', async () => {
  const mo = DEFAULT_TRAIN_CONFIG.modelOptions as { width: number; middleBlocks: number };
  assert.match(TRAIN_HELP, new RegExp(`--width X .*\\(default ${mo.width}; 1 on image folders\\)`));
  assert.match(TRAIN_HELP, new RegExp(`--middle-blocks N .*default ${mo.middleBlocks}; 8 on image folders`));
  assert.equal(TRAIN_HELP.match(/^\s+--seed /gm)?.length, 1);
  assert.match(TRAIN_HELP, /--batch-size B\s+\(default 128; at most 65,536\)/);
  const summary = await runCli(['summary', '--help']);
  assert.match(summary.out, /--width X .*\(default 1\)/);
  assert.match(summary.out, /--middle-blocks N .*default 8\)/);
  const help = await runCli(['train', '--help']);
  assert.equal(help.out, TRAIN_HELP);
});

test('data-parallel training says so while its replicas start (a large model takes seconds each)', async () => {
  const tmp = makeTempDir('replicas-progress');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 16, testCount: 8, h: 8, w: 8 });
    let log = '';
    const sink = { write: (s: string) => ((log += s), true) } as unknown as NodeJS.WriteStream;
    await train(
      {
        ...DEFAULT_TRAIN_CONFIG,
        dataset: `mnist:${data}`,
        modelOptions: { stem: 'small', width: 0.0625, middleBlocks: 0 },
        epochs: 1,
        batchSize: 8,
        replicas: 2,
        outDir: join(tmp.dir, 'run'),
      },
      { progress: new Progress(sink) },
    );
    assert.match(log, /starting 2 training replicas …\n(.*\n)*replica 1\/2 ready\n(.*\n)*replica 2\/2 ready\n/);
  } finally {
    tmp.cleanup();
  }
});

test('the default learning rate scales with the batch for sgd and is 1e-3 for the adaptive optimizers', () => {
  assert.equal(configOf().lr, 0.1); // the main job: batch 128
  assert.equal(configOf('--batch-size', '16').lr, 0.0125);
  assert.equal(configOf('--batch-size', '256').lr, 0.2);
  for (const optimizer of ['adam', 'adamw', 'rmsprop']) {
    assert.equal(configOf('--optimizer', optimizer).lr, 1e-3, optimizer);
    assert.equal(configOf('--optimizer', optimizer, '--batch-size', '16').lr, 1e-3, optimizer);
  }
  assert.equal(configOf('--batch-size', '16', '--lr', '0.05').lr, 0.05); // a given rate is kept
  // A resumed run keeps its own rate, whatever its batch.
  const saved = { ...DEFAULT_TRAIN_CONFIG, batchSize: 16, lr: 0.3 };
  assert.equal(configFromFlags(parse('train', [], TRAIN_FLAGS), saved, true, 'runs/x').lr, 0.3);
  assert.match(TRAIN_HELP, /--lr X\s+peak learning rate \(default: sgd 0\.1 × batch size ÷ 128/);
});
