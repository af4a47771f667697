import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setBackend } from '../../core/engine.js';
import { OptionError } from '../../core/errors.js';
import { kerasPreprocessing } from '../../data/image-preprocessing.js';
import { openEvaluationData } from '../../data/training-data.js';
import { peekSafetensorsMetadata } from '../../io/model-weights.js';
import { getModelEntry } from '../../models/registry.js';
import { isMultiLabelModel } from '../../predict/predict.js';
import { type EvalResult, evaluate } from '../../train/metrics.js';
import { MAX_BATCH_SIZE } from '../../train/trainer.js';
import { backendFlag, intFlag, parse } from '../args.js';
import { applyImageLimitFlag, IMAGE_LIMIT_FLAGS, imageLimitHelp } from '../image-limit.js';
import { MODEL_FLAGS, MODEL_FLAGS_HELP } from '../model-flags.js';
import { applyPrecision, PRECISION_FLAGS, precisionFromFlags, precisionHelp } from '../precision-flag.js';
import { loadModelForCommand } from '../weights-source.js';

export const EVAL_HELP = `Usage: xception eval --weights FILE|DIR [options]

Evaluates weights on a test set and prints top-1, top-5 accuracy and the mean cross-entropy
loss. A run folder (written by 'xception train') or a file this project wrote records its
model (and, from training, its class names and preprocessing): no model flags are needed.
A run's averaged (EMA) weights are used when it kept them.

  --weights FILE|DIR      run folder, .safetensors file or Keras H5 file (an H5 file from
                          elsewhere records no model: give the model flags)
  --checkpoint DIR        the same as --weights
  --weights-mode order|name|auto
                          how H5 layers are matched (default auto; see 'xception predict --help')
  --dataset SPEC          default: the run's dataset (test split); required for other files
  --batch-size B          (default 256 for inputs up to 64×64, else 16: a batch of 256
                          299×299 images would need tens of GB of activations)
  --limit N               evaluate only the first N test images
  --no-ema                use the live weights even if the run kept an average
  --backend NAME          native | wasm | reference
  --json                  one JSON object: {testTop1, testTop5, testLoss} (fractions 0–1; with
                          bf16/int8 also fp32: {top1, top5, identical}); for a multi-label
                          model (sigmoid head): {map, perClassAP, testLoss}, map = MAP@100 (0–1)
${precisionHelp(24)}
  --no-compare            with --precision bf16|int8: skip the fp32 plan run beside it (by
                          default eval also runs fp32 on the same images and prints its top-1
                          and the share of predictions identical to fp32)
${imageLimitHelp(26)}
  -h, --help

When the weights and the dataset both name their classes, they are matched by name (the
dataset may hold a subset of the model's classes, in any order).

${MODEL_FLAGS_HELP}
`;

