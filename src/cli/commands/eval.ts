import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setBackend } from '../../core/engine.js';
import { OptionError } from '../../core/errors.js';
import type { ImageDataset } from '../../data/dataset.js';
import { kerasPreprocessing } from '../../data/image-preprocessing.js';
import { DataLoader, type Batch } from '../../data/loader.js';
import { loadDataset } from '../../data/spec.js';
import { peekSafetensorsMetadata } from '../../io/model-weights.js';
import { getModelEntry } from '../../models/registry.js';
import { evaluate } from '../../train/metrics.js';
import { intFlag, choiceFlag, parse } from '../args.js';
import { MODEL_FLAGS, MODEL_FLAGS_HELP } from '../model-flags.js';
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
  --batch-size B          (default 256)
  --limit N               evaluate only the first N test images
  --no-ema                use the live weights even if the run kept an average
  --backend NAME          native | reference
  --json                  one JSON object: {testTop1, testTop5, testLoss}
  -h, --help

When the weights and the dataset both name their classes, they are matched by name (the
dataset may hold a subset of the model's classes, in any order).

${MODEL_FLAGS_HELP}
`;

export async function evalCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('eval', argv, {
    ...MODEL_FLAGS,
    weights: { type: 'string' }, checkpoint: { type: 'string' }, 'weights-mode': { type: 'string' },
    dataset: { type: 'string' }, 'batch-size': { type: 'string' }, limit: { type: 'string' },
    'no-ema': { type: 'boolean' }, backend: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  const v = p.values;
  if (v['help']) {
    out(EVAL_HELP);
    return 0;
  }
  if (v['weights'] !== undefined && v['checkpoint'] !== undefined) throw new OptionError('give --weights or --checkpoint, not both (they are the same)');
  const flag = v['checkpoint'] !== undefined ? '--checkpoint' : '--weights';
  const source = (v['weights'] ?? v['checkpoint']) as string | undefined;
  if (!source) throw new OptionError('eval needs --weights FILE|DIR (a run folder written by xception train, or a weight file)');
  const batchSize = intFlag('batch-size', v['batch-size']) ?? 256;
  const limit = intFlag('limit', v['limit']);
  const backend = choiceFlag('backend', v['backend'], ['native', 'reference'] as const);
  if (backend) setBackend(backend);
  const spec = (v['dataset'] as string | undefined) ?? (await recordedDataset(source));
  if (!spec) throw new OptionError(`${flag} ${source} does not say which dataset it was trained on; pass --dataset SPEC`);

  const loaded = await loadModelForCommand('eval', p, { weights: source, flag, useEma: !v['no-ema'] });
  const { model } = loaded;
  try {
    const ds = await loadDataset(spec, 'test');
    if (model.outputShape.length !== 1) throw new OptionError(`the model outputs [${model.outputShape.join(', ')}], not class scores: eval needs the classifier`);
    const classes = model.outputShape[0]!;
    const toModel = labelMap(ds, loaded.record?.classNames, classes);
    const [h, , c] = model.inputShape as [number, number, number];
    const prep = loaded.record?.preprocessing ?? kerasPreprocessing(getModelEntry(loaded.modelName).preprocessing);
    const indices = limit ? Int32Array.from({ length: Math.min(limit, ds.count) }, (_, i) => i) : undefined;
    const loader = new DataLoader(ds, { batchSize, shuffle: false, preprocessing: prep.scaling, size: h, channels: c, ...(indices ? { indices } : {}) });
    const r = await evaluate(model, remapLabels(loader.epochBatches(), toModel), classes);
    if (v['json']) out(JSON.stringify({ testTop1: r.top1, testTop5: r.top5, testLoss: r.loss }) + '\n');
    else out(`${r.count} images: top-1 ${(100 * r.top1).toFixed(2)}%  top-5 ${(100 * r.top5).toFixed(2)}%  loss ${r.loss.toFixed(4)}\n`);
    return 0;
  } finally {
    model.dispose();
  }
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

/**
 * Dataset label → model output index: by class name when both name their classes, else the
 * identity (then the class counts must agree). null = identity.
 */
export function labelMap(ds: ImageDataset, modelNames: readonly string[] | undefined, classes: number): Int32Array | null {
  if (!modelNames || !ds.classNames) {
    if (ds.classes !== classes) throw new OptionError(`the model has ${classes} outputs, the dataset ${ds.classes} classes`);
    return null;
  }
  const index = new Map(modelNames.map((n, i) => [n, i]));
  const unknown = ds.classNames.filter((n) => !index.has(n));
  if (unknown.length > 0) {
    throw new OptionError(`the dataset has class${unknown.length > 1 ? 'es' : ''} the model does not know: ${unknown.slice(0, 5).map((n) => `'${n}'`).join(', ')}${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''} (the model's: ${modelNames.slice(0, 5).join(', ')}${modelNames.length > 5 ? ', …' : ''})`);
  }
  const map = Int32Array.from(ds.classNames, (n) => index.get(n)!);
  return map.every((m, i) => m === i) && ds.classes === classes ? null : map;
}

async function* remapLabels(batches: AsyncIterable<Batch>, map: Int32Array | null): AsyncIterable<Batch> {
  for await (const b of batches) yield map ? { ...b, y: Int32Array.from(b.y, (k) => map[k]!) } : b;
}
