/**
 * Transfer learning in the trainer: pretrained weights in, the classifier replaced when the
 * classes differ, a frozen base that does not move, fine-tuning that moves everything but the
 * batch-norm statistics, and exact resume across the phase boundary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad, setBackend, xception } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { namedWeightsOf, saveWeights } from '../../src/io/model-weights.js';
import { writeSafetensorsFile } from '../../src/io/safetensors.js';
import { recordToMetadata } from '../../src/io/model-record.js';
import { MNIST_CLASS_NAMES } from '../../src/data/dataset.js';
import type { Model } from '../../src/nn/model.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { Progress } from '../../src/train/progress.js';
import { train, type TrainConfig } from '../../src/train/trainer.js';
import { applyPhase, buildTransferModel } from '../../src/train/transfer.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';
import { assertBitEqual, tinyTrainConfig } from '../helpers/training.js';

setBackend(referenceBackend);
const quiet = new Progress(process.stderr, true);

/** The source network: a tiny small-stem Xception for 8×8 grey images (exit blocks 5 and 6). */
const SOURCE_OPTIONS = { stem: 'small', width: 1 / 16, middleBlocks: 0, inputShape: [8, 8, 1] } as const;

function sourceModel(classes: number, extra: Record<string, unknown> = {}): Model {
  return noGrad(() => xception({ ...SOURCE_OPTIONS, classes, seed: 7, backend: referenceBackend, ...extra }));
}

function valuesOf(model: Model): Map<string, Float32Array> {
  return new Map(model.weights.map((v) => [v.name, v.value.data()]));
}

/** Writes a source safetensors file (recording its model) and returns its weights by name. */
async function writeSource(
  path: string,
  classes: number,
  opts: { classNames?: string[]; includeTop?: boolean } = {},
): Promise<Map<string, Float32Array>> {
  const m = sourceModel(classes, opts.includeTop === false ? { includeTop: false, pooling: 'avg' } : {});
  try {
    if (opts.classNames) {
      const { model, backend: _b, ...options } = m.config;
      await writeSafetensorsFile(
        path,
        namedWeightsOf(m),
        recordToMetadata({ model: model as string, options, classNames: opts.classNames }),
      );
    } else {
      await saveWeights(m, path, 'safetensors');
    }
    return valuesOf(m);
  } finally {
    m.dispose();
  }
}

function transferConfig(data: string, out: string, weights: string, over: Partial<TrainConfig> = {}): TrainConfig {
  return tinyTrainConfig(data, out, {
    modelOptions: {},
    weights,
    freezeBase: true,
    epochs: 1,
    ema: 0,
    optimizer: 'adam',
    nesterov: false,
    lr: 1e-2,
    schedule: 'cosine',
    ...over,
  });
}

function capture(): { progress: Progress; text: () => string } {
  let text = '';
  return { progress: new Progress({ write: (s: string) => (text += s) }), text: () => text };
}

const target = { model: 'xception', modelOptions: {}, size: 8, channels: 1, classes: 10, seed: 0 };

