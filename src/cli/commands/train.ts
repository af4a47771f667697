import { resolve } from 'node:path';
import { OptionError } from '../../core/errors.js';
import { makeOutputDir } from '../../io/output-paths.js';
import { listenForStop } from '../stop-signals.js';
import { getModelEntry } from '../../models/registry.js';
import { CHECKPOINT_FILE, hasCheckpoint, readCheckpoint } from '../../train/checkpoint.js';
import {
  DEFAULT_TRAIN_CONFIG,
  defaultLearningRate,
  defaultModelOptions,
  MAX_BATCH_SIZE,
  TRAIN_PRECISIONS,
  train,
  validateTrainConfig,
  type TrainConfig,
} from '../../train/trainer.js';
import { Progress } from '../../train/progress.js';
import { checkTrainPrecision } from '../../train/precision.js';
import { getBackend, tryBackend } from '../../core/engine.js';
import { OPTIMIZERS } from '../../train/optimizers.js';
import { SCHEDULES } from '../../train/schedules.js';
import { choiceFlag, intFlag, numberFlag, parse, backendFlag, type FlagSpec, type Parsed } from '../args.js';
import { openWeights } from '../../io/weights-source.js';
import { RESIZE_INTERPOLATIONS, RESIZE_POLICIES } from '../../data/image-preprocessing.js';
import type { TransferConfig } from '../../train/transfer.js';
import { applyImageLimitFlag, IMAGE_LIMIT_FLAGS, imageLimitHelp } from '../image-limit.js';
import { MODEL_FLAGS, MODEL_OPTION_FLAGS, modelFlagsHelp, modelFromFlags } from '../model-flags.js';
import { formatOptionValue, optionSpec, type OptionValue } from '../../models/options.js';

const d = DEFAULT_TRAIN_CONFIG;
/** The model options of a new run on the built-in small-image datasets (the main job's) and on image folders. */
const mainJob = defaultModelOptions(d.model, d.dataset) as Record<string, OptionValue>;
const onFolders = defaultModelOptions(d.model, 'folder:DIR') as Record<string, OptionValue>;
/** An option's default on image folders: defaultModelOptions's, else the schema's (Keras's). */
const folderDefault = (key: string): string => formatOptionValue(onFolders[key] ?? optionSpec(key).default);

/** How train's help states the model defaults: they follow the data (see defaultModelOptions). */
function trainModelHelpDefaults(): Record<string, string> {
  const minSide = (model: string) => `${getModelEntry(model).minInput('imagenet')}×${getModelEntry(model).minInput('imagenet')}`;
  const texts: Record<string, string> = {
    inputShape: "default: the dataset's image size and channels",
    classes: "default: the dataset's classes",
    stem:
      `default ${formatOptionValue(mainJob['stem'])}; on image folders ${folderDefault('stem')},\n` +
      `or small below ${minSide('xception')} (inception_v3: ${minSide('inception_v3')})`,
  };
  for (const [key, value] of Object.entries(mainJob)) {
    if (key in texts || formatOptionValue(value) === folderDefault(key)) continue;
    texts[key] = `default ${formatOptionValue(value)}; ${folderDefault(key)} on image folders`;
  }
  return texts;
}

const TRAIN_MODEL_HELP = modelFlagsHelp(trainModelHelpDefaults(), false);

