import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { setBackend } from '../../core/engine.js';
import { OptionError } from '../../core/errors.js';
import { IMAGE_EXTENSIONS } from '../../data/folder.js';
import { kerasPreprocessing, RESIZE_INTERPOLATIONS, RESIZE_POLICIES, type ImagePreprocessing } from '../../data/image-preprocessing.js';
import { MAX_BATCH_SIZE } from '../../train/trainer.js';
import { getModelEntry } from '../../models/registry.js';
import {
  ImageError,
  type ImagePrediction,
  isMultiLabelModel,
  MULTI_LABEL_THRESHOLD,
  outputsProbabilities,
  predictImages,
} from '../../predict/predict.js';
import { backendFlag, choiceFlag, type FlagSpec, intFlag, parse } from '../args.js';
import { applyImageLimitFlag, IMAGE_LIMIT_FLAGS, imageLimitHelp } from '../image-limit.js';
import { MODEL_FLAGS, MODEL_FLAGS_HELP } from '../model-flags.js';
import { applyPrecision, PRECISION_FLAGS, precisionFromFlags, precisionHelp } from '../precision-flag.js';
import { loadModelForCommand, WEIGHTS_FLAGS, WEIGHTS_FLAGS_HELP } from '../weights-source.js';

export const PREDICT_HELP = `Usage: xception predict IMAGE|DIR... [--weights FILE|DIR] [--top K] [--json] [options]

Classifies images (JPEG, PNG, WebP, … decoded by sharp). A DIR stands for every image file
in it (${IMAGE_EXTENSIONS.join(', ')}; not sub-folders), in sorted order. An image that
cannot be read is reported on stderr and the others are still classified; the exit code is
then 1.

Each image is read as the weights were trained: with the preprocessing the weights record (a
training run records center-crop, bilinear), else as Keras's image.load_img(path,
target_size=model input) — resized without keeping the aspect ratio, nearest-neighbour, with
Pillow's exact arithmetic — then scaled (as recorded, else the model's preprocess_input:
x/127.5 − 1), run forward and decoded (decode_predictions). RGB (grey for 1-channel models),
alpha dropped.

Labels: the class names the weights record, else --labels FILE, else the ImageNet class names
shipped in the package for a 1000-class model, else the class index.

Without --weights the model is randomly initialised and its predictions mean nothing; no
official weights ship with the package (pass the Keras file, e.g.
--weights xception_weights_tf_dim_ordering_tf_kernels.h5).

  --top K                         classes per image (default 5)
  --json                          one JSON object per image and line:
                                  {"file", "predictions": [{"index", "label", "probability"}]}
                                  (warnings and unreadable images go to stderr)
  --labels FILE                   class labels, one per line (used when the weights record no
                                  class names)
  --resize center-crop|stretch    how an image meets the model input: scale the shorter side and
                                  crop the centre, or stretch (default: what the weights record,
                                  else stretch as Keras's load_img)
  --interpolation nearest|bilinear
                                  resize filter (default: what the weights record, else nearest
                                  as Keras's load_img; both give Pillow's pixels exactly)
  --batch-size B                  images per forward pass (default 8)
  --backend NAME                  native | wasm | reference
${precisionHelp(32)}
${imageLimitHelp(34)}
  -h, --help

${WEIGHTS_FLAGS_HELP}

${MODEL_FLAGS_HELP}

Examples:
  xception predict cat.jpg --weights xception_weights_tf_dim_ordering_tf_kernels.h5
  xception predict a.png b.webp --weights runs/fashion --top 3 --json
`;

const PREDICT_FLAGS: FlagSpec = {
  ...MODEL_FLAGS,
  ...WEIGHTS_FLAGS,
  top: { type: 'string' },
  json: { type: 'boolean' },
  labels: { type: 'string' },
  resize: { type: 'string' },
  interpolation: { type: 'string' },
  'batch-size': { type: 'string' },
  backend: { type: 'string' },
  ...PRECISION_FLAGS,
  ...IMAGE_LIMIT_FLAGS,
  help: { type: 'boolean', short: 'h' },
};

