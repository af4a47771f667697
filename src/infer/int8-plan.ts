/**
 * What an int8 compiled plan quantizes, from an Int8Calibration (quant-types.ts) and the fused
 * inference graph. The rules (native/plan.h holds the native half):
 *   - a value with a ValueQuant in the calibration is stored quantized (real = scale · q); others stay fp32;
 *   - a convolution or dense node runs in int8 when its input, its own value and its sum value (if
 *     any) are quantized and it is not in `fp32Nodes`; its kernel is quantized per output channel
 *     (weightScales) after batch-norm folding, its bias stays fp32, its post-ops (sum, ReLU, ELU)
 *     apply to the real result before it is quantized;
 *   - every other step computes in fp32 on its dequantized inputs (a max pool whose value keeps its
 *     input's quantization runs on the quantized values: the same numbers).
 * The calibration is checked against the graph before anything native runs.
 */
import { OptionError } from '../core/errors.js';
import type { Model } from '../nn/model.js';
import { fuseGraph } from './fuse.js';
import { type ConvNode, type DenseNode, type GraphNode, type InferenceGraph, lowerModel } from './graph.js';
import { type Int8Calibration, type ValueQuant, valueKey } from './quant-types.js';

export interface Int8Plan {
  /** The quantization of a node's value (through flattens), or null: fp32. */
  quantOf(n: GraphNode): ValueQuant | null;
  /** Whether this convolution or dense node runs in int8. */
  runsInt8(n: ConvNode | DenseNode): boolean;
}

const METHODS = ['minmax', 'percentile', 'entropy'];
const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Typed errors for a calibration of the wrong form (before any key is looked at). */
function checkForm(c: unknown): asserts c is Int8Calibration {
  const where = 'compileInference: calibration';
  if (!isRecord(c)) throw new OptionError(`${where} must be an object (an Int8Calibration)`);
  if (!METHODS.includes(c['method'] as string)) throw new OptionError(`${where}.method must be one of ${METHODS.join(', ')}`);
  const images = c['images'];
  if (typeof images !== 'number' || !Number.isInteger(images) || images < 1)
    throw new OptionError(`${where}.images must be a positive integer, got ${JSON.stringify(images)}`);
  if (!isRecord(c['values'])) throw new OptionError(`${where}.values is missing (activation scales by value key)`);
  if (!isRecord(c['fp32Nodes'])) throw new OptionError(`${where}.fp32Nodes is missing (an object, possibly empty)`);
  for (const [key, q] of Object.entries(c['values'])) {
    if (!isRecord(q)) throw new OptionError(`${where}.values['${key}'] must be { scale, unsigned }`);
    const scale = q['scale'];
    if (typeof scale !== 'number' || !Number.isFinite(scale) || scale < 1e-30 || scale > 1e30)
      throw new OptionError(`${where}.values['${key}'].scale must be a finite number in [1e-30, 1e30], got ${String(scale)}`);
    if (typeof q['unsigned'] !== 'boolean') throw new OptionError(`${where}.values['${key}'].unsigned must be true or false`);
  }
}

/**
 * A key that names no value of this graph: a calibration for another model when its layer is not
 * in the model (a key of a layer that is, e.g. the output softmax left out with `logits`, is ignored).
 */
function checkKeys(c: Int8Calibration, graphKeys: Set<string>, model: Model): void {
  const layerNames = new Set(model.layers.map((l) => l.name));
  const lists: Array<[string, string[]]> = [
    ['values', Object.keys(c.values)],
    ['fp32Nodes', Object.keys(c.fp32Nodes)],
  ];
  for (const [field, keys] of lists) {
    for (const key of keys) {
      if (graphKeys.has(key)) continue;
      const layer = key.slice(0, key.lastIndexOf('/'));
      if (!layerNames.has(layer)) {
        throw new OptionError(
          `compileInference: the calibration is for another model: ${field} names '${key}', and model '${model.name}' has no layer '${layer}'`,
        );
      }
    }
  }
  if (![...graphKeys].some((k) => k in c.values))
    throw new OptionError(`compileInference: the calibration has no activation scale for any value of model '${model.name}'`);
}

/** Checks `calibration` against the fused graph `g` of `model` and says what runs in int8. */
export function int8Plan(model: Model, g: InferenceGraph, calibration: unknown): Int8Plan {
  checkForm(calibration);
  const keyOf = new Map<GraphNode, string>();
  const keys = new Set<string>();
  for (const n of g.nodes) {
    if (n.op === 'flatten') continue;
    const k = valueKey(n);
    if (keys.has(k))
      throw new OptionError(`compileInference: two values of model '${model.name}' have the key '${k}'; int8 cannot name them`);
    keys.add(k);
    keyOf.set(n, k);
  }
  checkKeys(calibration, keys, model);
  const values = calibration.values;
  const quantOf = (n: GraphNode): ValueQuant | null => {
    while (n.op === 'flatten') n = n.inputs[0]!;
    const k = keyOf.get(n);
    return k !== undefined && Object.hasOwn(values, k) ? values[k]! : null;
  };
  const runsInt8 = (n: ConvNode | DenseNode): boolean =>
    !Object.hasOwn(calibration.fp32Nodes, keyOf.get(n)!) &&
    quantOf(n.inputs[0]!) !== null &&
    quantOf(n) !== null &&
    (n.op === 'dense' || n.sumInto === null || quantOf(n.sumInto) !== null);
  return { quantOf, runsInt8 };
}

/** Checks `calibration` against `model` (its fused graph at its input size) without compiling: OptionErrors. */
export function checkCalibrationFor(model: Model, calibration: unknown): void {
  const g = lowerModel(model, { inputShape: model.inputShape, logits: false });
  fuseGraph(g);
  int8Plan(model, g, calibration);
}