export const TRAIN_HELP = `Usage: xception train [options]

Trains a model and writes a run folder: config.json, metrics.jsonl (one line per epoch),
curves.svg/.png, checkpoint.safetensors (everything needed to resume, written atomically at
each epoch end and on Ctrl-C or SIGTERM) and weights.safetensors (the weights alone, Keras names).
While a run writes the folder it holds run.lock there: a second process is refused.

With no options this is the main job: a small-image Xception (width ${mainJob['width']}, ${mainJob['middleBlocks']} middle blocks,
batch-norm momentum ${mainJob['bnMomentum']}) on Fashion-MNIST (Debian package dataset-fashion-mnist), ${d.epochs} epochs, one-cycle SGD with Nesterov,
no augmentation, label smoothing ${d.labelSmoothing} — about ten minutes on 2 cores with the native backend.
On an image folder the model is Keras's Xception (stem ${folderDefault('stem')}, width ${folderDefault('width')}, ${folderDefault('middleBlocks')} middle blocks) at the
folder's image size. Model flags override either.

Data:
  --dataset SPEC          fashion-mnist (default) | mnist:DIR | cifar10:DIR | cifar100:DIR | folder:DIR
                          | fashion-mosaic[:size=64,items=1-4,seed=0,train=20000,test=4000]:
                          multi-label canvases of 1–4 Fashion-MNIST items (a small JFT stand-in)
  --multi-label           sigmoid head + binary cross-entropy, evaluated by MAP@100 (default:
                          on for multi-label data such as fashion-mosaic or a sigmoid head)
                          folder:DIR is DIR/<class>/<image> alone, or DIR/train/<class>/… with
                          DIR/test (or val, validation)/<class>/…; classes are matched by name
  --image-size N          resize images to N×N (default: the dataset's size; image folders 299,
                          or with --weights the size the weights record)
  --validation F          hold out fraction F of each class of the training set (seeded) for
                          per-epoch evaluation (default 0: evaluate on the test set each epoch;
                          an image folder without a test split then has no evaluation)
  --limit-train N, --limit-test N   use only the first N images (quick runs; image folders:
                          N spread evenly over the classes)
  --resize center-crop|stretch
                          image folders: scale the shorter side to the input and crop the centre
                          (default), or stretch to the input as Keras's load_img; recorded with
                          the weights, so eval and predict read images the same way
  --interpolation nearest|bilinear
                          image folders: the resize filter (default bilinear)
  --skip-bad-images       image folders: leave unreadable images out and count them each epoch
                          (default: stop with an error naming the file)
${imageLimitHelp(26)}
  --crop-padding N        random crop after zero padding by N pixels (default ${d.augment.cropPadding}; 0 = off)
  --flip, --no-flip       random horizontal flips on or off (default ${d.augment.flip ? 'on' : 'off'})
  --random-resized-crop   Inception-style random-resized crop (image folders)
Optimization:
  --epochs N              (default ${d.epochs}; with --fine-tune-epochs, the head-training epochs)
  --batch-size B          (default ${d.batchSize}; at most ${MAX_BATCH_SIZE.toLocaleString('en-US')})
  --optimizer NAME        ${OPTIMIZERS.join(' | ')} (default ${d.optimizer})
  --lr X                  peak learning rate (default: sgd ${d.lr} × batch size ÷ ${d.batchSize}, the
                          main job's rate scaled linearly; adam, adamw, rmsprop 1e-3)
  --momentum X            sgd / rmsprop momentum (default 0.9)
  --no-nesterov           plain momentum for sgd (default Nesterov)
  --weight-decay X        L2 decay added to the gradient, as the paper (default ${d.weightDecay}; decoupled for adamw)
  --schedule NAME         ${SCHEDULES.join(' | ')} (default ${d.schedule});
                          exponential-step is the paper's ×0.94 every 2 epochs
  --warmup-epochs X       linear warm-up (default 0)
  --label-smoothing X     (default ${d.labelSmoothing})
  --ema DECAY             evaluate with an exponential moving average of the weights (paper:
                          Polyak averaging), e.g. 0.999; default off
  --clip-norm X           clip the gradients' global norm
  --seed S                seeds initialization, shuffling, augmentation and dropout (default ${d.seed})
Transfer learning (the Keras recipe):
  --weights FILE|DIR      start from pretrained weights: a run folder, a .safetensors or a Keras
                          .h5 file. The model is the one the source records (model flags must
                          agree with it, except --dropout, --bn-momentum, --classifier-activation),
                          else the model flags' (Keras's defaults, not the main job's). The input
                          size may differ from the source's; the channels must match. The
                          classifier (predictions) is replaced by a freshly initialized one when
                          the data's classes differ from the source's (in number, or by name).
  --freeze-base           train only the classifier; the rest is frozen, batch norm in inference
                          mode (needs --weights)
  --fine-tune-epochs N    after the --epochs head epochs, fine-tune N more in the same run: the
                          base unfrozen, batch norm still in inference mode, a fresh optimizer
                          state at a constant rate (needs --freeze-base)
  --fine-tune-lr X        that rate (default: --lr ÷ 100; the Keras guide uses 1e-5 with
                          --optimizer adam --lr 1e-3)
  --unfreeze-from LAYER   fine-tune only LAYER and the layers after it in Keras layer order
                          (\`xception summary\` lists them); the layers before stay frozen
Run:
  --out DIR               run folder (default ${d.outDir})
  --resume                continue the run in --out from its last checkpoint with the run's own
                          settings: no other flag is needed. Flags given must agree with the
                          run's, except --epochs and --fine-tune-epochs (may grow), --backend,
                          --replicas, --json and --checkpoint-every. Reproduces an
                          uninterrupted run exactly.
  --backend NAME          native | wasm | reference (default: native where built, else wasm)
  --replicas N            data-parallel: split each batch between N worker threads, each with
                          its share of the cores, and combine their gradients (default ${d.replicas ?? 1};
                          at most the machine's cores).
                          Batch norm then normalizes each shard with its own statistics.
  --precision fp32|bf16   bf16: mixed precision on the native backend — convolutions forward and
                          backward multiply in bfloat16, weights, optimizer state and batch-norm
                          statistics stay float32 (default fp32). Recorded with the run; --resume
                          keeps it. Fast where the CPU has AVX512_BF16; emulated (correct, not
                          faster) on other AVX-512 CPUs; refused without AVX-512 or on reference
  --checkpoint-every N    also checkpoint every N steps
  --json                  progress to stderr; last stdout line is one JSON object:
                          {testTop1, testTop5, testLoss, epochs, wallSeconds, imagesPerSec, outDir, precision}
  -h, --help

${TRAIN_MODEL_HELP}
`;

