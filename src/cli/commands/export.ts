import { setBackend } from '../../core/engine.js';
import { OptionError } from '../../core/errors.js';
import { checkOutputFile } from '../../io/output-paths.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { modelRecordOf } from '../../io/model-record.js';
import { saveWeights } from '../../io/model-weights.js';
import { exportOnnx, ONNX_MAX_OPSET, ONNX_MIN_OPSET } from '../../io/onnx-model.js';
import { readInt8Calibration } from '../../io/quantized-file.js';
import { preprocessingAffine } from '../../data/transforms.js';
import { getModelEntry } from '../../models/registry.js';
import { choiceFlag, intFlag, parse, backendFlag } from '../args.js';
import { MODEL_FLAGS, MODEL_FLAGS_HELP } from '../model-flags.js';
import { loadModelForCommand, WEIGHTS_FLAGS, WEIGHTS_FLAGS_HELP } from '../weights-source.js';

const FORMATS = ['onnx', 'keras-h5', 'safetensors'] as const;

export const EXPORT_HELP = `Usage: xception export --format onnx|keras-h5|safetensors --out FILE [--weights FILE|DIR] [options]

Writes a model or its weights in another format:
  onnx          a standard ONNX graph (opset ${ONNX_MIN_OPSET} by default) of the whole model, inference
                mode, batch dimension dynamic ('batch'). Input "input": NCHW float32
                [batch, C, H, W] by default (as ONNX tools expect), or NHWC [batch, H, W, C]
                with --input-layout nhwc (a Transpose starts the graph). Output "output":
                class probabilities [batch, classes] (a feature map without the top, in the
                input's layout). Feed it preprocessed pixels (Xception: x/127.5 − 1).
  keras-h5      Keras legacy H5 weights (layer_names, weight_names 'layer/kernel:0', Keras
                layouts): Keras's model.load_weights(FILE) reads them into the same architecture.
                The model, class names and preprocessing are recorded in root attributes
                (xception_model_config, class_names, preprocessing), which Keras ignores.
  safetensors   the project's own weight format (names 'layer/weight'), with the model's
                options, class names and preprocessing recorded in its metadata
                (model_config, class_names, preprocessing).
Either file then works as --weights for predict, eval and export with no model flags.

  --format F              onnx | keras-h5 | safetensors (required)
  --out FILE              output file, written atomically (required)
  --no-fold-bn            onnx: keep BatchNormalization nodes (default: folded into the convs)
  --int8                  onnx: the int8 model in QDQ form (QuantizeLinear/DequantizeLinear
                          around the convolutions, per-channel int8 weights), with the
                          calibration recorded in --weights (a file 'xception quantize' wrote)
  --opset N               onnx: opset ${ONNX_MIN_OPSET}…${ONNX_MAX_OPSET} (default ${ONNX_MIN_OPSET})
  --input-layout nchw|nhwc
                          onnx: graph input layout (default nchw)
  --backend NAME          native | wasm | reference
  -h, --help

Without --weights the model is randomly initialised (a warning says so).

${WEIGHTS_FLAGS_HELP}

${MODEL_FLAGS_HELP}

Examples:
  xception export --weights xception_weights_tf_dim_ordering_tf_kernels.h5 --format onnx --out xception.onnx
  xception export --weights runs/fashion --format keras-h5 --out fashion.h5
`;

export async function exportCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('export', argv, {
    ...MODEL_FLAGS,
    ...WEIGHTS_FLAGS,
    format: { type: 'string' },
    out: { type: 'string' },
    'no-fold-bn': { type: 'boolean' },
    int8: { type: 'boolean' },
    opset: { type: 'string' },
    'input-layout': { type: 'string' },
    backend: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  const v = p.values;
  if (v['help']) {
    out(EXPORT_HELP);
    return 0;
  }
  if (v['format'] === undefined) throw new OptionError(`export needs --format (${FORMATS.join(', ')})`);
  const format = choiceFlag('format', v['format'], FORMATS)!;
  const target = v['out'] as string | undefined;
  if (!target) throw new OptionError('export needs --out FILE');
  checkOutputFile(target);
  const onnxOnly = ['no-fold-bn', 'opset', 'input-layout', 'int8'].filter((k) => v[k] !== undefined);
  if (format !== 'onnx' && onnxOnly.length > 0) throw new OptionError(`--${onnxOnly[0]} applies only to --format onnx`);
  const opset = intFlag('opset', v['opset'], ONNX_MIN_OPSET);
  const inputLayout = choiceFlag('input-layout', v['input-layout'], ['nchw', 'nhwc'] as const);
  if (v['int8'] && v['no-fold-bn']) throw new OptionError('--int8 folds batch normalization: drop --no-fold-bn');
  if (v['int8'] && v['weights'] === undefined) throw new OptionError("--int8 needs --weights FILE (a file written by 'xception quantize')");
  const backend = backendFlag(v['backend']);
  if (backend) setBackend(backend);

  const loaded = await loadModelForCommand('export', p);
  const { model } = loaded;
  try {
    if (loaded.weightsSource === null)
      process.stderr.write('xception export: warning: no --weights given: exporting a randomly initialised model\n');
    if (format === 'onnx') {
      const { scale, offset } = preprocessingAffine(getModelEntry(loaded.modelName).preprocessing);
      const description = `Input: RGB pixels p in [0, 255] preprocessed as p / ${+(1 / scale).toPrecision(12)} ${offset < 0 ? '-' : '+'} ${Math.abs(offset)} (${loaded.modelName} preprocess_input)`;
      const int8 = v['int8'] ? await readInt8Calibration(loaded.weightsSource!, model) : null;
      if (v['int8'] && !int8)
        throw new OptionError(`--int8: ${loaded.weightsSource} holds no int8 calibration; write one with 'xception quantize'`);
      const bytes = exportOnnx(model, {
        ...(int8 ? { int8 } : {}),
        foldBatchNorm: !v['no-fold-bn'],
        description,
        ...(opset ? { opset } : {}),
        ...(inputLayout ? { inputLayout } : {}),
      });
      await writeFileAtomic(target, bytes);
      out(
        `wrote ${target}: ONNX opset ${opset ?? ONNX_MIN_OPSET}, input ${(inputLayout ?? 'nchw').toUpperCase()} [batch, ${describeInput(model.inputShape as number[], inputLayout ?? 'nchw')}], ` +
          `BN ${v['no-fold-bn'] ? 'kept' : 'folded'}${int8 ? `, int8 QDQ (${int8.method}, ${int8.images} images)` : ''}, ${bytes.length} bytes\n`,
      );
    } else {
      // The source's record carries over (class names, preprocessing); else the model's own.
      await saveWeights(model, target, format, loaded.record ?? modelRecordOf(model));
      out(
        `wrote ${target}: ${format === 'keras-h5' ? 'Keras H5' : 'safetensors'} weights of ${model.name} (${model.weights.length} tensors, ${model.countParams()} values)\n`,
      );
    }
    return 0;
  } finally {
    model.dispose();
  }
}

function describeInput([h, w, c]: number[], layout: 'nchw' | 'nhwc'): string {
  return layout === 'nchw' ? `${c}, ${h}, ${w}` : `${h}, ${w}, ${c}`;
}
