/**
 * `--weights FILE|DIR` for predict, eval and export: anything openWeights opens, and the model
 * those weights go into — the one the source records (model flags then only have to agree with
 * it), or the one the model flags describe when the source records none (a Keras H5 file from
 * elsewhere; a mismatch then says in a few lines which flags to pass).
 */
import { OptionError } from '../core/errors.js';
import { noGrad } from '../core/engine.js';
import { WeightFileError } from '../io/errors.js';
import { readKerasH5 } from '../io/keras-h5.js';
import type { ModelRecord } from '../io/model-record.js';
import type { LoadMode } from '../io/model-weights.js';
import { readSafetensorsFile } from '../io/safetensors.js';
import { openWeights, type WeightsSource } from '../io/weights-source.js';
import { buildModel, getModelEntry } from '../models/registry.js';
import type { Model } from '../nn/model.js';
import { choiceFlag, type FlagSpec, type Parsed } from './args.js';
import { MODEL_FLAGS, MODEL_OPTION_FLAGS, modelFromFlags, type ModelChoice } from './model-flags.js';

export const WEIGHTS_FLAGS: FlagSpec = {
  weights: { type: 'string' },
  'weights-mode': { type: 'string' },
};

export const WEIGHTS_FLAGS_HELP = `Weights:
  --weights FILE|DIR              a run folder written by 'xception train', a .safetensors file,
                                  or a Keras H5 weight file (e.g. the official
                                  xception_weights_tf_dim_ordering_tf_kernels.h5, or …_notop.h5
                                  with --no-top). Runs and files this project writes record their
                                  model (and, from training, class names and preprocessing): no
                                  model flags are needed then, and any given must agree with the
                                  record. A file that records nothing (a Keras H5 from
                                  elsewhere) takes the model flags.
  --weights-mode order|name|auto  how H5 layers are matched: in Keras layer order (Keras's
                                  default), by name, or by name when every name matches and in
                                  order otherwise (default auto)`;

export interface LoadedModel {
  model: Model;
  /** Registry name of the model (for its preprocessing). */
  modelName: string;
  /** What the weights came from, or null for a randomly initialised model. */
  weightsSource: string | null;
  /** How the weights were matched (H5 files), for messages. */
  description: string;
  /** What the source records (class names, preprocessing); null without one. */
  record: ModelRecord | null;
}

function modelFlagsGiven(p: Parsed): string[] {
  return Object.keys(MODEL_FLAGS).filter((k) => p.values[k] !== undefined);
}

/**
 * The model for a command: from `weights` (default --weights) or, without weights, from the
 * model flags (randomly initialised). `useEma` picks a run's averaged weights (default true).
 */
export async function loadModelForCommand(
  command: string,
  p: Parsed,
  options: { weights?: string; flag?: string; useEma?: boolean } = {},
): Promise<LoadedModel> {
  const weights = options.weights ?? (p.values['weights'] as string | undefined);
  const flag = options.flag ?? '--weights';
  const mode = choiceFlag('weights-mode', p.values['weights-mode'], ['order', 'name', 'auto'] as const) as LoadMode | undefined;
  if (weights === undefined) {
    if (mode) throw new OptionError(`--weights-mode needs ${flag}`);
    const choice = modelFromFlags(p);
    const model = noGrad(() => buildModel(choice.name, choice.options));
    return { model, modelName: choice.name, weightsSource: null, description: 'randomly initialised', record: null };
  }
  const source = await openWeights(weights);
  let choice: ModelChoice;
  if (source.record) {
    checkFlagsAgree(command, `${flag} ${weights}`, source.record, p);
    choice = { name: source.record.model, options: source.record.options };
  } else {
    choice = modelFromFlags(p);
  }
  const model = noGrad(() => buildModel(choice.name, choice.options));
  try {
    const report = await source.loadInto(model, { ...(mode ? { mode } : {}), useEma: options.useEma ?? true });
    const how =
      source.kind === 'run'
        ? 'run folder'
        : report.format === 'keras-h5'
          ? `Keras H5, layers matched ${report.mode === 'order' ? 'in order' : 'by name'}`
          : 'safetensors';
    return {
      model,
      modelName: choice.name,
      weightsSource: weights,
      description: `${weights} (${how}, ${report.weights} weights)`,
      record: source.record,
    };
  } catch (e) {
    model.dispose();
    if (e instanceof WeightFileError && !source.record) throw await mismatchError(source, choice, e);
    throw e;
  }
}

/** Model flags given with a source that records its model must describe that same model. */
function checkFlagsAgree(command: string, what: string, record: ModelRecord, p: Parsed): void {
  const given = modelFlagsGiven(p);
  if (given.length === 0) return;
  const named = p.values['model'] as string | undefined;
  if (named !== undefined && named !== record.model) {
    throw new OptionError(
      `${command}: ${what} records model ${record.model}, not --model ${named}; drop --model (the record builds the model)`,
    );
  }
  const flags = modelFromFlags({ ...p, values: { ...p.values, model: record.model } });
  const entry = getModelEntry(record.model);
  const recorded = entry.resolveOptions(record.options);
  const wanted = entry.resolveOptions({ ...record.options, ...flags.options });
  const differ = Object.keys(flags.options)
    .filter((k) => JSON.stringify(recorded[k]) !== JSON.stringify(wanted[k]))
    .map((k) => `${optionFlag(k)} ${show(wanted[k])} (recorded: ${show(recorded[k])})`);
  if (differ.length > 0) {
    throw new OptionError(
      `${command}: ${what} records its model, and these flags differ from it: ${differ.join(', ')}; drop them (no model flags are needed)`,
    );
  }
}