const TRANSFER_FLAGS: FlagSpec = {
  weights: { type: 'string' },
  'freeze-base': { type: 'boolean' },
  'fine-tune-epochs': { type: 'string' },
  'fine-tune-lr': { type: 'string' },
  'unfreeze-from': { type: 'string' },
};

/** The transfer settings: `base`'s (a resumed run's own) with the flags given on top. */
function transferFromFlags(p: Parsed, base: TransferConfig): TransferConfig {
  const v = p.values;
  const t: TransferConfig = {};
  const weights = (v['weights'] as string | undefined) ?? base.weights;
  if (weights !== undefined) t.weights = weights;
  if (v['freeze-base'] || base.freezeBase) t.freezeBase = true;
  const epochs = intFlag('fine-tune-epochs', v['fine-tune-epochs']) ?? base.fineTuneEpochs;
  if (epochs !== undefined) t.fineTuneEpochs = epochs;
  const lr = numberFlag('fine-tune-lr', v['fine-tune-lr'], 1e-12, 100) ?? base.fineTuneLr;
  if (lr !== undefined) t.fineTuneLr = lr;
  const from = (v['unfreeze-from'] as string | undefined) ?? base.unfreezeFrom;
  if (from !== undefined) t.unfreezeFrom = from;
  return t;
}

/** The model of a transfer run: --model when given, else the one the weights record, else xception. */
async function transferModelName(weights: string, flag: string | undefined, fallback: string): Promise<string> {
  if (flag !== undefined) return flag;
  return (await openWeights(weights)).record?.model ?? fallback;
}

/**
 * The run's settings: `base` with the flags given on top. `base` is DEFAULT_TRAIN_CONFIG for a
 * new run (its model options then follow the data: defaultModelOptions) and the run's own
 * settings when resuming.
 */