test('the classifier is replaced when the classes differ (in number, by name, or none in the source) and loaded when they match', async () => {
  const tmp = makeTempDir('transfer-classes');
  try {
    const sources = {
      four: await writeSource(join(tmp.dir, 'four.safetensors'), 4),
      ten: await writeSource(join(tmp.dir, 'ten.safetensors'), 10),
      named: await writeSource(join(tmp.dir, 'named.safetensors'), 10, { classNames: 'abcdefghij'.split('') }),
      notop: await writeSource(join(tmp.dir, 'notop.safetensors'), 10, { includeTop: false }),
    };
    const fresh = valuesOf(sourceModel(10, { seed: 0 }));
    const cases: Array<[keyof typeof sources, boolean, RegExp]> = [
      ['four', true, /replaced predictions with a freshly initialized classifier for 10 classes \(the source's has 4 outputs\)/],
      ['ten', false, /kept predictions \(the same 10 classes\)/],
      ['named', true, /the source was trained on other classes: a, b, c, …/],
      ['notop', true, /the source has no classifier/],
    ];
    for (const [name, replaced, message] of cases) {
      const t = await buildTransferModel(
        join(tmp.dir, `${name}.safetensors`),
        { ...target, classNames: MNIST_CLASS_NAMES },
        referenceBackend,
      );
      try {
        const got = valuesOf(t.model);
        const src = sources[name];
        const loaded = t.model.weights.filter((v) => !v.name.startsWith('predictions/')).length;
        const layers = t.model.layersWithWeights.length - (replaced ? 1 : 0);
        assert.match(
          t.lines[0]!,
          new RegExp(`loaded ${layers} layers \\(${replaced ? loaded : loaded + 2} of the model's ${loaded + 2} weights\\)`),
          name,
        );
        assert.match(t.lines[1]!, message, name);
        for (const [w, v] of got) {
          const want = w.startsWith('predictions/') && replaced ? fresh.get(w) : src.get(w);
          assert.deepEqual(v, want, `${name}: ${w}`);
        }
        assert.deepEqual(t.modelOptions['classes'], 10);
      } finally {
        t.model.dispose();
      }
    }
  } finally {
    tmp.cleanup();
  }
});

test('head training on a frozen base leaves every base weight and batch-norm statistic bit for bit as loaded', async () => {
  const tmp = makeTempDir('transfer-head');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 64, testCount: 16, h: 8, w: 8 });
    const src = await writeSource(join(tmp.dir, 'src.safetensors'), 4);
    const log = capture();
    const r = await train(transferConfig(data, join(tmp.dir, 'run'), join(tmp.dir, 'src.safetensors')), { progress: log.progress });
    assert.equal(r.epochs, 1);
    assert.match(log.text(), /weights: loaded 32 layers \(90 of the model's 92 weights\) from .*src\.safetensors \(safetensors\)/);
    assert.match(log.text(), /replaced predictions/);
    assert.match(
      log.text(),
      /head training: training predictions only \(1,290 parameters\); the base is frozen, batch norm in inference mode/,
    );
    const after = readCheckpoint(join(tmp.dir, 'run')).model;
    for (const [name, v] of after) {
      if (name.startsWith('predictions/')) continue;
      assert.deepEqual(v, src.get(name), `${name} moved`);
    }
    const head = after.get('predictions/kernel')!;
    assert.notDeepEqual(head, valuesOf(sourceModel(10, { seed: 0 })).get('predictions/kernel'), 'the head trained');
    const records = readFileSync(join(tmp.dir, 'run', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { phase: string });
    assert.deepEqual(
      records.map((x) => x.phase),
      ['head'],
    );
    const config = JSON.parse(readFileSync(join(tmp.dir, 'run', 'config.json'), 'utf8')) as TrainConfig;
    assert.equal(config.freezeBase, true);
  } finally {
    tmp.cleanup();
  }
});

test('fine-tuning trains the base (gamma, beta, kernels) while every batch-norm statistic stays; --unfreeze-from keeps the earlier layers', async () => {
  const tmp = makeTempDir('transfer-fine');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 64, testCount: 16, h: 8, w: 8 });
    const weights = join(tmp.dir, 'src.safetensors');
    const src = await writeSource(weights, 4);
    const log = capture();
    const r = await train(transferConfig(data, join(tmp.dir, 'all'), weights, { fineTuneEpochs: 1, fineTuneLr: 1e-3 }), {
      progress: log.progress,
    });
    assert.equal(r.epochs, 2);
    assert.match(log.text(), /phase 2\/2 \(fine-tune\): training every layer \([\d,]+ parameters\) at 0\.001, fresh optimizer state/);
    assert.match(log.text(), /epoch 2\/2 \(fine-tune\)/);
    const all = readCheckpoint(join(tmp.dir, 'all'));
    assert.equal(all.state.phase, 'fine-tune');
    for (const [name, v] of all.model) {
      if (/moving_(mean|variance)$/.test(name)) assert.deepEqual(v, src.get(name), `${name} moved`);
      else if (!name.startsWith('predictions/')) assert.notDeepEqual(v, src.get(name), `${name} did not train`);
    }
    const records = readFileSync(join(tmp.dir, 'all', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { phase: string; lr: number });
    assert.deepEqual(
      records.map((x) => [x.phase, x.lr]),
      [
        ['head', records[0]!.lr],
        ['fine-tune', 1e-3],
      ],
    );

    await train(transferConfig(data, join(tmp.dir, 'top'), weights, { fineTuneEpochs: 1, unfreezeFrom: 'block6_sepconv1' }), {
      progress: quiet,
    });
    const top = readCheckpoint(join(tmp.dir, 'top')).model;
    for (const [name, v] of top) {
      if (name.startsWith('block6_sepconv') && !/moving_/.test(name)) assert.notDeepEqual(v, src.get(name), `${name} did not train`);
      else if (!name.startsWith('predictions/')) assert.deepEqual(v, src.get(name), `${name} moved`);
    }
  } finally {
    tmp.cleanup();
  }
});

