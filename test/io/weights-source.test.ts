import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import '../../src/backends/index.js';
import { setBackend } from '../../src/core/engine.js';
import { FASHION_MNIST_CLASS_NAMES } from '../../src/data/dataset.js';
import { trainingPreprocessing } from '../../src/data/image-preprocessing.js';
import { WeightFileError } from '../../src/io/errors.js';
import { writeKerasH5 } from '../../src/io/keras-h5.js';
import { modelToKerasLayers } from '../../src/io/keras-model.js';
import { RECORD_LIMITS, type ModelRecord } from '../../src/io/model-record.js';
import { namedWeightsOf, saveWeights, WEIGHTS_FORMAT_TAG } from '../../src/io/model-weights.js';
import { readSafetensorsFileSync, writeSafetensorsFile, writeSafetensorsFileSync } from '../../src/io/safetensors.js';
import { openWeights } from '../../src/io/weights-source.js';
import { buildModel } from '../../src/models/registry.js';
import type { Model } from '../../src/nn/model.js';
import { Progress } from '../../src/train/progress.js';
import { DEFAULT_TRAIN_CONFIG, train } from '../../src/train/trainer.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';

setBackend('reference');
const { dir: tmp, cleanup } = makeTempDir('weights-source');
after(cleanup);
const TINY = { stem: 'small', width: 1 / 16, middleBlocks: 0, inputShape: [8, 8, 1] };
const tiny = (classes: number, seed: number): Model => buildModel('xception', { ...TINY, classes, seed });

/** name → a copy of the weight's values. */
function snapshot(model: Model): Map<string, Float32Array> {
  return new Map(model.weights.map((v) => [v.name, Float32Array.from(v.value.data())]));
}

function assertSameValues(a: Float32Array | undefined, b: Float32Array | undefined, what: string): void {
  assert.ok(a && b && a.length === b.length && a.every((x, i) => x === b[i]), what);
}

// A Fashion-MNIST-style run (tiny IDX fixture, 8×8 images), shared by the tests below.
const data = path.join(tmp, 'fashion');
writeIdxDataset(data, { trainCount: 16, testCount: 8, h: 8, w: 8 });
const runDir = path.join(tmp, 'run');
await train(
  {
    ...DEFAULT_TRAIN_CONFIG,
    dataset: `fashion-mnist:${data}`,
    modelOptions: { stem: 'small', width: 1 / 16, middleBlocks: 0 },
    epochs: 1,
    batchSize: 8,
    outDir: runDir,
  },
  { progress: new Progress(process.stderr, true) },
);

test('a run folder, its weights.safetensors and its checkpoint all record the model, class names and preprocessing', async () => {
  const run = await openWeights(runDir);
  assert.equal(run.kind, 'run');
  const record = run.record!;
  assert.equal(record.model, 'xception');
  assert.deepEqual(record.options['inputShape'], [8, 8, 1]);
  assert.equal(record.options['classes'], 10);
  assert.equal(record.options['backend'], undefined);
  assert.deepEqual(record.classNames, [...FASHION_MNIST_CLASS_NAMES]);
  assert.deepEqual(record.preprocessing, trainingPreprocessing('xception'));
  assert.equal(run.fileClasses, 10);

  const weights = await openWeights(path.join(runDir, 'weights.safetensors'));
  assert.equal(weights.kind, 'safetensors');
  assert.deepEqual(weights.record, record);
  assert.equal(weights.fileClasses, 10);
  assert.equal((await openWeights(path.join(runDir, 'checkpoint.safetensors'))).kind, 'run', 'a checkpoint file opens as its run');

  // Both build the recorded model and load the same weights into it.
  const a = run.buildModel();
  const b = weights.buildModel();
  await run.loadInto(a);
  await weights.loadInto(b);
  assert.deepEqual(a.inputShape, [8, 8, 1]);
  const sa = snapshot(a);
  for (const [name, values] of snapshot(b)) assertSameValues(values, sa.get(name), name);
  a.dispose();
  b.dispose();
});