export function configFromFlags(p: Parsed, base: TrainConfig, resuming: boolean, outDir: string): TrainConfig {
  const v = p.values;
  const dataset = (v['dataset'] as string | undefined) ?? base.dataset;
  const model = modelFromFlags(p, {}, resuming ? base.model : d.model);
  const seed = intFlag('seed', v['seed'], 0) ?? base.seed;
  delete model.options['seed'];
  const modelDefaults = resuming && model.name === base.model ? base.modelOptions : defaultModelOptions(model.name, dataset);
  const batchSize = intFlag('batch-size', v['batch-size'], 1, MAX_BATCH_SIZE) ?? base.batchSize;
  const optimizer = choiceFlag('optimizer', v['optimizer'], OPTIMIZERS) ?? base.optimizer;
  const config: TrainConfig = {
    ...base,
    dataset,
    model: model.name,
    modelOptions: { ...modelDefaults, ...model.options },
    epochs: intFlag('epochs', v['epochs']) ?? base.epochs,
    batchSize,
    optimizer,
    lr: numberFlag('lr', v['lr'], 1e-12, 100) ?? (resuming ? base.lr : defaultLearningRate(optimizer, batchSize)),
    momentum: numberFlag('momentum', v['momentum'], 0, 1) ?? base.momentum ?? d.momentum,
    nesterov: v['no-nesterov'] ? false : (base.nesterov ?? d.nesterov),
    weightDecay: numberFlag('weight-decay', v['weight-decay'], 0, 1) ?? base.weightDecay,
    schedule: choiceFlag('schedule', v['schedule'], SCHEDULES) ?? base.schedule,
    warmupEpochs: numberFlag('warmup-epochs', v['warmup-epochs'], 0, 1e6) ?? base.warmupEpochs,
    labelSmoothing: numberFlag('label-smoothing', v['label-smoothing'], 0, 0.99) ?? base.labelSmoothing,
    ema: numberFlag('ema', v['ema'], 0, 0.999999) ?? base.ema,
    clipNorm: numberFlag('clip-norm', v['clip-norm'], 0, 1e9) ?? base.clipNorm,
    seed,
    augment: {
      cropPadding: intFlag('crop-padding', v['crop-padding'], 0) ?? base.augment.cropPadding,
      flip: v['flip'] && v['no-flip'] ? flagConflict('--flip', '--no-flip') : v['flip'] ? true : v['no-flip'] ? false : base.augment.flip,
      randomResizedCrop: v['random-resized-crop'] ? true : base.augment.randomResizedCrop,
    },
    validationFraction: numberFlag('validation', v['validation'], 0, 0.9) ?? base.validationFraction,
    precision: choiceFlag('precision', v['precision'], TRAIN_PRECISIONS) ?? base.precision ?? 'fp32',
    outDir,
    ...transferFromFlags(p, base),
  };
  if (v['skip-bad-images'] || base.skipBadImages) config.skipBadImages = true;
  if (v['multi-label'] || base.multiLabel) config.multiLabel = true;
  const resize = choiceFlag('resize', v['resize'], RESIZE_POLICIES) ?? base.resize;
  if (resize !== undefined) config.resize = resize;
  const interpolation = choiceFlag('interpolation', v['interpolation'], RESIZE_INTERPOLATIONS) ?? base.interpolation;
  if (interpolation !== undefined) config.interpolation = interpolation;
  const optional = {
    replicas: intFlag('replicas', v['replicas'], 1) ?? base.replicas,
    imageSize: intFlag('image-size', v['image-size']) ?? base.imageSize,
    limitTrain: intFlag('limit-train', v['limit-train']) ?? base.limitTrain,
    limitTest: intFlag('limit-test', v['limit-test']) ?? base.limitTest,
  };
  for (const [k, n] of Object.entries(optional)) {
    if (n !== undefined) config[k as keyof typeof optional] = n;
  }
  if (config.optimizer !== 'sgd') delete config.nesterov;
  if (config.optimizer === 'adam' || config.optimizer === 'adamw') delete config.momentum;
  return config;
}

/** The settings of the run in `dir`, from its checkpoint; a clear error when there is none. */
function savedRunConfig(dir: string): TrainConfig {
  if (!hasCheckpoint(resolve(dir))) {
    throw new OptionError(`--resume: nothing to resume in ${dir} (no ${CHECKPOINT_FILE} there); start the run without --resume`);
  }
  // A run from before --precision trained in fp32.
  return { precision: 'fp32', ...(readCheckpoint(resolve(dir)).state.config as unknown as TrainConfig) };
}