test('a run stopped in either phase or at the boundary resumes to exactly the uninterrupted result', async () => {
  const tmp = makeTempDir('transfer-resume');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 64, testCount: 16, h: 8, w: 8 });
    const weights = join(tmp.dir, 'src.safetensors');
    await writeSource(weights, 4);
    // 4 steps per epoch: 1 head epoch, then 2 fine-tuning epochs; Adam (its step count restarts), EMA on.
    const cfg = (out: string) => transferConfig(data, join(tmp.dir, out), weights, { fineTuneEpochs: 2, fineTuneLr: 1e-3, ema: 0.9 });
    const full = await train(cfg('full'), { progress: quiet });
    // Stops after step 2 (mid-head), 4 (the last head step: the boundary), 5 (the first fine-tuning step), 9 (mid-epoch 3).
    let previous = 0;
    for (const stopAt of [2, 4, 5, 9]) {
      let steps = previous;
      const cut = await train(cfg('cut'), { progress: quiet, resume: previous > 0, shouldStop: () => ++steps === stopAt });
      assert.equal(cut.interrupted, true, `stop at ${stopAt}`);
      const state = readCheckpoint(join(tmp.dir, 'cut')).state;
      assert.equal(state.step, stopAt);
      assert.equal(state.phase, stopAt <= 4 ? 'head' : 'fine-tune');
      previous = stopAt;
    }
    const resumed = await train(cfg('cut'), { progress: quiet, resume: true });
    assert.equal(resumed.steps, 12);
    const a = readCheckpoint(join(tmp.dir, 'full')),
      b = readCheckpoint(join(tmp.dir, 'cut'));
    assertBitEqual(a.model, b.model);
    assertBitEqual(new Map(Object.entries(a.ema)), new Map(Object.entries(b.ema)), 'EMA');
    assertBitEqual(
      new Map(Object.entries(a.optimizerSlots).map(([k, v]) => [k, v[0]!])),
      new Map(Object.entries(b.optimizerSlots).map(([k, v]) => [k, v[0]!])),
      'Adam first moments',
    );
    assert.equal(a.state.optimizer.step, 8, 'the fine-tuning optimizer counts its own steps');
    assert.equal(b.state.optimizer.step, 8);
    assert.equal(resumed.testTop1, full.testTop1);
    // The resumed run never needed the source again; changing where fine-tuning starts is refused.
    await assert.rejects(
      train({ ...cfg('cut'), epochs: 2 }, { progress: quiet, resume: true }),
      /in this run --epochs counts the head-training epochs \(1\)/,
    );
  } finally {
    tmp.cleanup();
  }
});