export async function predictCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('predict', argv, PREDICT_FLAGS, true);
  const v = p.values;
  if (v['help']) {
    out(PREDICT_HELP);
    return 0;
  }
  applyImageLimitFlag(v);
  if (p.positionals.length === 0) throw new OptionError('predict needs at least one IMAGE or DIR (see `xception predict --help`)');
  const top = intFlag('top', v['top']) ?? 5;
  const batchSize = intFlag('batch-size', v['batch-size'], 1, MAX_BATCH_SIZE) ?? 8;
  const resize = choiceFlag('resize', v['resize'], RESIZE_POLICIES);
  const interpolation = choiceFlag('interpolation', v['interpolation'], RESIZE_INTERPOLATIONS);
  const backend = backendFlag(v['backend']);
  if (backend) setBackend(backend);
  const fileLabels = v['labels'] !== undefined ? await readLabels(v['labels'] as string) : undefined;
  // Every image must be there before a model is built (a typo should not cost a forward pass).
  const files = await imageFiles(p.positionals);
  const precision = await precisionFromFlags(v);
  const json = Boolean(v['json']);
  const warn = (s: string) => (json ? process.stderr.write(`xception predict: ${s}\n`) : out(`${s}\n`));

  const loaded = await loadModelForCommand('predict', p);
  const { model, record } = loaded;
  try {
    await applyPrecision(model, precision, loaded.weightsSource);
    if (model.outputShape.length !== 1)
      throw new OptionError(
        `the model outputs [${model.outputShape.join(', ')}], not class scores: predict needs the classifier (drop --no-top)`,
      );
    const classes = model.outputShape[0]!;
    if (fileLabels && record?.classNames) warn('note: --labels is not used: the weights record their class names');
    const labels = record?.classNames ?? fileLabels;
    if (labels && labels.length !== classes) throw new OptionError(`--labels has ${labels.length} labels, the model ${classes} classes`);
    if (loaded.weightsSource === null) {
      warn(
        'warning: no --weights given: the model is randomly initialised, so these predictions are meaningless (no official weights ship offline; pass e.g. --weights xception_weights_tf_dim_ordering_tf_kernels.h5)',
      );
    } else if (!json) {
      out(`weights: ${loaded.description}\n`);
    }
    if (!outputsProbabilities(model)) warn('note: the classifier outputs logits; probabilities are their softmax');
    if (isMultiLabelModel(model) && !json)
      out(`multi-label model: every class above ${MULTI_LABEL_THRESHOLD} is listed (--top does not apply)\n`);
    // Flags > what the weights record > Keras's load_img.
    const preprocessing: ImagePreprocessing = {
      ...(record?.preprocessing ?? kerasPreprocessing(getModelEntry(loaded.modelName).preprocessing)),
      ...(resize ? { resize } : {}),
      ...(interpolation ? { interpolation } : {}),
    };
    const results = await predictImages(model, files, { top, batchSize, preprocessing, ...(labels ? { labels } : {}) });
    return printPredictions(results, json, out);
  } finally {
    model.dispose();
  }
}

/** Prints each image's top classes (or its error, on stderr); exit code 1 if any image could not be read. */
function printPredictions(results: readonly ImagePrediction[], json: boolean, out: (s: string) => void): number {
  let unreadable = 0;
  for (const r of results) {
    if (r.error !== undefined) {
      // The other images are still reported; the exit code says one failed.
      process.stderr.write(`xception predict: error: ${r.error}\n`);
      unreadable++;
    } else if (json) {
      out(`${JSON.stringify(r)}\n`);
    } else {
      out(`${r.file}\n`);
      r.predictions.forEach((c, i) => out(`  ${String(i + 1).padStart(2)}. ${c.probability.toFixed(4)}  ${c.label} (${c.index})\n`));
      if (r.predictions.length === 0) out(`  (no class above ${MULTI_LABEL_THRESHOLD})\n`);
    }
  }
  if (unreadable > 0) process.stderr.write(`xception predict: ${unreadable} of ${results.length} image(s) could not be read\n`);
  return unreadable > 0 ? 1 : 0;
}

async function readLabels(file: string): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).split(/\r?\n/).filter((l, i, all) => l.length > 0 || i < all.length - 1);
  } catch (e) {
    throw new OptionError(`--labels ${file}: cannot read (${(e as Error).message})`);
  }
}

/** The image files the arguments name: files as given, directories as their image files, sorted. */
async function imageFiles(args: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const arg of args) {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(arg);
    } catch {
      throw new ImageError(arg, 'no such file or folder');
    }
    if (st.isFile()) {
      files.push(arg);
    } else if (st.isDirectory()) {
      const names = (await readdir(arg)).filter((n) => !n.startsWith('.') && IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())).sort();
      if (names.length === 0) throw new ImageError(arg, `a folder with no image files (${IMAGE_EXTENSIONS.join(', ')})`);
      files.push(...names.map((n) => join(arg, n)));
    } else {
      throw new ImageError(arg, 'is neither a file nor a folder');
    }
  }
  return files;
}
