/**
 * Keras H5 weights ⇄ a Model (src/nn): the glue a CLI or an application calls.
 *
 * Loading matches in Keras's way (matchKerasWeights; 'order' by default, like `load_weights` on an
 * H5 file) and validates every layer before the first weight is replaced, so a file that does not
 * fit leaves the model untouched. Saving writes `model.layers` in Keras order with Keras weight
 * names (`<layer>/<weight>:0`), which Keras's `load_weights` reads back.
 */
import type { Model } from '../nn/model.js';
import {
  encodeKerasH5,
  type KerasH5ReadOptions,
  type KerasH5WriteOptions,
  type KerasLayer,
  readKerasH5,
  writeKerasH5,
} from './keras-h5.js';
import { type KerasMatchMode, matchKerasWeights, type ModelLayerWeights, type WeightAssignment } from './keras-match.js';

/** What the model expects, in Keras layer order, for matchKerasWeights. */
export function modelWeightSpec(model: Model): ModelLayerWeights[] {
  return model.layers.map((l) => ({ name: l.name, weights: l.weights.map((v) => ({ name: v.weightName, shape: [...v.shape] })) }));
}

/** The model's weights as Keras H5 layers (every layer, with or without weights, like Keras). */
export function modelToKerasLayers(model: Model): KerasLayer[] {
  return model.layers.map((l) => ({
    name: l.name,
    weights: l.weights.map((v) => ({
      name: `${l.name}/${v.weightName}:0`,
      shape: [...v.shape],
      data: Float32Array.from(v.value.data() as Float32Array),
    })),
  }));
}

/** Copies matched file weights into the model (all validated before the first copy). */
export function applyKerasWeights(
  model: Model,
  fileLayers: readonly KerasLayer[],
  mode: KerasMatchMode = 'order',
  fileLabel?: string,
): WeightAssignment[] {
  const assignment = matchKerasWeights(modelWeightSpec(model), fileLayers, mode, fileLabel);
  const byName = new Map(model.layers.map((l) => [l.name, l]));
  for (const a of assignment) byName.get(a.modelLayer)!.getWeight(a.modelWeight).setData(a.data);
  return assignment;
}

/** Reads a Keras H5 weight file (path or bytes) into the model. */
export async function loadKerasH5Weights(
  model: Model,
  source: string | Uint8Array,
  options: KerasH5ReadOptions & { mode?: KerasMatchMode } = {},
): Promise<WeightAssignment[]> {
  const layers = await readKerasH5(source, options);
  const label = typeof source === 'string' ? source : options.label;
  return applyKerasWeights(model, layers, options.mode ?? 'order', label);
}

/** Writes the model's weights as a Keras H5 file (atomically). */
export async function saveKerasH5Weights(model: Model, path: string, options?: KerasH5WriteOptions): Promise<void> {
  await writeKerasH5(modelToKerasLayers(model), path, options);
}

export async function kerasH5WeightsBytes(model: Model, options?: KerasH5WriteOptions): Promise<Uint8Array> {
  return encodeKerasH5(modelToKerasLayers(model), options);
}