export async function evalCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('eval', argv, {
    ...MODEL_FLAGS,
    weights: { type: 'string' },
    checkpoint: { type: 'string' },
    'weights-mode': { type: 'string' },
    dataset: { type: 'string' },
    'batch-size': { type: 'string' },
    limit: { type: 'string' },
    'no-ema': { type: 'boolean' },
    backend: { type: 'string' },
    json: { type: 'boolean' },
    ...PRECISION_FLAGS,
    'no-compare': { type: 'boolean' },
    ...IMAGE_LIMIT_FLAGS,
    help: { type: 'boolean', short: 'h' },
  });
  const v = p.values;
  if (v['help']) {
    out(EVAL_HELP);
    return 0;
  }
  applyImageLimitFlag(v);
  if (v['weights'] !== undefined && v['checkpoint'] !== undefined)
    throw new OptionError('give --weights or --checkpoint, not both (they are the same)');
  const flag = v['checkpoint'] !== undefined ? '--checkpoint' : '--weights';
  const source = (v['weights'] ?? v['checkpoint']) as string | undefined;
  if (!source) throw new OptionError('eval needs --weights FILE|DIR (a run folder written by xception train, or a weight file)');
  const givenBatch = intFlag('batch-size', v['batch-size'], 1, MAX_BATCH_SIZE);
  const limit = intFlag('limit', v['limit']);
  const backend = backendFlag(v['backend']);
  if (backend) setBackend(backend);
  const spec = (v['dataset'] as string | undefined) ?? (await recordedDataset(source));
  if (!spec) throw new OptionError(`${flag} ${source} does not say which dataset it was trained on; pass --dataset SPEC`);
  const precision = await precisionFromFlags(v);

  const loaded = await loadModelForCommand('eval', p, { weights: source, flag, useEma: !v['no-ema'] });
  const { model } = loaded;
  try {
    await applyPrecision(model, precision, loaded.weightsSource);
    if (model.outputShape.length !== 1)
      throw new OptionError(`the model outputs [${model.outputShape.join(', ')}], not class scores: eval needs the classifier`);
    const classes = model.outputShape[0]!;
    const prep = loaded.record?.preprocessing ?? kerasPreprocessing(getModelEntry(loaded.modelName).preprocessing);
    // Labels become the model's class indices (by name when both sides name their classes).
    const { loader, description } = await openEvaluationData({
      dataset: spec,
      shape: model.inputShape as [number, number, number],
      scaling: prep.scaling,
      preprocessing: prep,
      classes,
      batchSize: givenBatch ?? ((model.inputShape[0] ?? 0) <= 64 ? 256 : 16),
      ...(loaded.record?.classNames ? { classNames: loaded.record.classNames } : {}),
      ...(limit ? { limit } : {}),
    });
    const say = (line: string) => (v['json'] ? process.stderr.write(`xception eval: ${line}\n`) : out(`${line}\n`));
    say(`data: ${description}`);
    if (v['dataset'] === undefined && description.startsWith('every image of ')) {
      say(
        'note: this is the folder the run trained on, so the score includes its training images; its held-out validation scores are in metrics.jsonl (or pass --dataset folder:OTHER)',
      );
    }
    const multiLabel = isMultiLabelModel(model);
    const r = await evaluate(model, loader.epochBatches(), classes, { multiLabel, compareFp32: !v['no-compare'] });
    out(v['json'] ? `${JSON.stringify(evalJson(r, multiLabel))}\n` : evalText(r, multiLabel, precision?.precision));
    return 0;
  } finally {
    model.dispose();
  }
}

/** --json's object; `fp32` when a lower precision was compared with the fp32 plan. */
function evalJson(r: EvalResult, multiLabel: boolean): Record<string, unknown> {
  // MAP@100 instead of top-1/top-5: the paper's JFT metric (a fraction 0–1), with each class's AP@100.
  if (multiLabel) return { map: r.map, perClassAP: r.perClassAP, testLoss: r.loss };
  return { testTop1: r.top1, testTop5: r.top5, testLoss: r.loss, ...(r.fp32 ? { fp32: r.fp32 } : {}) };
}

function evalText(r: EvalResult, multiLabel: boolean, precision: string | undefined): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  if (multiLabel) return `${r.count} images: MAP@100 ${pct(r.map!)}  binary cross-entropy ${r.loss.toFixed(4)}\n`;
  let text = `${r.count} images: top-1 ${pct(r.top1)}  top-5 ${pct(r.top5)}  loss ${r.loss.toFixed(4)}\n`;
  if (r.fp32) {
    const delta = 100 * (r.top1 - r.fp32.top1);
    text +=
      `fp32 plan on the same images: top-1 ${pct(r.fp32.top1)}  top-5 ${pct(r.fp32.top5)}; ` +
      `${precision} top-1 ${delta >= 0 ? '+' : '−'}${Math.abs(delta).toFixed(2)} points; ` +
      `${pct(r.fp32.identical)} of predictions identical to fp32\n`;
  }
  return text;
}

/** The dataset a run (its config.json) or its weights.safetensors (`config` metadata) was trained on. */
async function recordedDataset(source: string): Promise<string | undefined> {
  const fromConfig = (text: string | undefined): string | undefined => {
    try {
      const d = text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>)['dataset'];
      return typeof d === 'string' ? d : undefined;
    } catch {
      return undefined;
    }
  };
  const meta = await peekSafetensorsMetadata(source);
  if (meta) return fromConfig(meta['config']);
  return fromConfig(await readFile(join(source, 'config.json'), 'utf8').catch(() => undefined));
}