/** The flag that sets a model option (inputShape → --input-shape; includeTop → --no-top). */
function optionFlag(key: string): string {
  return `--${MODEL_OPTION_FLAGS[key] ?? key}`;
}

function show(v: unknown): string {
  return Array.isArray(v) ? v.join(',') : String(v);
}

// ---------------------------------------------------------------------------------------------
// A file without a record that does not fit the flags' model: which flags to pass.

/** A WeightFileError whose message lists, one per line, the flags that would make the file fit. */
async function mismatchError(source: WeightsSource, choice: ModelChoice, original: WeightFileError): Promise<WeightFileError> {
  const shapes = await fileShapes(source).catch(() => null);
  const model = noGrad(() => buildModel(choice.name, choice.options));
  let hints: string[];
  try {
    hints = shapes ? mismatchHints(shapes, model, choice) : [];
  } finally {
    model.dispose();
  }
  const lines = hints.length > 0 ? hints : fewProblems(original.problem);
  return new WeightFileError(source.path, `does not fit the model the flags describe (${choice.name}):\n  ${lines.join('\n  ')}`);
}

/** The file's weights as `layer/weight` → shape (H5 names lose their ':0'). */
async function fileShapes(source: WeightsSource): Promise<Map<string, number[]>> {
  const shapes = new Map<string, number[]>();
  if (source.kind === 'keras-h5') {
    for (const layer of await readKerasH5(source.path)) {
      for (const w of layer.weights) shapes.set(`${layer.name}/${w.name.split('/').pop()!.replace(/:\d+$/, '')}`, w.shape);
    }
  } else if (source.kind === 'safetensors') {
    for (const w of (await readSafetensorsFile(source.path)).weights) shapes.set(w.name, w.shape);
  }
  return shapes;
}

/** What differs between the file's weights and the model, each as the flag that fixes it. */
export function mismatchHints(file: ReadonlyMap<string, readonly number[]>, model: Model, choice: ModelChoice): string[] {
  const hints: string[] = [];
  const modelShape = (name: string): readonly number[] | null => {
    const v = model.weights.find((w) => w.name === name);
    return v ? v.shape : null;
  };
  const fileBias = file.get('predictions/bias');
  const modelBias = modelShape('predictions/bias');
  if (fileBias && !modelBias)
    hints.push(
      `the file has a classifier (predictions/bias [${fileBias[0]}]); drop --no-top${fileBias[0] !== 1000 ? ` and pass --classes ${fileBias[0]}` : ''}`,
    );
  else if (!fileBias && modelBias) hints.push('the file has no classifier; pass --no-top');
  else if (fileBias && modelBias && fileBias[0] !== modelBias[0])
    hints.push(`the file has ${fileBias[0]} classes (predictions/bias [${fileBias[0]}]); pass --classes ${fileBias[0]}`);

  const fileStem = file.get('block1_conv1/kernel');
  const modelStem = modelShape('block1_conv1/kernel');
  if (choice.name === 'xception' && !fileStem && file.size > 0) {
    hints.push('the file has no block1_conv1 layer, so it does not hold Xception weights (Inception V3? pass --model inception_v3)');
  } else if (choice.name !== 'xception' && fileStem) {
    hints.push('the file holds Xception weights (it has block1_conv1); pass --model xception');
  }
  if (fileStem && modelStem && fileStem.length === 4) {
    const [h, w] = model.inputShape as number[];
    if (fileStem[2] !== modelStem[2])
      hints.push(
        `the file's block1_conv1 expects ${fileStem[2]} input channel${fileStem[2] === 1 ? '' : 's'}; pass --input-shape ${h},${w},${fileStem[2]}`,
      );
    if (fileStem[3] !== modelStem[3])
      hints.push(
        `the file's block1_conv1 has ${fileStem[3]} filters, the model's ${modelStem[3]}; pass --width ${+(fileStem[3]! / 32).toPrecision(4)}`,
      );
  }
  const fileMiddle = middleBlocksOf([...file.keys()]);
  const modelMiddle = middleBlocksOf(model.weights.map((v) => v.name));
  if (choice.name === 'xception' && fileMiddle !== null && modelMiddle !== null && fileMiddle !== modelMiddle) {
    hints.push(
      `the file has ${fileMiddle} middle-flow block${fileMiddle === 1 ? '' : 's'}, the model ${modelMiddle}; pass --middle-blocks ${fileMiddle}`,
    );
  }
  return hints;
}

/** Xception's middle blocks are block5 … block(4+N), followed by two exit blocks. */
function middleBlocksOf(weightNames: readonly string[]): number | null {
  let last = 0;
  for (const n of weightNames) {
    const m = /^block(\d+)_sepconv1\//.exec(n);
    if (m) last = Math.max(last, Number(m[1]));
  }
  return last >= 6 ? last - 6 : null;
}

/** A long one-line list of problems ("…: a; b; c; and 40 more") as a few lines. */
function fewProblems(problem: string): string[] {
  const colon = problem.indexOf(': ');
  const head = colon >= 0 ? problem.slice(0, colon) : '';
  const parts = (colon >= 0 ? problem.slice(colon + 2) : problem).split('; ');
  // The list may already end in "and N more".
  const more = /^and (\d+) more$/.exec(parts.at(-1) ?? '');
  if (more) parts.pop();
  const shown = parts.slice(0, 3);
  const rest = parts.length - shown.length + (more ? Number(more[1]) : 0);
  return [
    ...(head ? [`${head}:`] : []),
    ...shown.map((s) => (head ? `  ${s}` : s)),
    ...(rest > 0 ? [`… and ${rest} more problem(s)`] : []),
  ];
}
