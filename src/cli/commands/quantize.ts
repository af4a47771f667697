import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { setBackend } from '../../core/engine.js';
import { OptionError } from '../../core/errors.js';
import { DatasetError } from '../../data/errors.js';
import { IMAGE_EXTENSIONS } from '../../data/folder.js';
import { kerasPreprocessing, type ImagePreprocessing } from '../../data/image-preprocessing.js';
import { DataLoader, type BatchLoader } from '../../data/loader.js';
import { imageFolderSplitDir, parseDatasetSpec } from '../../data/spec.js';
import { StreamLoader } from '../../data/stream-loader.js';
import { calibrate, DEFAULT_METHOD, DEFAULT_PERCENTILE } from '../../infer/calibrate.js';
import type { CalibrationMethod } from '../../infer/quant-types.js';
import { modelRecordOf } from '../../io/model-record.js';
import { checkOutputFile } from '../../io/output-paths.js';
import { saveQuantizedWeights } from '../../io/quantized-file.js';
import { getModelEntry } from '../../models/registry.js';
import { backendFlag, choiceFlag, intFlag, numberFlag, parse } from '../args.js';
import { applyImageLimitFlag, IMAGE_LIMIT_FLAGS, imageLimitHelp } from '../image-limit.js';
import { MODEL_FLAGS, MODEL_FLAGS_HELP } from '../model-flags.js';
import { loadModelForCommand, WEIGHTS_FLAGS, WEIGHTS_FLAGS_HELP } from '../weights-source.js';

/** Fewer images than this give ranges too noisy to quantize with (and the fp32 decision uses up to 16). */
export const MIN_CALIBRATION_IMAGES = 16;
export const DEFAULT_CALIBRATION_IMAGES = 256;
const METHODS = ['minmax', 'percentile', 'entropy'] as const;

export const QUANTIZE_HELP = `Usage: xception quantize --weights FILE|DIR --calibrate SPEC --out FILE [options]

Post-training int8 quantization: runs the model on calibration images, measures the range of
every value a convolution or dense layer reads or writes, and writes one self-contained file:
the weights (safetensors, with the model's record) plus the int8 calibration in its metadata
('int8_calibration'). Weights are quantized per output channel when the file is used; the
stem convolution and the classifier stay fp32 where int8 there measurably costs accuracy
(the reasons are printed and recorded). The file works as --weights anywhere (fp32);
'xception predict|eval --weights FILE --precision int8' run it in int8, and
'xception export --format onnx --int8' writes its QDQ ONNX model.

  --weights FILE|DIR          the fp32 weights to quantize (required)
  --calibrate SPEC            calibration images (required): a dataset spec (its train split:
                              fashion-mnist, mnist:DIR, cifar10:DIR, cifar100:DIR, folder:DIR)
                              or a folder of images (any layout), read and preprocessed as
                              predict and eval read them
  --out FILE                  output .safetensors file, written atomically (required)
  --method minmax|percentile|entropy
                              how a range is chosen: the largest |x|, a percentile of |x|, or
                              TensorRT's KL-divergence threshold (default ${DEFAULT_METHOD})
  --percentile P              for --method percentile: percentile of |x| kept (default ${DEFAULT_PERCENTILE})
  --calibration-images N      images to calibrate on, spread over the source (default ${DEFAULT_CALIBRATION_IMAGES};
                              at least ${MIN_CALIBRATION_IMAGES})
  --batch-size B              images per batch (default 64 up to 64×64 inputs, else 8)
  --backend NAME              native | wasm | reference
${imageLimitHelp(30)}
  -h, --help

Progress goes to stderr.

${WEIGHTS_FLAGS_HELP}

${MODEL_FLAGS_HELP}

Example:
  xception quantize --weights runs/fashion --calibrate fashion-mnist --out fashion-int8.safetensors
`;

/** Image files under `dir` (any depth), sorted, hidden entries skipped. */
async function imageFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await imageFilesUnder(path)));
    else if (IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase())) out.push(path);
  }
  return out;
}

/** `n` indices spread evenly over `count`. */
function spread(count: number, n: number): number[] {
  return Array.from({ length: Math.min(n, count) }, (_, i) => Math.floor((i * count) / Math.min(n, count)));
}

function checkCount(found: number, where: string): void {
  if (found < MIN_CALIBRATION_IMAGES)
    throw new OptionError(`--calibrate ${where}: ${found} image(s), but calibration needs at least ${MIN_CALIBRATION_IMAGES}`);
}