test('transfer options that make no sense are clear errors before any training step; grey data meets an RGB source as RGB', async () => {
  const tmp = makeTempDir('transfer-errors');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 32, testCount: 16, h: 8, w: 8 });
    const weights = join(tmp.dir, 'src.safetensors');
    await writeSource(weights, 4);
    const out = join(tmp.dir, 'run');
    const base = tinyTrainConfig(data, out, { modelOptions: {} });
    const cases: Array<[Partial<TrainConfig>, RegExp]> = [
      [{ freezeBase: true }, /--freeze-base needs --weights FILE\|RUN_DIR/],
      [
        { fineTuneEpochs: 2 },
        /--fine-tune-epochs continues after training the head on a frozen base: give --weights FILE\|RUN_DIR --freeze-base/,
      ],
      [{ weights, fineTuneEpochs: 2 }, /--fine-tune-epochs continues after training the head/],
      [{ weights, freezeBase: true, fineTuneLr: 1e-5 }, /--fine-tune-lr applies to the fine-tuning phase: give --fine-tune-epochs N too/],
      [{ weights, freezeBase: true, unfreezeFrom: 'block6_sepconv1' }, /--unfreeze-from applies to the fine-tuning phase/],
      [{ weights, freezeBase: true, fineTuneEpochs: 0 }, /fineTuneEpochs must be a positive integer/],
      [
        { weights, freezeBase: true, fineTuneEpochs: 1, unfreezeFrom: 'block7_sepconv1' },
        /--unfreeze-from: model 'xception' has no layer 'block7_sepconv1'; layers include .*block6_sepconv1/,
      ],
      [{ weights, freezeBase: true, fineTuneEpochs: 1, unfreezeFrom: 'nope' }, /has no layer 'nope'; layers include .*block6_sepconv1/],
      [
        { weights, modelOptions: { width: 0.25 } },
        /records its model; these options contradict it: width 0.25 \(the weights' model has 0\.0625\)\. Drop them/,
      ],
      [{ weights, model: 'inception_v3' }, /holds a xception model, not inception_v3: drop --model/],
      [{ weights, freezeBase: true, replicas: 2 }, /--freeze-base does not work with --replicas/],
    ];
    for (const [over, message] of cases) {
      await assert.rejects(train({ ...base, ...over }, { progress: quiet }), message, JSON.stringify(over));
      assert.equal(existsSync(join(out, 'checkpoint.safetensors')), false, 'no step was taken');
    }
    // A three-channel source takes grey data as RGB (the data layer repeats the channel).
    const rgb = sourceModel(4, { inputShape: [8, 8, 3] });
    await saveWeights(rgb, join(tmp.dir, 'rgb.safetensors'), 'safetensors');
    rgb.dispose();
    await train({ ...base, weights: join(tmp.dir, 'rgb.safetensors'), epochs: 1 }, { progress: quiet });
    assert.deepEqual(readCheckpoint(out).state.model.options['inputShape'], [8, 8, 3]);
  } finally {
    tmp.cleanup();
  }
});