test("saveWeights records the model in safetensors metadata and in Keras H5 root attributes (Keras's own attributes unchanged)", async () => {
  const model = tiny(3, 4);
  const record: ModelRecord = {
    ...(await modelRecord(model)),
    classNames: ['cat', 'dog', 'bird'],
    preprocessing: { resize: 'stretch', interpolation: 'bilinear', scaling: 'xception' },
  };
  const st = path.join(tmp, 'rec.safetensors');
  const h5 = path.join(tmp, 'rec.h5');
  await saveWeights(model, st, 'safetensors', record);
  await saveWeights(model, h5, 'keras-h5', record);
  for (const file of [st, h5]) {
    const source = await openWeights(file);
    assert.deepEqual(source.record, record, file);
    assert.equal(source.fileClasses, 3);
    const back = source.buildModel();
    await source.loadInto(back);
    const original = snapshot(model);
    for (const [name, values] of snapshot(back)) assertSameValues(values, original.get(name), `${file}: ${name}`);
    back.dispose();
  }
  // The H5 still has exactly Keras's layer list (what model.load_weights reads).
  const { readKerasH5Contents } = await import('../../src/io/keras-h5.js');
  const contents = await readKerasH5Contents(h5, { attributes: ['layer_names', 'class_names', 'model_config'] });
  assert.deepEqual(
    contents.layers.map((l) => l.name),
    model.layers.map((l) => l.name),
  );
  assert.deepEqual(contents.attributes['class_names'], ['cat', 'dog', 'bird']);
  assert.equal(contents.attributes['model_config'], undefined, "Keras's load_model reads a root model_config: ours has another name");
  // A file written with no record opens with none.
  await saveWeights(model, h5, 'keras-h5', null);
  assert.equal((await openWeights(h5)).record, null);
  model.dispose();
});

async function modelRecord(model: Model): Promise<ModelRecord> {
  const { modelRecordOf } = await import('../../src/io/model-record.js');
  return modelRecordOf(model)!;
}

test('a hostile record is a clear WeightFileError before anything is built', async () => {
  const model = tiny(3, 1);
  const weights = namedWeightsOf(model);
  model.dispose();
  const good = { model: 'xception', ...TINY, classes: 3 };
  const cases: [Record<string, string>, RegExp][] = [
    [{ model_config: JSON.stringify({ ...good, classes: 1e9 }) }, /classes must be an integer in \[1, 100000\]/],
    [{ model_config: JSON.stringify({ ...good, inputShape: [100000, 100000, 3] }) }, /inputShape must be \[H, W, C\]/],
    [{ model_config: JSON.stringify({ ...good, middleBlocks: 1e6 }) }, /middleBlocks must be an integer in \[0, 64\]/],
    [{ model_config: '{"model":"xception","__proto__":{"polluted":true}}' }, /forbidden key '__proto__'/],
    [{ model_config: JSON.stringify({ ...good, pooling: { constructor: 1 } }) }, /forbidden key 'constructor'/],
    [{ model_config: JSON.stringify({ ...good, width: 'wide' }) }, /width must be in \(0, 4\]/],
    [{ model_config: JSON.stringify({ ...good, backend: 'native' }) }, /name a backend/],
    [{ model_config: JSON.stringify({ ...good, model: 'resnet50' }) }, /unknown model 'resnet50'/],
    [{ model_config: JSON.stringify({ ...good, colour: 'red' }) }, /unknown option 'colour'/],
    [{ model_config: '{"model": "xception", ' }, /model_config metadata is not valid JSON/],
    [{ model_config: '[1, 2]' }, /is not a JSON object/],
    [{ model_config: JSON.stringify(good), class_names: '["a", "b"]' }, /2 class names for 3 classes/],
    [{ model_config: JSON.stringify(good), class_names: '["a", 2, "c"]' }, /class name 1 must be a non-empty string/],
    [
      { model_config: JSON.stringify(good), class_names: JSON.stringify(['a', 'x'.repeat(RECORD_LIMITS.classNameLength + 1), 'c']) },
      /class name 1 must be/,
    ],
    [{ model_config: JSON.stringify(good), class_names: '{"0": "a"}' }, /class names are not a list/],
    [
      { model_config: JSON.stringify(good), preprocessing: '{"resize": "zoom", "interpolation": "nearest", "scaling": "xception"}' },
      /resize must be one of center-crop, stretch/,
    ],
  ];
  for (const [i, [metadata, pattern]] of cases.entries()) {
    const file = path.join(tmp, `hostile-${i}.safetensors`);
    await writeSafetensorsFile(file, weights, { format: WEIGHTS_FORMAT_TAG, ...metadata });
    const started = Date.now();
    await assert.rejects(openWeights(file), (e: unknown) => {
      assert.ok(e instanceof WeightFileError, `${i}: ${String(e)}`);
      assert.equal(e.file, file);
      assert.match(e.message, pattern, `case ${i}`);
      return true;
    });
    assert.ok(Date.now() - started < 5000, `case ${i} failed fast (nothing was built)`);
  }
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'no prototype was polluted');

  // The same checks guard Keras H5 root attributes.
  const h5 = path.join(tmp, 'hostile.h5');
  const m = tiny(3, 1);
  await writeKerasH5(modelToKerasLayers(m), h5, { attributes: { xception_model_config: JSON.stringify({ ...good, classes: 1e9 }) } });
  m.dispose();
  await assert.rejects(openWeights(h5), /hostile\.h5: its model record is invalid: classes must be an integer/);

  // And a run's state (a run folder from elsewhere is untrusted too).
  const hostileRun = path.join(tmp, 'hostile-run');
  fs.mkdirSync(hostileRun);
  const checkpoint = readSafetensorsFileSync(path.join(runDir, 'checkpoint.safetensors'));
  const state = JSON.parse(checkpoint.metadata['state']!) as Record<string, unknown>;
  writeSafetensorsFileSync(path.join(hostileRun, 'checkpoint.safetensors'), checkpoint.weights, {
    ...checkpoint.metadata,
    state: JSON.stringify({ ...state, classNames: ['only one'] }),
  });
  await assert.rejects(openWeights(hostileRun), /checkpoint\.safetensors: its model record is invalid: 1 class names for 10 classes/);
});