interface CalibrationData {
  loader: BatchLoader;
  description: string;
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** The calibration images of SPEC as batches of model inputs; every check before any image is decoded. */
async function openCalibrationData(
  spec: string,
  shape: [number, number, number],
  prep: ImagePreprocessing,
  n: number,
  batchSize: number,
): Promise<CalibrationData> {
  let dir: string | null = null;
  if (await isDirectory(spec)) dir = spec;
  else {
    const parsed = parseDatasetSpec(spec);
    if (parsed.kind === 'folder') dir = await imageFolderSplitDir(parsed.dir, 'train');
    else {
      const ds = await parsed.load('train');
      checkCount(ds.count, spec);
      if (ds.channels !== shape[2] && !(ds.channels === 1 && shape[2] === 3)) {
        throw new OptionError(
          `--calibrate ${spec}: images of ${ds.height}×${ds.width}×${ds.channels}, but the model takes ${shape.join('×')} (its channels cannot be made from these)`,
        );
      }
      const indices = spread(ds.count, n);
      const loader = new DataLoader(ds, {
        batchSize,
        shuffle: false,
        indices,
        preprocessing: prep.scaling,
        size: [shape[0], shape[1]],
        channels: shape[2],
      });
      return { loader, description: `${ds.name}: ${indices.length} of ${ds.count} images` };
    }
  }
  if (!(await isDirectory(dir))) throw new DatasetError('image folder does not exist or is not a directory', dir);
  const files = await imageFilesUnder(dir);
  checkCount(files.length, dir);
  const chosen = spread(files.length, n).map((i) => files[i]!);
  const loader = new StreamLoader(
    { files: chosen, labels: new Int32Array(chosen.length) },
    { batchSize, shape, preprocessing: prep, shuffle: false },
  );
  return { loader, description: `${dir}: ${chosen.length} of ${files.length} images` };
}

async function* inputs(loader: BatchLoader): AsyncGenerator<Float32Array> {
  for await (const b of loader.epochBatches()) yield b.x.subarray(0, b.size * b.shape[1] * b.shape[2] * b.shape[3]);
}

export async function quantizeCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('quantize', argv, {
    ...MODEL_FLAGS,
    ...WEIGHTS_FLAGS,
    calibrate: { type: 'string' },
    out: { type: 'string' },
    method: { type: 'string' },
    percentile: { type: 'string' },
    'calibration-images': { type: 'string' },
    'batch-size': { type: 'string' },
    backend: { type: 'string' },
    ...IMAGE_LIMIT_FLAGS,
    help: { type: 'boolean', short: 'h' },
  });
  const v = p.values;
  if (v['help']) {
    out(QUANTIZE_HELP);
    return 0;
  }
  applyImageLimitFlag(v);
  if (v['weights'] === undefined) throw new OptionError('quantize needs --weights FILE|DIR (the fp32 weights to quantize)');
  const spec = v['calibrate'] as string | undefined;
  if (!spec) throw new OptionError('quantize needs --calibrate SPEC (a dataset spec or a folder of images)');
  const target = v['out'] as string | undefined;
  if (!target) throw new OptionError('quantize needs --out FILE');
  checkOutputFile(target);
  const method: CalibrationMethod = choiceFlag('method', v['method'], METHODS) ?? DEFAULT_METHOD;
  const percentile = numberFlag('percentile', v['percentile'], Number.MIN_VALUE, 100);
  if (percentile !== undefined && method !== 'percentile') throw new OptionError('--percentile applies only to --method percentile');
  const n = intFlag('calibration-images', v['calibration-images'], MIN_CALIBRATION_IMAGES) ?? DEFAULT_CALIBRATION_IMAGES;
  const givenBatch = intFlag('batch-size', v['batch-size'], 1, 1024);
  const backend = backendFlag(v['backend']);
  if (backend) setBackend(backend);

  const loaded = await loadModelForCommand('quantize', p);
  const { model } = loaded;
  try {
    const shape = model.inputShape as [number, number, number];
    if (shape.length !== 3) throw new OptionError(`quantize: the model input must be an image [H, W, C], got [${shape.join(', ')}]`);
    const prep = loaded.record?.preprocessing ?? kerasPreprocessing(getModelEntry(loaded.modelName).preprocessing);
    const batchSize = givenBatch ?? (shape[0] <= 64 ? 64 : 8);
    const data = await openCalibrationData(spec, shape, prep, n, batchSize);
    const say = (s: string) => process.stderr.write(`xception quantize: ${s}\n`);
    say(`weights: ${loaded.description}`);
    say(`calibration data: ${data.description}; method ${method}`);
    const cal = await calibrate(model, inputs(data.loader), {
      method,
      ...(percentile !== undefined ? { percentile } : {}),
      maxImages: n,
      onProgress: (seen) => say(`calibrated on ${seen} images`),
    });
    await saveQuantizedWeights(model, target, cal, loaded.record ?? modelRecordOf(model));
    const fp32 = Object.entries(cal.fp32Nodes);
    out(
      `wrote ${target}: ${model.name} int8 calibration (${cal.method}${cal.percentile !== undefined ? ` ${cal.percentile}` : ''}, ${cal.images} images): ` +
        `${Object.keys(cal.values).length} quantized values, ${fp32.length === 0 ? 'every convolution and dense layer int8' : `${fp32.length} layer(s) kept fp32`}\n`,
    );
    for (const [node, why] of fp32) out(`  fp32: ${node}: ${why}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