/** Flags that may differ from the run's on --resume: they change how it runs, not what it trains. */
const MAY_CHANGE_ON_RESUME = ['epochs', 'fine-tune-epochs', 'out', 'resume', 'backend', 'replicas', 'json', 'checkpoint-every'];

/** The flags that set each training setting (model options: MODEL_OPTION_FLAGS). */
const SETTING_FLAGS: Record<string, string[]> = {
  dataset: ['dataset'],
  imageSize: ['image-size'],
  validationFraction: ['validation'],
  limitTrain: ['limit-train'],
  limitTest: ['limit-test'],
  'augment.cropPadding': ['crop-padding'],
  'augment.flip': ['flip', 'no-flip'],
  'augment.randomResizedCrop': ['random-resized-crop'],
  batchSize: ['batch-size'],
  optimizer: ['optimizer'],
  lr: ['lr'],
  momentum: ['momentum'],
  nesterov: ['no-nesterov'],
  weightDecay: ['weight-decay'],
  schedule: ['schedule'],
  warmupEpochs: ['warmup-epochs'],
  labelSmoothing: ['label-smoothing'],
  ema: ['ema'],
  clipNorm: ['clip-norm'],
  seed: ['seed'],
  model: ['model'],
  skipBadImages: ['skip-bad-images'],
  multiLabel: ['multi-label'],
  resize: ['resize'],
  interpolation: ['interpolation'],
  weights: ['weights'],
  freezeBase: ['freeze-base'],
  fineTuneLr: ['fine-tune-lr'],
  unfreezeFrom: ['unfreeze-from'],
  precision: ['precision'],
};

/** `{a: 1, augment: {flip: true}}` → `{a: 1, 'augment.flip': true}` (one level: the config's groups). */
function flattenSettings(c: TrainConfig): Map<string, unknown> {
  const flat = new Map<string, unknown>();
  for (const [k, val] of Object.entries(c)) {
    if (val !== null && typeof val === 'object' && !Array.isArray(val)) {
      for (const [sub, x] of Object.entries(val as Record<string, unknown>)) flat.set(`${k}.${sub}`, x);
    } else {
      flat.set(k, val);
    }
  }
  return flat;
}

const show = (x: unknown): string => (x === undefined ? 'unset' : Array.isArray(x) ? x.join(',') : String(x));

/** On --resume, flags given must agree with the run's settings; a short error names those that do not. */
function checkFlagsAgree(p: Parsed, saved: TrainConfig, now: TrainConfig, outDir: string): void {
  const was = flattenSettings(saved);
  const is = flattenSettings(now);
  const disagreements: string[] = [];
  for (const key of new Set([...was.keys(), ...is.keys()])) {
    if (JSON.stringify(was.get(key)) === JSON.stringify(is.get(key))) continue;
    const flags = SETTING_FLAGS[key] ?? (key.startsWith('modelOptions.') ? [MODEL_OPTION_FLAGS[key.slice(13)] ?? ''] : []);
    // Only flags the user gave: a setting that follows from another (momentum after --optimizer) is not news.
    const given = flags.filter((f) => p.values[f] !== undefined && !MAY_CHANGE_ON_RESUME.includes(f));
    if (given.length) disagreements.push(`--${given[0]} (the run has ${show(was.get(key))}, given ${show(is.get(key))})`);
  }
  if (disagreements.length) {
    throw new OptionError(
      `--resume: ${[...new Set(disagreements)].join('; ')} — a run continues with its own settings. ` +
        `Drop ${disagreements.length > 1 ? 'these flags' : 'the flag'} (\`xception train --resume --out ${outDir}\` alone continues it) or start a new run with another --out`,
    );
  }
}

function flagConflict(a: string, b: string): never {
  throw new OptionError(`${a} and ${b} contradict each other; give one`);
}

