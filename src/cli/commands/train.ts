import { OptionError } from '../../core/errors.js';
import { DEFAULT_TRAIN_CONFIG, MAX_BATCH_SIZE, train, type TrainConfig } from '../../train/trainer.js';
import { Progress } from '../../train/progress.js';
import { OPTIMIZERS } from '../../train/optimizers.js';
import { SCHEDULES } from '../../train/schedules.js';
import { choiceFlag, intFlag, numberFlag, parse, backendFlag } from '../args.js';
import { MODEL_FLAGS, MODEL_FLAGS_HELP, modelFromFlags } from '../model-flags.js';

const d = DEFAULT_TRAIN_CONFIG;

export const TRAIN_HELP = `Usage: xception train [options]

Trains a model and writes a run folder: config.json, metrics.jsonl (one line per epoch),
curves.svg/.png, checkpoint.safetensors (everything needed to resume, written atomically at
each epoch end and on Ctrl-C) and weights.safetensors (the weights alone, Keras names).

With no options this is the main job: a small-image Xception (width ${(d.modelOptions as { width: number }).width}, ${(d.modelOptions as { middleBlocks: number }).middleBlocks} middle blocks,
batch-norm momentum ${(d.modelOptions as { bnMomentum: number }).bnMomentum}) on Fashion-MNIST (Debian package dataset-fashion-mnist), ${d.epochs} epochs, one-cycle SGD with Nesterov,
no augmentation, label smoothing ${d.labelSmoothing} — about ten minutes on 2 cores with the native backend.

Data:
  --dataset SPEC          fashion-mnist (default) | mnist:DIR | cifar10:DIR | cifar100:DIR | folder:DIR
  --image-size N          resize images to N×N (default: the dataset's size)
  --validation F          hold out fraction F of the training set for per-epoch evaluation
                          (default 0: evaluate on the test set each epoch)
  --limit-train N, --limit-test N   use only the first N images (quick runs)
  --crop-padding N        random crop after zero padding by N pixels (default ${d.augment.cropPadding}; 0 = off)
  --flip, --no-flip       random horizontal flips on or off (default ${d.augment.flip ? 'on' : 'off'})
  --random-resized-crop   Inception-style random-resized crop (image folders)
Optimization:
  --epochs N              (default ${d.epochs})
  --batch-size B          (default ${d.batchSize})
  --optimizer NAME        ${OPTIMIZERS.join(' | ')} (default ${d.optimizer})
  --lr X                  peak learning rate (default ${d.lr})
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
  --seed S                seeds initialization, shuffling, augmentation and dropout (default 0)
Run:
  --out DIR               run folder (default ${d.outDir})
  --resume                continue the run in --out from its last checkpoint (same settings;
                          --epochs may grow). Reproduces an uninterrupted run exactly.
  --backend NAME          native | reference (default: native where built)
  --replicas N            data-parallel: split each batch between N worker threads, each with
                          its share of the cores, and combine their gradients (default ${d.replicas ?? 1}).
                          Batch norm then normalizes each shard with its own statistics.
  --checkpoint-every N    also checkpoint every N steps
  --json                  progress to stderr; last stdout line is one JSON object:
                          {testTop1, testTop5, testLoss, epochs, wallSeconds, imagesPerSec, outDir}
  -h, --help

${MODEL_FLAGS_HELP}
`;

function flagConflict(a: string, b: string): never {
  throw new OptionError(`${a} and ${b} contradict each other; give one`);
}

