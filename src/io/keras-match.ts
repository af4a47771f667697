/**
 * Pairs the weights a model expects with the layers of a Keras weight file, the way Keras's
 * `load_weights` does, and validates everything before anything is assigned.
 *
 * 'order' (Keras's default for H5 files): the i-th model layer that has weights takes the i-th
 *   file layer that has weights, names ignored. This is what lets the auto-named residual layers
 *   (`conv2d_1`, `batch_normalization_1`, …) land in the right place whatever the model calls them.
 * 'name' (`by_name=True`): each model layer with weights takes the file layer of the same name;
 *   a file layer with weights that the model lacks is an error too (nothing is silently dropped).
 *
 * Within a layer, weights pair up in order (Keras does the same); counts and shapes must agree.
 */
import { WeightFileError } from './errors.js';
import type { KerasLayer } from './keras-h5.js';
import { shapeText } from './weights.js';

export interface ModelLayerWeights {
  name: string;
  weights: { name: string; shape: number[] }[];
}

export interface WeightAssignment {
  modelLayer: string;
  modelWeight: string;
  fileLayer: string;
  fileWeight: string;
  shape: number[];
  data: Float32Array;
}

export type KerasMatchMode = 'order' | 'name';

/** Problems reported in one error before the list is cut short. */
const MAX_PROBLEMS = 8;

export function matchKerasWeights(
  modelLayers: readonly ModelLayerWeights[],
  fileLayers: readonly KerasLayer[],
  mode: KerasMatchMode,
  fileLabel = '<keras weights>',
): WeightAssignment[] {
  if (mode !== 'order' && mode !== 'name')
    throw new WeightFileError(fileLabel, `unknown match mode "${String(mode)}" (expected 'order' or 'name')`);
  const problems: string[] = [];
  const pairs = mode === 'order' ? pairInOrder(modelLayers, fileLayers, problems) : pairByName(modelLayers, fileLayers, problems);
  const out = assignPairs(pairs, problems);
  if (problems.length > 0) {
    const shown = problems.slice(0, MAX_PROBLEMS);
    const more = problems.length > MAX_PROBLEMS ? `; and ${problems.length - MAX_PROBLEMS} more` : '';
    throw new WeightFileError(fileLabel, `weights do not fit the model (mode '${mode}'): ${shown.join('; ')}${more}`);
  }
  return out;
}

type LayerPair = [ModelLayerWeights, KerasLayer];

/** 'order': the i-th model layer with weights takes the i-th file layer with weights. */
function pairInOrder(modelLayers: readonly ModelLayerWeights[], fileLayers: readonly KerasLayer[], problems: string[]): LayerPair[] {
  const modelWithWeights = modelLayers.filter((l) => l.weights.length > 0);
  const fileWithWeights = fileLayers.filter((l) => l.weights.length > 0);
  const pairs: LayerPair[] = [];
  const n = Math.min(modelWithWeights.length, fileWithWeights.length);
  for (let i = 0; i < n; i++) pairs.push([modelWithWeights[i]!, fileWithWeights[i]!]);
  if (modelWithWeights.length !== fileWithWeights.length) {
    const extra =
      modelWithWeights.length > fileWithWeights.length
        ? `first model layer without a file layer: "${modelWithWeights[n]!.name}"`
        : `first file layer without a model layer: "${fileWithWeights[n]!.name}"`;
    problems.push(`the model has ${modelWithWeights.length} layers with weights but the file has ${fileWithWeights.length} (${extra})`);
  }
  return pairs;
}

/** 'name': layers pair by name; duplicates and layers with weights on one side only are problems. */
function pairByName(modelLayers: readonly ModelLayerWeights[], fileLayers: readonly KerasLayer[], problems: string[]): LayerPair[] {
  const pairs: LayerPair[] = [];
  const byName = new Map<string, KerasLayer>();
  for (const l of fileLayers) {
    if (byName.has(l.name)) problems.push(`file layer "${l.name}" appears twice`);
    byName.set(l.name, l);
  }
  const modelNames = new Set<string>();
  for (const l of modelLayers) {
    if (modelNames.has(l.name)) problems.push(`model layer "${l.name}" appears twice`);
    modelNames.add(l.name);
  }
  for (const l of modelLayers.filter((m) => m.weights.length > 0)) {
    const f = byName.get(l.name);
    if (f === undefined) problems.push(`model layer "${l.name}" (${l.weights.length} weights) is missing from the file`);
    else pairs.push([l, f]);
  }
  for (const f of fileLayers.filter((l) => l.weights.length > 0)) {
    const modelLayer = modelLayers.find((l) => l.name === f.name);
    if (modelLayer === undefined)
      problems.push(`file layer "${f.name}" (${f.weights.length} weights) has no layer of that name in the model`);
    else if (modelLayer.weights.length === 0)
      problems.push(`file layer "${f.name}" has ${f.weights.length} weights but the model layer of that name has none`);
  }
  return pairs;
}

/** Within each pair, weights pair up in order; counts, shapes and value counts must agree. */
function assignPairs(pairs: readonly LayerPair[], problems: string[]): WeightAssignment[] {
  const out: WeightAssignment[] = [];
  for (const [ml, fl] of pairs) {
    if (ml.weights.length !== fl.weights.length) {
      problems.push(
        `model layer "${ml.name}" has ${ml.weights.length} weights (${ml.weights.map((w) => `${w.name} ${shapeText(w.shape)}`).join(', ')}) but file layer "${fl.name}" has ${fl.weights.length} (${fl.weights.map((w) => `${w.name} ${shapeText(w.shape)}`).join(', ')})`,
      );
      continue;
    }
    ml.weights.forEach((mw, i) => {
      const fw = fl.weights[i]!;
      const sameShape = mw.shape.length === fw.shape.length && mw.shape.every((d, k) => d === fw.shape[k]);
      if (!sameShape) {
        problems.push(
          `model layer "${ml.name}" weight "${mw.name}" has shape ${shapeText(mw.shape)} but file layer "${fl.name}" weight "${fw.name}" has shape ${shapeText(fw.shape)}`,
        );
        return;
      }
      const expected = fw.shape.reduce((a, b) => a * b, 1);
      if (fw.data.length !== expected) {
        problems.push(`file layer "${fl.name}" weight "${fw.name}" has ${fw.data.length} values for shape ${shapeText(fw.shape)}`);
        return;
      }
      out.push({ modelLayer: ml.name, modelWeight: mw.name, fileLayer: fl.name, fileWeight: fw.name, shape: [...fw.shape], data: fw.data });
    });
  }
  return out;
}
