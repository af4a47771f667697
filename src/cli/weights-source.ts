/**
 * `--weights FILE|DIR` for predict and export: a Keras .h5 file, a .safetensors file, or a run
 * folder written by `xception train`; and the model those weights go into.
 */
import { statSync } from 'node:fs';
import { OptionError } from '../core/errors.js';
import { loadWeights, peekSafetensorsMetadata, WEIGHTS_FORMAT_TAG, type LoadMode } from '../io/model-weights.js';
import { buildModel } from '../models/registry.js';
import { noGrad } from '../core/engine.js';
import type { Model } from '../nn/model.js';
import { loadRun } from '../train/trainer.js';
import { choiceFlag, type FlagSpec, type Parsed } from './args.js';
import { MODEL_FLAGS, modelFromFlags } from './model-flags.js';

export const WEIGHTS_FLAGS: FlagSpec = {
  weights: { type: 'string' },
  'weights-mode': { type: 'string' },
};

export const WEIGHTS_FLAGS_HELP = `Weights:
  --weights FILE|DIR              a Keras H5 weight file (e.g. the official
                                  xception_weights_tf_dim_ordering_tf_kernels.h5, or …_notop.h5
                                  with --no-top), a .safetensors file, or a run folder written by
                                  'xception train' (which records its model: no model flags then).
                                  A .safetensors file saved by this project also records its
                                  model, used when no model flags are given.
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
}

function modelFlagsGiven(p: Parsed): string[] {
  return Object.keys(MODEL_FLAGS).filter((k) => p.values[k] !== undefined);
}

export async function loadModelForCommand(command: string, p: Parsed): Promise<LoadedModel> {
  const weights = p.values['weights'] as string | undefined;
  const mode = choiceFlag('weights-mode', p.values['weights-mode'], ['order', 'name', 'auto'] as const) as LoadMode | undefined;
  if (weights === undefined) {
    if (mode) throw new OptionError('--weights-mode needs --weights');
    const choice = modelFromFlags(p);
    const model = noGrad(() => buildModel(choice.name, choice.options));
    return { model, modelName: choice.name, weightsSource: null, description: 'randomly initialised' };
  }
  let isDir = false;
  try {
    isDir = statSync(weights).isDirectory();
  } catch {
    // loadWeights names a missing file
  }
  if (isDir) {
    const given = modelFlagsGiven(p);
    if (given.length > 0) throw new OptionError(`${command}: --${given[0]} does not apply to a run folder: the run records its model`);
    const { model, state } = loadRun(weights);
    return { model, modelName: state.model.name, weightsSource: weights, description: `run folder ${weights}` };
  }
  let choice = modelFromFlags(p);
  if (modelFlagsGiven(p).length === 0) {
    const meta = await peekSafetensorsMetadata(weights);
    if (meta?.['format'] === WEIGHTS_FORMAT_TAG && meta['model_config']) {
      try {
        const { model: name, ...options } = JSON.parse(meta['model_config']) as Record<string, unknown>;
        if (typeof name === 'string') choice = { name, options };
      } catch {
        throw new OptionError(`${weights}: its model_config metadata is not valid JSON; give the model flags`);
      }
    }
  }
  const model = noGrad(() => buildModel(choice.name, choice.options));
  try {
    const report = await loadWeights(model, weights, mode ? { mode } : {});
    const how = report.format === 'keras-h5' ? `Keras H5, layers matched ${report.mode === 'order' ? 'in order' : 'by name'}` : 'safetensors';
    return { model, modelName: choice.name, weightsSource: weights, description: `${weights} (${how}, ${report.weights} weights)` };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