export const TRAIN_FLAGS: FlagSpec = {
  ...MODEL_FLAGS,
  dataset: { type: 'string' },
  'image-size': { type: 'string' },
  validation: { type: 'string' },
  'limit-train': { type: 'string' },
  'limit-test': { type: 'string' },
  'crop-padding': { type: 'string' },
  flip: { type: 'boolean' },
  'no-flip': { type: 'boolean' },
  'random-resized-crop': { type: 'boolean' },
  'skip-bad-images': { type: 'boolean' },
  'multi-label': { type: 'boolean' },
  ...IMAGE_LIMIT_FLAGS,
  resize: { type: 'string' },
  interpolation: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  optimizer: { type: 'string' },
  lr: { type: 'string' },
  momentum: { type: 'string' },
  'no-nesterov': { type: 'boolean' },
  'weight-decay': { type: 'string' },
  schedule: { type: 'string' },
  'warmup-epochs': { type: 'string' },
  'label-smoothing': { type: 'string' },
  ema: { type: 'string' },
  'clip-norm': { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  backend: { type: 'string' },
  replicas: { type: 'string' },
  'checkpoint-every': { type: 'string' },
  precision: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  ...TRANSFER_FLAGS,
};

export async function trainCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('train', argv, TRAIN_FLAGS);
  const v = p.values;
  if (v['help']) {
    out(TRAIN_HELP);
    return 0;
  }
  applyImageLimitFlag(v);
  const outDir = (v['out'] as string | undefined) ?? d.outDir;
  // A resumed run starts from its own settings: `--resume --out DIR` alone continues it.
  const saved = v['resume'] ? savedRunConfig(outDir) : null;
  const config = configFromFlags(p, saved ?? d, saved !== null, outDir);
  if (saved) checkFlagsAgree(p, saved, config, outDir);
  validateTrainConfig(config); // before anything is written
  const backend = backendFlag(v['backend']);
  const runsOn = backend ? tryBackend(backend) : getBackend();
  if (runsOn) checkTrainPrecision(runsOn, config.precision ?? 'fp32');
  if (!saved) makeOutputDir(outDir);
  if (config.weights !== undefined && !saved) {
    // Transfer: the source's record (or Keras's defaults) decides what the model flags leave open.
    config.model = await transferModelName(config.weights, v['model'] as string | undefined, config.model);
    const given = modelFromFlags(p, {}, config.model).options;
    delete given['seed'];
    config.modelOptions = given;
  }
  const checkpointEvery = intFlag('checkpoint-every', v['checkpoint-every']);

  const json = Boolean(v['json']);
  const stop = listenForStop('train');
  try {
    const r = await train(config, {
      resume: Boolean(v['resume']),
      progress: new Progress(json ? process.stderr : process.stdout),
      shouldStop: stop.requested,
      ...(checkpointEvery ? { checkpointEverySteps: checkpointEvery } : {}),
      ...(backend ? { backend } : {}),
    });
    const summary = {
      testTop1: r.testTop1,
      testTop5: r.testTop5,
      testLoss: r.testLoss,
      epochs: r.epochs,
      wallSeconds: r.wallSeconds,
      imagesPerSec: r.imagesPerSec,
      outDir: r.outDir,
      precision: r.precision,
    };
    if (json) {
      out(`${JSON.stringify(summary)}\n`);
    } else if (!r.interrupted && Number.isNaN(r.testTop1)) {
      out(
        `\nno evaluation (no test or validation split) after ${r.epochs} epochs in ${r.wallSeconds.toFixed(0)} s (${r.imagesPerSec.toFixed(1)} img/s, ${r.backend} backend)\n` +
          `run folder: ${r.outDir}  (curves: ${r.outDir}/curves.png, weights: ${r.outDir}/weights.safetensors)\n`,
      );
    } else if (!r.interrupted) {
      out(
        `\n${r.finalEvalName ?? 'test'} top-1 ${(100 * r.testTop1).toFixed(2)}%  top-5 ${(100 * r.testTop5).toFixed(2)}%  loss ${r.testLoss.toFixed(4)}` +
          `  after ${r.epochs} epochs in ${r.wallSeconds.toFixed(0)} s (${r.imagesPerSec.toFixed(0)} img/s, ${r.backend} backend)\n` +
          `run folder: ${r.outDir}  (curves: ${r.outDir}/curves.png, weights: ${r.outDir}/weights.safetensors)\n`,
      );
    }
    return r.interrupted ? stop.exitCode() : 0;
  } finally {
    stop.dispose();
  }
}
