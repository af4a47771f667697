import { readFile, stat } from 'node:fs/promises';
import { setBackend } from '../../core/engine.js';
import { OptionError } from '../../core/errors.js';
import { MAX_BATCH_SIZE } from '../../train/trainer.js';
import { getModelEntry } from '../../models/registry.js';
import { ImageError, outputsProbabilities, predictImages } from '../../predict/predict.js';
import { choiceFlag, intFlag, parse, backendFlag } from '../args.js';
import { MODEL_FLAGS, MODEL_FLAGS_HELP } from '../model-flags.js';
import { loadModelForCommand, WEIGHTS_FLAGS, WEIGHTS_FLAGS_HELP } from '../weights-source.js';

export const PREDICT_HELP = `Usage: xception predict IMAGE... [--weights FILE|DIR] [--top K] [--json] [options]

Classifies images (JPEG, PNG, WebP, … decoded by sharp) as Keras does:
image.load_img(path, target_size=model input) — RGB (grey for 1-channel models), alpha
dropped, resized without keeping the aspect ratio with Pillow's exact arithmetic — then the
model's preprocess_input, a forward pass, and decode_predictions.
With a 1000-class model the labels are the ImageNet class names shipped in the package.

Without --weights the model is randomly initialised and its predictions mean nothing; no
official weights ship with the package (pass the Keras file, e.g.
--weights xception_weights_tf_dim_ordering_tf_kernels.h5).

  --top K                         classes per image (default 5)
  --json                          one JSON object per image and line:
                                  {"file", "predictions": [{"index", "label", "probability"}]}
                                  (warnings go to stderr)
  --labels FILE                   class labels, one per line (default: ImageNet names for 1000
                                  classes, else the class index)
  --interpolation nearest|bilinear
                                  resize filter (default nearest, as Keras's load_img;
                                  both give Pillow's pixels exactly)
  --batch-size B                  images per forward pass (default 8)
  --backend NAME                  native | reference
  -h, --help

${WEIGHTS_FLAGS_HELP}

${MODEL_FLAGS_HELP}

Examples:
  xception predict cat.jpg --weights xception_weights_tf_dim_ordering_tf_kernels.h5
  xception predict a.png b.webp --weights runs/fashion --top 3 --json
`;

export async function predictCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('predict', argv, {
    ...MODEL_FLAGS, ...WEIGHTS_FLAGS,
    top: { type: 'string' }, json: { type: 'boolean' }, labels: { type: 'string' }, interpolation: { type: 'string' },
    'batch-size': { type: 'string' }, backend: { type: 'string' }, help: { type: 'boolean', short: 'h' },
  }, true);
  const v = p.values;
  if (v['help']) {
    out(PREDICT_HELP);
    return 0;
  }
  if (p.positionals.length === 0) throw new OptionError('predict needs at least one IMAGE (see `xception predict --help`)');
  const top = intFlag('top', v['top']) ?? 5;
  const batchSize = intFlag('batch-size', v['batch-size'], 1, MAX_BATCH_SIZE) ?? 8;
  const interpolation = choiceFlag('interpolation', v['interpolation'], ['nearest', 'bilinear'] as const) ?? 'nearest';
  const backend = backendFlag(v['backend']);
  if (backend) setBackend(backend);
  let labels: string[] | undefined;
  if (v['labels'] !== undefined) {
    const file = v['labels'] as string;
    try {
      labels = (await readFile(file, 'utf8')).split(/\r?\n/).filter((l, i, all) => l.length > 0 || i < all.length - 1);
    } catch (e) {
      throw new OptionError(`--labels ${file}: cannot read (${(e as Error).message})`);
    }
  }
  // Every image must be there before a model is built (a typo should not cost a forward pass).
  for (const file of p.positionals) {
    let st;
    try {
      st = await stat(file);
    } catch {
      throw new ImageError(file, 'no such file');
    }
    if (!st.isFile()) throw new ImageError(file, 'is not a file');
  }
  const json = Boolean(v['json']);
  const warn = (s: string) => (json ? process.stderr.write(`xception predict: ${s}\n`) : out(`${s}\n`));

  const loaded = await loadModelForCommand('predict', p);
  const { model } = loaded;
  try {
    if (model.outputShape.length !== 1) throw new OptionError(`the model outputs [${model.outputShape.join(', ')}], not class scores: predict needs the classifier (drop --no-top)`);
    const classes = model.outputShape[0]!;
    if (labels && labels.length !== classes) throw new OptionError(`--labels has ${labels.length} labels, the model ${classes} classes`);
    if (loaded.weightsSource === null) {
      warn('warning: no --weights given: the model is randomly initialised, so these predictions are meaningless (no official weights ship offline; pass e.g. --weights xception_weights_tf_dim_ordering_tf_kernels.h5)');
    } else if (!json) {
      out(`weights: ${loaded.description}\n`);
    }
    if (!outputsProbabilities(model)) warn('note: the classifier outputs logits; probabilities are their softmax');
    const results = await predictImages(model, p.positionals, {
      top, batchSize, interpolation, preprocessing: getModelEntry(loaded.modelName).preprocessing, ...(labels ? { labels } : {}),
    });
    for (const r of results) {
      if (json) {
        out(JSON.stringify(r) + '\n');
      } else {
        out(`${r.file}\n`);
        r.predictions.forEach((c, i) => out(`  ${String(i + 1).padStart(2)}. ${c.probability.toFixed(4)}  ${c.label} (${c.index})\n`));
      }
    }
    return 0;
  } finally {
    model.dispose();
  }
}
