/** The options schema is the one source: README's table, every --help, the CLI's parsing and the caps agree with it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { OptionError, ShapeError } from '../../src/core/errors.js';
import { parse } from '../../src/cli/args.js';
import { MODEL_FLAGS, modelFromFlags } from '../../src/cli/model-flags.js';
import { validateModelRecord, recordFromMetadata } from '../../src/io/model-record.js';
import { WeightFileError } from '../../src/io/errors.js';
import { openWeights } from '../../src/io/weights-source.js';
import { writeSafetensorsFileSync } from '../../src/io/safetensors.js';
import { defaultText, formatOptionValue, MODEL_OPTIONS, modelOptionSpecs, resolveModelOptions } from '../../src/models/options.js';
import { optionsBlockOf, renderOptionsTable, withOptionsTable } from '../../src/models/options-docs.js';
import { buildModel, getModelEntry } from '../../src/models/registry.js';
import { xceptionParamsBound } from '../../src/models/xception/xception.js';
import { inceptionV3ParamsBound } from '../../src/models/inception_v3/inception_v3.js';
import { DEFAULT_TRAIN_CONFIG, defaultModelOptions } from '../../src/train/trainer.js';
import { CHECKPOINT_FILE, CHECKPOINT_FORMAT } from '../../src/train/checkpoint.js';
import { makeTempDir } from '../data/fixtures.js';
import { runCli } from '../cli/helpers.js';

const flagged = MODEL_OPTIONS.filter((s) => s.flag !== undefined);

test("README's model-options block is the schema's table (npm run docs:options rewrites it)", () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  assert.equal(optionsBlockOf(readme), renderOptionsTable(), 'README is stale: run `npm run docs:options`');
  assert.equal(withOptionsTable(readme), readme);
  for (const spec of MODEL_OPTIONS) assert.ok(renderOptionsTable().includes(`| \`${spec.key}\` |`), spec.key);
});

/** The lines of a --help's entry for --flag: its own line up to the next flag's. */
function entryOf(help: string, flag: string): string {
  const lines = help.split('\n');
  const at = lines.findIndex((l) => new RegExp(`^  --${flag}( |$)`).test(l));
  assert.ok(at >= 0, `--${flag} is in the help`);
  const next = lines.findIndex((l, i) => i > at && /^(\S| {2}-)/.test(l));
  return lines
    .slice(at, next < 0 ? undefined : next)
    .join(' ')
    .replace(/\s+/g, ' ');
}