test("an image folder is read with the channels the source records, at the run's size (else the source's), its classes by folder name", async () => {
  const tmp = makeTempDir('transfer-folder');
  try {
    const { default: sharp } = await import('sharp');
    const classes = ['cat', 'dog', 'eel'];
    for (const split of ['train', 'test']) {
      for (const [k, name] of classes.entries()) {
        mkdirSync(join(tmp.dir, 'photos', split, name), { recursive: true });
        for (let i = 0; i < 6; i++) {
          const rgb = Buffer.from(Array.from({ length: 12 * 12 * 3 }, (_, j) => (j * (k + 1) + i * 7) % 256));
          await sharp(rgb, { raw: { width: 12, height: 12, channels: 3 } })
            .png()
            .toFile(join(tmp.dir, 'photos', split, name, `${i}.png`));
        }
      }
    }
    const weights = join(tmp.dir, 'grey.safetensors');
    const src = await writeSource(weights, 4);
    const log = capture();
    const cfg = transferConfig(join(tmp.dir, 'photos'), join(tmp.dir, 'run'), weights, {
      dataset: `folder:${join(tmp.dir, 'photos')}`,
      imageSize: 8,
      batchSize: 6,
    });
    const r = await train(cfg, { progress: log.progress });
    assert.equal(r.epochs, 1);
    assert.match(log.text(), /replaced predictions with a freshly initialized classifier for 3 classes \(the source's has 4 outputs\)/);
    const ck = readCheckpoint(join(tmp.dir, 'run'));
    assert.deepEqual(ck.state.model.options['inputShape'], [8, 8, 1], "grey, like the source, at the run's size");
    assert.deepEqual(ck.state.classNames, classes);
    assert.deepEqual(ck.model.get('block1_conv1/kernel'), src.get('block1_conv1/kernel'));
    // Without a size, the folder is read at the source's recorded input size, not Xception's 299.
    const sized = capture();
    const { imageSize: _given, ...noSize } = cfg;
    await train({ ...noSize, outDir: join(tmp.dir, 'run-sized') }, { progress: sized.progress });
    assert.deepEqual(readCheckpoint(join(tmp.dir, 'run-sized')).state.model.options['inputShape'], SOURCE_OPTIONS.inputShape);
    assert.match(sized.text(), /\(the weights' input size; --image-size N\)/);
  } finally {
    tmp.cleanup();
  }
});

test('changing fcLayers: the fully connected layers and the classifier are freshly initialized and reported; the head trains them all', async () => {
  const tmp = makeTempDir('transfer-fc');
  try {
    const plain = await writeSource(join(tmp.dir, 'plain.safetensors'), 10);
    const withFc = sourceModel(10, { fcLayers: [8] });
    await saveWeights(withFc, join(tmp.dir, 'fc.safetensors'), 'safetensors');
    const fcSource = valuesOf(withFc);
    withFc.dispose();
    const freshFc = valuesOf(sourceModel(10, { seed: 0, fcLayers: [6, 4] }));
    const cases: Array<[string, Record<string, unknown>, RegExp[], (w: string) => boolean]> = [
      [
        'plain',
        { fcLayers: [6, 4] },
        [
          /replaced fc1, fc2 with freshly initialized fully connected layers \(fcLayers \[6, 4\] where the source has none\)/,
          /replaced predictions with a freshly initialized classifier for 10 classes \(its inputs changed with fcLayers \[6, 4\]/,
        ],
        (w) => /^(fc\d|predictions)\//.test(w),
      ],
      [
        'fc',
        { fcLayers: [] },
        [/left out the source's fully connected layers fc1 \(fcLayers none where the source has \[8\]\)/, /replaced predictions/],
        (w) => w.startsWith('predictions/'),
      ],
      ['fc', {}, [/kept predictions/], () => false], // the source's fc layers, as recorded
    ];
    for (const [name, modelOptions, messages, isFresh] of cases) {
      const t = await buildTransferModel(join(tmp.dir, `${name}.safetensors`), { ...target, modelOptions }, referenceBackend);
      try {
        const lines = t.lines.join('\n');
        for (const m of messages) assert.match(lines, m, `${name} ${JSON.stringify(modelOptions)}`);
        if (!('fcLayers' in modelOptions)) assert.doesNotMatch(lines, /fully connected/);
        const src = name === 'plain' ? plain : fcSource;
        const fresh = name === 'plain' ? freshFc : valuesOf(sourceModel(10, { seed: 0 }));
        for (const [w, v] of valuesOf(t.model)) assert.deepEqual(v, isFresh(w) ? fresh.get(w) : src.get(w), `${name}: ${w}`);
        const head = applyPhase(t.model, { epochs: 1, lr: 0.01, freezeBase: true }, 'head');
        const top = t.model.layers.some((l) => l.name === 'fc1') ? 'fc1 … predictions' : 'predictions';
        assert.match(head, new RegExp(`training ${top} only`));
        const trained = t.model.trainableWeights.map((v) => v.name.split('/')[0]);
        assert.deepEqual(
          [...new Set(trained)],
          top === 'predictions' ? ['predictions'] : ['fc1', ...(name === 'plain' ? ['fc2'] : []), 'predictions'],
        );
      } finally {
        t.model.dispose();
      }
    }
  } finally {
    tmp.cleanup();
  }
});
