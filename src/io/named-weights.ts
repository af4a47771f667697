/**
 * A model's weights under their full names (`<layer>/<weight>`), as safetensors holds them:
 * listing them, assigning them by name, and the metadata a weights file carries. No Node
 * built-ins: the browser build loads and saves weights through these too.
 */
import type { Variable } from '../nn/layer.js';
import type { Model } from '../nn/model.js';
import { WeightFileError } from './errors.js';
import { recordToMetadata, type ModelRecord } from './model-record.js';
import { shapeText, type NamedWeight } from './weights.js';

/** The model's weights under their full names, in Keras order. */
export function namedWeightsOf(model: Model): NamedWeight[] {
  return model.weights.map((v) => ({ name: v.name, shape: [...v.shape], data: v.value.data() }));
}

/**
 * safetensors metadata: `format` = this tag, plus the model record (model-record.ts):
 * `model_config` = JSON {model: registry name, ...build options}, `class_names`, `preprocessing`.
 */
export const WEIGHTS_FORMAT_TAG = 'xception-weights/1';

/** safetensors metadata of a weights file: the format tag and the record. */
export function weightsMetadata(record: ModelRecord | null): Record<string, string> {
  return { format: WEIGHTS_FORMAT_TAG, ...(record ? recordToMetadata(record) : {}) };
}

/**
 * safetensors-style loading: every model weight by its full name, nothing missing, nothing extra;
 * weights of the `except` layers are left alone on both sides. Returns the number assigned.
 */
export function assignByName(model: Model, allWeights: readonly NamedWeight[], label: string, except: readonly string[] = []): number {
  const kept = (name: string) => !except.includes(layerOf(name));
  const weights = allWeights.filter((w) => kept(w.name));
  const byName = new Map<string, NamedWeight>();
  const problems: string[] = [];
  for (const w of weights) {
    if (byName.has(w.name)) problems.push(`weight "${w.name}" appears twice`);
    byName.set(w.name, w);
  }
  const modelWeights = model.weights.filter((v) => kept(v.name));
  const modelNames = new Set(modelWeights.map((v) => v.name));
  const targets: { v: Variable; data: Float32Array }[] = [];
  for (const v of modelWeights) {
    const w = byName.get(v.name);
    if (!w) problems.push(`model weight "${v.name}" ${shapeText([...v.shape])} is missing from the file`);
    else if (!sameShape(v.shape, w.shape))
      problems.push(`model weight "${v.name}" has shape ${shapeText([...v.shape])} but the file's has ${shapeText(w.shape)}`);
    else if (w.data.length !== v.size)
      problems.push(`file weight "${w.name}" holds ${w.data.length} values for shape ${shapeText(w.shape)}`);
    else targets.push({ v, data: w.data });
  }
  for (const w of weights) {
    if (!modelNames.has(w.name)) problems.push(`file weight "${w.name}" ${shapeText(w.shape)} has no weight of that name in the model`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ');
    const more = problems.length > 8 ? `; and ${problems.length - 8} more` : '';
    throw new WeightFileError(label, `weights do not fit model '${model.name}': ${shown}${more}`);
  }
  assignAll(targets);
  return targets.length;
}

/** The layer part of a weight name `<layer>/<weight>`. */
function layerOf(weightName: string): string {
  const slash = weightName.indexOf('/');
  return slash < 0 ? weightName : weightName.slice(0, slash);
}

export function assignAll(targets: readonly { v: Variable; data: Float32Array }[]): void {
  // Everything was checked; setData re-checks sizes, which cannot fail here.
  for (const { v, data } of targets) v.setData(data);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