export async function trainCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('train', argv, {
    ...MODEL_FLAGS,
    dataset: { type: 'string' }, 'image-size': { type: 'string' }, validation: { type: 'string' },
    'limit-train': { type: 'string' }, 'limit-test': { type: 'string' }, 'crop-padding': { type: 'string' },
    flip: { type: 'boolean' }, 'no-flip': { type: 'boolean' }, 'random-resized-crop': { type: 'boolean' },
    epochs: { type: 'string' }, 'batch-size': { type: 'string' }, optimizer: { type: 'string' }, lr: { type: 'string' },
    momentum: { type: 'string' }, 'no-nesterov': { type: 'boolean' }, 'weight-decay': { type: 'string' },
    schedule: { type: 'string' }, 'warmup-epochs': { type: 'string' }, 'label-smoothing': { type: 'string' },
    ema: { type: 'string' }, 'clip-norm': { type: 'string' },
    out: { type: 'string' }, resume: { type: 'boolean' }, backend: { type: 'string' }, replicas: { type: 'string' }, 'checkpoint-every': { type: 'string' },
    json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  const v = p.values;
  if (v['help']) {
    out(TRAIN_HELP);
    return 0;
  }
  const model = modelFromFlags(p);
  const seed = intFlag('seed', v['seed'], 0) ?? d.seed;
  delete model.options['seed'];
  const config: TrainConfig = {
    ...d,
    dataset: (v['dataset'] as string | undefined) ?? d.dataset,
    model: model.name,
    modelOptions: model.name === d.model ? { ...d.modelOptions, ...model.options } : model.options,
    epochs: intFlag('epochs', v['epochs']) ?? d.epochs,
    batchSize: intFlag('batch-size', v['batch-size'], 1, MAX_BATCH_SIZE) ?? d.batchSize,
    optimizer: choiceFlag('optimizer', v['optimizer'], OPTIMIZERS) ?? d.optimizer,
    lr: numberFlag('lr', v['lr'], 1e-12, 100) ?? d.lr,
    momentum: numberFlag('momentum', v['momentum'], 0, 1) ?? d.momentum,
    nesterov: v['no-nesterov'] ? false : d.nesterov,
    weightDecay: numberFlag('weight-decay', v['weight-decay'], 0, 1) ?? d.weightDecay,
    schedule: choiceFlag('schedule', v['schedule'], SCHEDULES) ?? d.schedule,
    warmupEpochs: numberFlag('warmup-epochs', v['warmup-epochs'], 0, 1e6) ?? d.warmupEpochs,
    labelSmoothing: numberFlag('label-smoothing', v['label-smoothing'], 0, 0.99) ?? d.labelSmoothing,
    ema: numberFlag('ema', v['ema'], 0, 0.999999) ?? d.ema,
    clipNorm: numberFlag('clip-norm', v['clip-norm'], 0, 1e9) ?? d.clipNorm,
    seed,
    augment: {
      cropPadding: intFlag('crop-padding', v['crop-padding'], 0) ?? d.augment.cropPadding,
      flip: v['flip'] && v['no-flip'] ? flagConflict('--flip', '--no-flip') : v['flip'] ? true : v['no-flip'] ? false : d.augment.flip,
      randomResizedCrop: Boolean(v['random-resized-crop']),
    },
    validationFraction: numberFlag('validation', v['validation'], 0, 0.9) ?? d.validationFraction,
    outDir: (v['out'] as string | undefined) ?? d.outDir,
  };
  const replicas = intFlag('replicas', v['replicas'], 1);
  if (replicas !== undefined) config.replicas = replicas;
  const imageSize = intFlag('image-size', v['image-size']);
  if (imageSize) config.imageSize = imageSize;
  const lt = intFlag('limit-train', v['limit-train']);
  if (lt) config.limitTrain = lt;
  const le = intFlag('limit-test', v['limit-test']);
  if (le) config.limitTest = le;
  if (config.optimizer !== 'sgd') delete config.nesterov;
  if (config.optimizer === 'adam' || config.optimizer === 'adamw') delete config.momentum;
  const backend = backendFlag(v['backend']);
  const checkpointEvery = intFlag('checkpoint-every', v['checkpoint-every']);
  if (v['resume'] && v['out'] === undefined && argv.some((a) => a.startsWith('--') && !['--resume', '--json', '--epochs', '--backend', '--replicas'].includes(a.split('=')[0]!))) {
    throw new OptionError('--resume continues a run with its saved settings: give --out DIR (and optionally --epochs)');
  }

  const json = Boolean(v['json']);
  let stops = 0;
  const onSigint = () => {
    stops++;
    if (stops > 1) process.exit(130);
    process.stderr.write('\nxception train: stopping after this step and saving a checkpoint (Ctrl-C again to abort)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    const r = await train(config, {
      resume: Boolean(v['resume']),
      progress: new Progress(json ? process.stderr : process.stdout),
      shouldStop: () => stops > 0,
      ...(checkpointEvery ? { checkpointEverySteps: checkpointEvery } : {}),
      ...(backend ? { backend } : {}),
    });
    const summary = {
      testTop1: r.testTop1, testTop5: r.testTop5, testLoss: r.testLoss, epochs: r.epochs,
      wallSeconds: r.wallSeconds, imagesPerSec: r.imagesPerSec, outDir: r.outDir,
    };
    if (json) {
      out(JSON.stringify(summary) + '\n');
    } else if (!r.interrupted) {
      out(
        `\ntest top-1 ${(100 * r.testTop1).toFixed(2)}%  top-5 ${(100 * r.testTop5).toFixed(2)}%  loss ${r.testLoss.toFixed(4)}` +
          `  after ${r.epochs} epochs in ${r.wallSeconds.toFixed(0)} s (${r.imagesPerSec.toFixed(0)} img/s, ${r.backend} backend)\n` +
          `run folder: ${r.outDir}  (curves: ${r.outDir}/curves.png, weights: ${r.outDir}/weights.safetensors)\n`,
      );
    }
    return r.interrupted ? 130 : 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