test("every command's --help lists each model flag with the schema's default (train: the data's defaults)", async () => {
  for (const cmd of ['summary', 'predict', 'export', 'eval']) {
    const help = (await runCli([cmd, '--help'])).out;
    const section = help.slice(help.indexOf('Model options:'));
    const listed = [...section.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(listed, Object.keys(MODEL_FLAGS).sort(), `${cmd}: the help's model flags are MODEL_FLAGS`);
    for (const spec of flagged) {
      const stated = defaultText(spec);
      if (stated)
        assert.ok(
          entryOf(help, spec.flag!).includes(`(${stated})`) || entryOf(help, spec.flag!).includes(`; ${stated})`),
          `${cmd} --${spec.flag}: ${stated}`,
        );
      for (const choice of spec.choices ?? [])
        assert.ok(entryOf(help, spec.flag!).includes(choice), `${cmd} --${spec.flag} names ${choice}`);
    }
  }
  const train = (await runCli(['train', '--help'])).out;
  const mainJob = defaultModelOptions(DEFAULT_TRAIN_CONFIG.model, DEFAULT_TRAIN_CONFIG.dataset);
  for (const spec of flagged.filter((s) => s.key !== 'seed')) {
    const entry = entryOf(train, spec.flag!);
    const main = mainJob[spec.key];
    const value = formatOptionValue(main).replace(/\./g, '\\.');
    // "(default 0.25; 1 on image folders)", "(default Keras's 0.99)": the main job's value is the one stated first.
    if (main !== undefined) assert.match(entry, new RegExp(`[(;] ?default (Keras's )?${value}[;)]`), `train --${spec.flag}`);
    else if (!['inputShape', 'classes'].includes(spec.key) && defaultText(spec))
      assert.ok(entry.includes(defaultText(spec)!), `train --${spec.flag}`);
  }
  assert.match(entryOf(train, 'width'), /default 0\.25; 1 on image folders/);
});

test('the CLI parses every flagged option to a value the schema accepts, and enforces its caps', () => {
  const values: Record<string, string[]> = {
    'input-shape': ['64,64,3'],
    classes: ['100000'],
    pooling: ['max', '--no-top'],
    width: ['4'],
    dropout: ['0.5'],
    'bn-momentum': ['0.9'],
    'middle-blocks': ['64'],
    'channel-multiple': ['512'],
    segments: ['8192'],
    seed: ['7'],
    stem: ['small'],
    order: ['pointwise-first'],
    'intermediate-activation': ['elu'],
    'classifier-activation': ['linear'],
    'fc-layers': ['4096,4096'],
  };
  for (const spec of flagged) {
    const argv = spec.kind === 'boolean' ? [`--${spec.flag}`] : [`--${spec.flag}`, ...values[spec.flag!]!];
    const choice = modelFromFlags(parse('summary', argv, MODEL_FLAGS));
    assert.ok(choice.options[spec.key] !== undefined, `--${spec.flag} sets ${spec.key}`);
    assert.doesNotThrow(
      () => resolveModelOptions('xception', { ...choice.options, segments: choice.options['segments'] ?? 'depthwise' }),
      `--${spec.flag}`,
    );
  }
  const fails = (argv: string[], pattern: RegExp) =>
    assert.throws(
      () => modelFromFlags(parse('summary', argv, MODEL_FLAGS)),
      (e: Error) => e instanceof OptionError && pattern.test(e.message),
      argv.join(' '),
    );
  fails(['--classes', '100001'], /--classes must be an integer in \[1, 100000\]/);
  fails(['--middle-blocks', '65'], /--middle-blocks must be an integer in \[0, 64\]/);
  fails(['--width', '0'], /--width must be a number in \(0, 4\], got '0'/);
  fails(['--dropout', '1'], /--dropout must be a number in \[0, 1\)/);
  fails(['--segments', '0'], /--segments must be an integer in \[1, 8192\]/);
});

test('the caps hold in code too: a huge model is a typed error before anything is allocated', () => {
  assert.throws(
    () => buildModel('xception', { classes: 1e9 }),
    (e: Error) => e instanceof OptionError && /classes must be an integer in \[1, 100000\]/.test(e.message),
  );
  assert.throws(
    () => buildModel('xception', { middleBlocks: 1e6 }),
    (e: Error) => e instanceof OptionError && /middleBlocks must be an integer in \[0, 64\]/.test(e.message),
  );
  assert.throws(
    () => buildModel('inception_v3', { inputShape: [5000, 5000, 3] }),
    (e: Error) => e instanceof ShapeError && /H, W ≤ 4096/.test(e.message),
  );
  assert.throws(() => buildModel('xception', { width: 5 }), OptionError);
  assert.throws(
    () => buildModel('inception_v3', { middleBlocks: 2 }),
    (e: Error) => e instanceof OptionError && /unknown option 'middleBlocks'/.test(e.message),
  );
  // Every model's defaults pass its own schema.
  for (const model of ['xception', 'inception_v3'] as const) {
    const resolved = resolveModelOptions(model, {});
    assert.deepEqual(
      Object.keys(resolved),
      modelOptionSpecs(model).map((s) => s.key),
    );
  }
});

test('the size bound is an upper bound on the real parameter count, close enough to refuse only huge models', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['xception', {}],
    ['xception', { segments: 1 }],
    ['xception', { width: 0.5, segments: 4, channelMultiple: 4, classes: 10 }],
    ['xception', { stem: 'small', width: 0.25, middleBlocks: 2, inputShape: [28, 28, 1], classes: 10 }],
    ['xception', { includeTop: false, order: 'pointwise-first' }],
    ['inception_v3', {}],
    ['inception_v3', { stem: 'small', width: 0.25, classes: 10 }],
  ];
  for (const [name, options] of cases) {
    const model = buildModel(name, options);
    const params = model.weights.reduce((n, v) => n + v.shape.reduce((a, b) => a * b, 1), 0);
    model.dispose();
    const resolved = getModelEntry(name).resolveOptions(options);
    const bound = name === 'xception' ? xceptionParamsBound(resolved as never) : inceptionV3ParamsBound(resolved as never);
    assert.ok(
      bound >= params && bound <= 1.5 * params + 1e6,
      `${name} ${JSON.stringify(options)}: bound ${bound} for ${params} parameters`,
    );
  }
  assert.doesNotThrow(() => resolveModelOptions('xception', { width: 4 }), "Keras's Xception at width 4 is allowed");
  for (const options of [
    { width: 4, classes: 100_000 },
    { width: 4, middleBlocks: 64 },
    { width: 2, segments: 1 },
  ]) {
    assert.throws(
      () => buildModel('xception', options),
      (e: Error) => e instanceof OptionError && /at most 500 million are allowed/.test(e.message),
      JSON.stringify(options),
    );
  }
  assert.throws(() => buildModel('inception_v3', { width: 4, classes: 100_000 }), OptionError);
});

test('a model_config or run state asking for classes 1e9 or middleBlocks 1e6 fails fast, allocating nothing', async () => {
  const hostile = [
    { classes: 1e9 },
    { middleBlocks: 1e6 },
    { inputShape: [1e5, 1e5, 3] },
    { segments: 1e7 },
    { width: 4, classes: 100_000 },
  ];
  for (const options of hostile) {
    const rss = process.memoryUsage().rss;
    const started = performance.now();
    assert.throws(
      () => recordFromMetadata({ model_config: JSON.stringify({ model: 'xception', ...options }) }, 'hostile.safetensors'),
      (e: Error) => e instanceof WeightFileError && /its model record is invalid/.test(e.message),
    );
    assert.throws(() => validateModelRecord({ model: 'xception', options }, 'hostile'), WeightFileError);
    assert.ok(performance.now() - started < 1000, `${JSON.stringify(options)}: under a second`);
    assert.ok(process.memoryUsage().rss - rss < 64 * 2 ** 20, `${JSON.stringify(options)}: no large allocation`);
  }
  // A run folder's checkpoint state is untrusted too.
  const tmp = makeTempDir('hostile-state');
  try {
    const run = join(tmp.dir, 'run');
    mkdirSync(run);
    // A complete run state (checkpoints check every field), hostile only in its model options.
    const state = {
      step: 0,
      epochsDone: 0,
      loader: {},
      config: {},
      modelRandom: { s: [1, 2, 3, 4] },
      optimizer: { name: 'sgd', step: 0 },
      ema: null,
      wallSeconds: 0,
      history: [],
      model: { name: 'xception', options: { middleBlocks: 1e6, classes: 10 } },
    };
    writeSafetensorsFileSync(join(run, CHECKPOINT_FILE), [], { format: CHECKPOINT_FORMAT, state: JSON.stringify(state) });
    const started = performance.now();
    await assert.rejects(
      openWeights(run),
      (e: Error) => e instanceof WeightFileError && /middleBlocks must be an integer in \[0, 64\]/.test(e.message),
    );
    assert.ok(performance.now() - started < 1000);
  } finally {
    tmp.cleanup();
  }
});