test('a Fashion-MNIST run from before class names were recorded still gets them', async () => {
  const oldRun = path.join(tmp, 'old-run');
  fs.mkdirSync(oldRun);
  const checkpoint = readSafetensorsFileSync(path.join(runDir, 'checkpoint.safetensors'));
  const { classNames: _names, preprocessing: _prep, ...state } = JSON.parse(checkpoint.metadata['state']!) as Record<string, unknown>;
  writeSafetensorsFileSync(path.join(oldRun, 'checkpoint.safetensors'), checkpoint.weights, {
    ...checkpoint.metadata,
    state: JSON.stringify(state),
  });
  const source = await openWeights(oldRun);
  assert.deepEqual(source.record!.classNames, [...FASHION_MNIST_CLASS_NAMES]);
  assert.equal(source.record!.preprocessing, undefined, 'an old run says nothing of its preprocessing');
});

test("loadInto with except: ['predictions'] loads everything else (safetensors, H5 in order and by name, run) and leaves the classifier alone", async () => {
  const source3 = tiny(3, 7);
  const st = path.join(tmp, 'three.safetensors');
  const h5 = path.join(tmp, 'three.h5');
  await saveWeights(source3, st, 'safetensors');
  await saveWeights(source3, h5, 'keras-h5', null);
  const fileValues = snapshot(source3);
  source3.dispose();

  const cases: [string, { mode?: 'order' | 'name' }][] = [
    [st, {}],
    [h5, { mode: 'order' }],
    [h5, { mode: 'name' }],
    [h5, {}],
  ];
  for (const [file, opts] of cases) {
    const what = `${path.basename(file)} ${opts.mode ?? 'auto'}`;
    const source = await openWeights(file);
    const target = tiny(5, 99);
    const before = snapshot(target);
    // Without except the 3-class file does not fit a 5-class model, and nothing changes.
    await assert.rejects(source.loadInto(target, opts), WeightFileError);
    for (const [name, values] of snapshot(target)) assertSameValues(values, before.get(name), `${what}: failed load left ${name}`);

    const report = await source.loadInto(target, { ...opts, except: ['predictions'] });
    assert.equal(report.weights, target.weights.length - 2, what);
    for (const [name, values] of snapshot(target)) {
      if (name.startsWith('predictions/')) assertSameValues(values, before.get(name), `${what}: ${name} untouched`);
      else assertSameValues(values, fileValues.get(name), `${what}: ${name} loaded`);
    }
    target.dispose();
  }

  // A 10-class run into a 4-class model.
  const run = await openWeights(runDir);
  const full = run.buildModel();
  await run.loadInto(full);
  const runValues = snapshot(full);
  full.dispose();
  const target = run.buildModel({ classes: 4 });
  const before = snapshot(target);
  await run.loadInto(target, { except: ['predictions'] });
  for (const [name, values] of snapshot(target)) {
    assertSameValues(values, name.startsWith('predictions/') ? before.get(name) : runValues.get(name), name);
  }
  target.dispose();
});

test('openWeights: missing paths, other files and folders that are not runs are clear errors', async () => {
  await assert.rejects(openWeights(path.join(tmp, 'nope')), /nope: no such file or folder/);
  const text = path.join(tmp, 'text.txt');
  fs.writeFileSync(text, 'hello, not weights');
  await assert.rejects(openWeights(text), /text\.txt: not a weight file: neither HDF5/);
  const zip = path.join(tmp, 'model.keras');
  fs.writeFileSync(zip, Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]));
  await assert.rejects(openWeights(zip), /a zip archive \(a Keras 3 \.keras model\?\)/);
  await assert.rejects(openWeights(data), /fashion: not a run folder written by `xception train`/);
  const bare = await openWeights(path.join(tmp, 'three.h5'));
  assert.throws(() => bare.buildModel(), /records no model: give the model flags/);
});
