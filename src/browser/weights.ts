/**
 * Weights in the browser: a safetensors file (bytes) with its model record becomes a built model
 * with its class names and preprocessing, and a model becomes a safetensors file that
 * `xception predict --weights` loads. The same checks as the CLI's: the file is untrusted.
 */
import { noGrad } from '../core/engine.js';
import { sizeOf } from '../core/tensor.js';
import type { ImagePreprocessing } from '../data/image-preprocessing.js';
import { WeightFileError } from '../io/errors.js';
import { checkRecordFitsFile, modelRecordOf, recordFromMetadata, type ModelRecord } from '../io/model-record.js';
import { assignByName, namedWeightsOf, weightsMetadata } from '../io/named-weights.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors-format.js';
import { buildModel } from '../models/registry.js';
import type { Model } from '../nn/model.js';

export interface LoadedModel {
  model: Model;
  record: ModelRecord;
}

/** Builds the model a safetensors file records and loads its weights; WeightFileError on anything wrong. */
export function modelFromSafetensors(bytes: Uint8Array, label = '<safetensors>'): LoadedModel {
  const { weights, metadata } = readSafetensors(bytes, label);
  const record = recordFromMetadata(metadata, label);
  if (!record) throw new WeightFileError(label, 'records no model (a weights file written by `xception train` or `export` does)');
  let elements = 0;
  for (const w of weights) elements += sizeOf(w.shape);
  checkRecordFitsFile(label, record, elements);
  const model = noGrad(() => buildModel(record.model, record.options));
  assignByName(model, weights, label);
  return { model, record };
}

/** The model's weights as a safetensors file with its record (what `xception train` writes). */
export function modelToSafetensors(
  model: Model,
  extra: { classNames?: readonly string[]; preprocessing?: ImagePreprocessing } = {},
): Uint8Array {
  return writeSafetensors(namedWeightsOf(model), weightsMetadata(modelRecordOf(model, extra)));
}
